//! edgelm-tools: the host-side converter from Hugging Face folders and GGUF files to packed
//! `.edgelm` files.
#![warn(missing_docs)]

pub mod gguf;
pub mod tokenizer_import;
