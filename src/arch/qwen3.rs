//! Qwen3: a Llama block whose queries and keys are RMS-normalized per head before RoPE.

use super::llama::{ATTN_NORM, ATTN_OUT, MLP, QKV, decoder};
use super::spec::{ArchDef, Dim, TensorDef};
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

pub(super) static DEF: ArchDef = decoder(Architecture::Qwen3, &["qwen3"], &BLOCK);
