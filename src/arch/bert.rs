//! BERT encoders: learned positions and token types, post-LayerNorm blocks, a plain GELU MLP.

use super::spec::{ArchDef, Bias, Dim, Presence, Recipe, Role, TensorDef};
use crate::format::meta::Architecture;

const fn layer_norm(name: &'static str, hf: &'static str) -> TensorDef {
    TensorDef::vector(name, hf, Dim::Hidden).bias(Bias::Yes)
}

const BEFORE: [TensorDef; 4] = [
    TensorDef::matrix(
        "token_embd",
        "embeddings.word_embeddings",
        Dim::Vocab,
        Dim::Hidden,
    )
    .role(Role::Embedding),
    TensorDef::matrix(
        "position_embd",
        "embeddings.position_embeddings",
        Dim::Context,
        Dim::Hidden,
    )
    .role(Role::Float),
    TensorDef::matrix(
        "token_types",
        "embeddings.token_type_embeddings",
        Dim::TypeVocab,
        Dim::Hidden,
    )
    .role(Role::Float)
    .when(Presence::TokenTypes),
    layer_norm("token_embd_norm", "embeddings.LayerNorm"),
];

const BLOCK: [TensorDef; 8] = [
    TensorDef::matrix("attn_q", "attention.self.query", Dim::QRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
    TensorDef::matrix("attn_k", "attention.self.key", Dim::KvRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
    TensorDef::matrix("attn_v", "attention.self.value", Dim::KvRows, Dim::Hidden)
        .bias(Bias::Qkv)
        .fuse("attn_qkv"),
    TensorDef::matrix("attn_output", "attention.output.dense", Dim::Hidden, Dim::QRows).bias(Bias::AttnOut),
    layer_norm("attn_output_norm", "attention.output.LayerNorm"),
    TensorDef::matrix("ffn_up", "intermediate.dense", Dim::Ff, Dim::Hidden).bias(Bias::Mlp),
    TensorDef::matrix("ffn_down", "output.dense", Dim::Hidden, Dim::Ff).bias(Bias::Mlp),
    layer_norm("layer_output_norm", "output.LayerNorm"),
];

pub(super) static DEF: ArchDef = ArchDef {
    arch: Architecture::Bert,
    hf_model_types: &["bert"],
    before: &BEFORE,
    block: &BLOCK,
    after: &[],
    hf_block_prefix: "encoder.layer.",
    hf_optional_prefix: "bert.",
    recipe: Recipe {
        scale_embeddings: false,
    },
    gguf_rope_permuted: false,
};
