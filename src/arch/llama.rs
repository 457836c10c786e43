//! Llama 2/3 and the many models of its shape (TinyLlama, SmolLM, Mistral, Llama 3.2):
//! pre-RMSNorm blocks, grouped-query attention with RoPE, a SwiGLU MLP.

use super::spec::{ArchDef, Bias, Dim, Presence, Recipe, Role, TensorDef};
use crate::format::meta::Architecture;

/// The embedding table.
const TOKEN_EMBD: TensorDef =
    TensorDef::matrix("token_embd", "model.embed_tokens", Dim::Vocab, Dim::Hidden).role(Role::Embedding);
/// The final norm and the output head (absent when tied to the embedding table).
const OUTPUT: [TensorDef; 2] = [
    TensorDef::vector("output_norm", "model.norm", Dim::Hidden),
    TensorDef::matrix("output", "lm_head", Dim::Vocab, Dim::Hidden)
        .role(Role::Embedding)
        .when(Presence::Untied),
];
/// Hugging Face's prefix of block names in decoders.
const HF_BLOCKS: &str = "model.layers.";

/// The attention projections of a block, q/k/v fused when their types agree.
pub(super) const ATTN_NORM: TensorDef = TensorDef::vector("attn_norm", "input_layernorm", Dim::Hidden);
pub(super) const QKV: [TensorDef; 3] = [
    TensorDef::matrix("attn_q", "self_attn.q_proj", Dim::QRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
    TensorDef::matrix("attn_k", "self_attn.k_proj", Dim::KvRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
    TensorDef::matrix("attn_v", "self_attn.v_proj", Dim::KvRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
];
pub(super) const ATTN_OUT: TensorDef =
    TensorDef::matrix("attn_output", "self_attn.o_proj", Dim::Hidden, Dim::QRows).bias(Bias::AttnOut);
/// The gated MLP, gate/up fused when their types agree.
pub(super) const MLP: [TensorDef; 3] = [
    TensorDef::matrix("ffn_gate", "mlp.gate_proj", Dim::Ff, Dim::Hidden)
        .bias(Bias::Mlp)
        .fuse("ffn_gate_up"),
    TensorDef::matrix("ffn_up", "mlp.up_proj", Dim::Ff, Dim::Hidden)
        .bias(Bias::Mlp)
        .fuse("ffn_gate_up"),
    TensorDef::matrix("ffn_down", "mlp.down_proj", Dim::Hidden, Dim::Ff).bias(Bias::Mlp),
];
const FFN_NORM: TensorDef = TensorDef::vector("ffn_norm", "post_attention_layernorm", Dim::Hidden);

/// A Llama block.
pub(super) const BLOCK: [TensorDef; 9] = [
    ATTN_NORM, QKV[0], QKV[1], QKV[2], ATTN_OUT, FFN_NORM, MLP[0], MLP[1], MLP[2],
];

/// A decoder of Llama's shape around `block`: token embedding, the blocks, the final norm and
/// the (possibly tied) output head, Hugging Face names under `model.`, Q/K rows in Hugging
/// Face's order in GGUF files.
pub(super) const fn decoder(
    arch: Architecture,
    hf_model_types: &'static [&'static str],
    block: &'static [TensorDef],
) -> ArchDef {
    ArchDef {
        arch,
        hf_model_types,
        before: &[TOKEN_EMBD],
        block,
        after: &OUTPUT,
        hf_block_prefix: HF_BLOCKS,
        hf_optional_prefix: "",
        recipe: Recipe {
            scale_embeddings: false,
        },
        gguf_rope_permuted: false,
    }
}

/// llama.cpp's converter permutes Llama's Q/K rows for its interleaved RoPE.
pub(super) static DEF: ArchDef = ArchDef {
    gguf_rope_permuted: true,
    ..decoder(Architecture::Llama, &["llama", "mistral"], &BLOCK)
};
