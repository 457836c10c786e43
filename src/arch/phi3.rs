//! Phi-3: a Llama block whose q/k/v and gate/up projections are stored fused (GGUF calls the
//! fused gate/up `ffn_up`).

use super::llama::{ATTN_NORM, ATTN_OUT, decoder};
use super::spec::{ArchDef, Bias, Dim, TensorDef};
use crate::format::meta::Architecture;

const BLOCK: [TensorDef; 6] = [
    ATTN_NORM,
    TensorDef::matrix("attn_qkv", "self_attn.qkv_proj", Dim::QkvRows, Dim::Hidden).bias(Bias::Qkv),
    ATTN_OUT,
    TensorDef::vector("ffn_norm", "post_attention_layernorm", Dim::Hidden),
    TensorDef::matrix("ffn_gate_up", "mlp.gate_up_proj", Dim::GateUpRows, Dim::Hidden)
        .bias(Bias::Mlp)
        .gguf("ffn_up"),
    TensorDef::matrix("ffn_down", "mlp.down_proj", Dim::Hidden, Dim::Ff).bias(Bias::Mlp),
];

pub(super) static DEF: ArchDef = decoder(Architecture::Phi3, &["phi3"], &BLOCK);
