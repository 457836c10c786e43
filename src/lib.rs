//! edgelm: run quantized transformer language models on edge hardware.
//!
//! Open a packed `.edgelm` file (written by `edgelm-convert`), make a session, generate.
#![warn(missing_docs)]

pub mod arch;
pub mod audio;
pub mod batch;
pub mod chat;
pub mod embed;
pub mod engine;
pub mod format;
pub mod generate;
pub mod grammar;
pub mod kv_cache;
pub mod model;
pub mod nn;
pub mod perplexity;
pub mod pool;
pub mod prompt_cache;
pub mod sampling;
pub mod session;
pub mod threads;
pub mod tokenizer;
pub mod whisper;

pub use edgelm_kernels as kernels;
