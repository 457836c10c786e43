//! The Hugging Face path on arbitrary bytes: `config.json` text and a safetensors file (input:
//! a little-endian u16 length, that many bytes of config.json, then the safetensors bytes).
//! Parsing, planning and conversion never panic, and whatever is converted loads.
#![no_main]

#[path = "common.rs"]
mod common;

use edgelm_tools::source::{Buffer, hf};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let Some((config, safetensors)) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len))) else {
        return;
    };
    let shards = vec![(
        "model.safetensors".to_owned(),
        Buffer::Owned(safetensors.to_vec()),
    )];
    if let Ok(model) = hf::from_parts(config, shards) {
        common::convert_and_check(&model, &common::placeholder_tokenizer(), data.len());
    }
});
