//! edgelm-tools: the host-side converter from Hugging Face folders and GGUF files to packed
//! `.edgelm` files.
#![warn(missing_docs)]

pub mod calibrate;
pub mod convert;
pub mod dequant;
pub mod encode;
pub mod gguf;
pub mod plan;
pub mod quantize;
pub mod report;
pub mod source;
pub mod tokenizer_import;
pub mod transcode;
