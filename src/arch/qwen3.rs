//! Qwen3: a Llama block whose queries and keys are RMS-normalized per head before RoPE.

use super::llama::{ATTN_NORM, ATTN_OUT, HF_BLOCKS, MLP, OUTPUT, QKV, TOKEN_EMBD};
use super::spec::{ArchDef, Dim, Recipe, TensorDef};
use crate::format::meta::Architecture;

const BLOCK: [TensorDef; 11] = [
    ATTN_NORM,
    QKV[0],
    QKV[1],
    QKV[2],
    TensorDef::vector("attn_q_norm", "self_attn.q_norm", Dim::HeadDim),
    TensorDef::vector("attn_k_norm", "self_attn.k_norm", Dim::HeadDim),
    ATTN_OUT,
    TensorDef::vector("ffn_norm", "post_attention_layernorm", Dim::Hidden),
    MLP[0],
    MLP[1],
    MLP[2],
];

pub(super) static DEF: ArchDef = ArchDef {
    arch: Architecture::Qwen3,
    hf_model_types: &["qwen3"],
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
