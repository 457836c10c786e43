//! Qwen2: a Llama block with q/k/v biases, whose GGUF files keep Hugging Face's Q/K row order.

use super::llama::{BLOCK, HF_BLOCKS, OUTPUT, TOKEN_EMBD};
use super::spec::{ArchDef, Recipe};
use crate::format::meta::Architecture;

pub(super) static DEF: ArchDef = ArchDef {
    arch: Architecture::Qwen2,
    hf_model_types: &["qwen2"],
    before: &[TOKEN_EMBD],
    block: &BLOCK,
    after: &OUTPUT,
    hf_block_prefix: HF_BLOCKS,
    hf_optional_prefix: "",
    recipe: Recipe {
        scale_embeddings: false,
    },
    gguf_rope_permuted: false,
};
