//! The GGUF path on arbitrary bytes: the reader, the tokenizer import, the model configuration
//! and the conversion never panic, and whatever is converted loads.
#![no_main]

#[path = "common.rs"]
mod common;

use edgelm_tools::gguf::Gguf;
use edgelm_tools::source::gguf_model;
use edgelm_tools::tokenizer_import;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::from_bytes(data.to_vec()) else {
        return;
    };
    let tokenizer = tokenizer_import::from_gguf(&g).unwrap_or_else(|_| common::placeholder_tokenizer());
    if let Ok(model) = gguf_model::from_gguf(g, "fuzz.gguf") {
        common::convert_and_check(&model, &tokenizer, data.len());
    }
});
