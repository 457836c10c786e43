//! Gemma 3 (text): every sublayer between two `(1 + w)` RMSNorms, q/k RMSNorm per head, a
//! tanh-GELU gated MLP, embeddings scaled by `√hidden`, tied output head; sliding-window and
//! global layers interleave, each kind with its own RoPE base (the configuration says which).

use super::llama::{MLP, QKV, decoder};
use super::spec::{ArchDef, Bias, Dim, Recipe, TensorDef};
use crate::format::meta::Architecture;

const fn norm(name: &'static str, hf: &'static str, len: Dim) -> TensorDef {
    TensorDef::vector(name, hf, len).plus_one()
}

const BLOCK: [TensorDef; 13] = [
    norm("attn_norm", "input_layernorm", Dim::Hidden),
    QKV[0],
    QKV[1],
    QKV[2],
    norm("attn_q_norm", "self_attn.q_norm", Dim::HeadDim),
    norm("attn_k_norm", "self_attn.k_norm", Dim::HeadDim),
    TensorDef::matrix("attn_output", "self_attn.o_proj", Dim::Hidden, Dim::QRows).bias(Bias::AttnOut),
    norm("post_attention_norm", "post_attention_layernorm", Dim::Hidden),
    norm("ffn_norm", "pre_feedforward_layernorm", Dim::Hidden),
    MLP[0],
    MLP[1],
    MLP[2],
    norm("post_ffw_norm", "post_feedforward_layernorm", Dim::Hidden),
];

pub(super) static DEF: ArchDef = ArchDef {
    after: &[norm("output_norm", "model.norm", Dim::Hidden)],
    recipe: Recipe {
        scale_embeddings: true,
    },
    ..decoder(Architecture::Gemma3, &["gemma3_text"], &BLOCK)
};
