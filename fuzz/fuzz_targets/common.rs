//! Shared by the fuzz targets: conversion of whatever a source yielded, and the invariant that
//! the converter only ever writes files the loader accepts.

use edgelm::format::PackedFile;
use edgelm::format::meta::TokenizerSpec;
use edgelm_tools::convert::convert_to_bytes;
use edgelm_tools::plan::{Options, Target};
use edgelm_tools::source::Model;
use edgelm_tools::tokenizer_import::TokenizerImport;

/// A one-token tokenizer without tables, for sources whose tokenizer is not under test.
pub fn placeholder_tokenizer() -> TokenizerImport {
    let spec: TokenizerSpec = serde_json::from_str(
        r#"{"model": "bpe_byte_level", "vocab_size": 1, "bos": null, "eos": null, "unk": null,
            "pad": null, "add_bos": false, "add_eos": false, "stop_tokens": []}"#,
    )
    .expect("valid tokenizer spec");
    TokenizerImport {
        spec,
        chat_template: None,
        tensors: Vec::new(),
    }
}

/// Converts `model` (type chosen by `selector`); any file produced must load and verify.
pub fn convert_and_check(model: &Model, tokenizer: &TokenizerImport, selector: usize) {
    let quant = ["q8_0", "q4_0", "q4_1", "f16", "keep"][selector % 5];
    let options = Options {
        quant: quant.parse::<Target>().expect("known type"),
        ..Options::default()
    };
    if let Ok((bytes, _)) = convert_to_bytes(model, tokenizer, &options) {
        let file = PackedFile::from_bytes(&bytes).expect("the converter wrote a file the loader rejects");
        file.verify_data().expect("the converter wrote wrong checksums");
    }
}
