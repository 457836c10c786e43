//! Qwen2: a Llama block with q/k/v biases, whose GGUF files keep Hugging Face's Q/K row order.

use super::llama::{BLOCK, decoder};
use super::spec::ArchDef;
use crate::format::meta::Architecture;

pub(super) static DEF: ArchDef = decoder(Architecture::Qwen2, &["qwen2"], &BLOCK);
