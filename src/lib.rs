//! edgelm: run quantized transformer language models on edge hardware.
//!
//! Open a packed `.edgelm` file (written by `edgelm-convert`), make a session, generate.
#![warn(missing_docs)]

pub mod chat;
pub mod embed;
pub mod format;
pub mod generate;
pub mod kv_cache;
pub mod model;
pub mod perplexity;
pub mod rope;
pub mod sampling;
pub mod session;
pub mod threads;
pub mod tokenizer;

pub use edgelm_kernels as kernels;
