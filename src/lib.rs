//! edgelm: run quantized transformer language models on edge hardware.
//!
//! Open a packed `.edgelm` file (written by `edgelm-convert`), make a session, generate.
#![warn(missing_docs)]

pub mod format;
pub mod tokenizer;

pub use edgelm_kernels as kernels;
