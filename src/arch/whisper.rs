//! Whisper: a convolutional stem and pre-LayerNorm encoder blocks over the audio frames, and a
//! text decoder whose blocks add cross-attention to the encoder output. The encoder and decoder
//! have as many blocks each (every released Whisper does), so block `N` holds encoder block `N`
//! (`enc_*`) and decoder block `N`. Every linear layer and LayerNorm has a bias; the key
//! projections have none in the sources and a zero one here, so that q/k/v fuse.

use super::spec::{ArchDef, Bias, Dim, Recipe, Role, TensorDef};
use crate::format::meta::Architecture;

const ENC: &str = "model.encoder.layers.";
const DEC: &str = "model.decoder.layers.";

const fn norm(name: &'static str, hf: &'static str, prefix: &'static str) -> TensorDef {
    TensorDef::vector(name, hf, Dim::Hidden)
        .bias(Bias::Yes)
        .hf_in(prefix)
}

const fn linear(
    name: &'static str,
    hf: &'static str,
    rows: Dim,
    cols: Dim,
    prefix: &'static str,
) -> TensorDef {
    TensorDef::matrix(name, hf, rows, cols)
        .bias(Bias::Yes)
        .hf_in(prefix)
}

const BEFORE: [TensorDef; 6] = [
    TensorDef::matrix("mel_filters", "mel_filters", Dim::Mels, Dim::FftBins).role(Role::Float),
    TensorDef::matrix("enc_conv1", "model.encoder.conv1", Dim::Hidden, Dim::MelTaps).bias(Bias::Yes),
    TensorDef::matrix("enc_conv2", "model.encoder.conv2", Dim::Hidden, Dim::HiddenTaps).bias(Bias::Yes),
    TensorDef::matrix(
        "enc_pos",
        "model.encoder.embed_positions",
        Dim::AudioCtx,
        Dim::Hidden,
    )
    .role(Role::Float),
    TensorDef::matrix(
        "token_embd",
        "model.decoder.embed_tokens",
        Dim::Vocab,
        Dim::Hidden,
    )
    .role(Role::Embedding),
    TensorDef::matrix(
        "dec_pos",
        "model.decoder.embed_positions",
        Dim::Context,
        Dim::Hidden,
    )
    .role(Role::Float),
];

const BLOCK: [TensorDef; 21] = [
    norm("enc_attn_norm", "self_attn_layer_norm", ENC),
    linear("enc_attn_q", "self_attn.q_proj", Dim::QRows, Dim::Hidden, ENC).fuse("enc_attn_qkv"),
    linear("enc_attn_k", "self_attn.k_proj", Dim::KvRows, Dim::Hidden, ENC).fuse("enc_attn_qkv"),
    linear("enc_attn_v", "self_attn.v_proj", Dim::KvRows, Dim::Hidden, ENC).fuse("enc_attn_qkv"),
    linear(
        "enc_attn_output",
        "self_attn.out_proj",
        Dim::Hidden,
        Dim::QRows,
        ENC,
    ),
    norm("enc_ffn_norm", "final_layer_norm", ENC),
    linear("enc_ffn_up", "fc1", Dim::Ff, Dim::Hidden, ENC),
    linear("enc_ffn_down", "fc2", Dim::Hidden, Dim::Ff, ENC),
    norm("attn_norm", "self_attn_layer_norm", DEC),
    linear("attn_q", "self_attn.q_proj", Dim::QRows, Dim::Hidden, DEC).fuse("attn_qkv"),
    linear("attn_k", "self_attn.k_proj", Dim::KvRows, Dim::Hidden, DEC).fuse("attn_qkv"),
    linear("attn_v", "self_attn.v_proj", Dim::KvRows, Dim::Hidden, DEC).fuse("attn_qkv"),
    linear("attn_output", "self_attn.out_proj", Dim::Hidden, Dim::QRows, DEC),
    norm("cross_norm", "encoder_attn_layer_norm", DEC),
    linear("cross_q", "encoder_attn.q_proj", Dim::QRows, Dim::Hidden, DEC),
    linear("cross_k", "encoder_attn.k_proj", Dim::KvRows, Dim::Hidden, DEC).fuse("cross_kv"),
    linear("cross_v", "encoder_attn.v_proj", Dim::KvRows, Dim::Hidden, DEC).fuse("cross_kv"),
    linear(
        "cross_output",
        "encoder_attn.out_proj",
        Dim::Hidden,
        Dim::QRows,
        DEC,
    ),
    norm("ffn_norm", "final_layer_norm", DEC),
    linear("ffn_up", "fc1", Dim::Ff, Dim::Hidden, DEC),
    linear("ffn_down", "fc2", Dim::Hidden, Dim::Ff, DEC),
];

const AFTER: [TensorDef; 2] = [
    TensorDef::vector("enc_norm", "model.encoder.layer_norm", Dim::Hidden).bias(Bias::Yes),
    TensorDef::vector("output_norm", "model.decoder.layer_norm", Dim::Hidden).bias(Bias::Yes),
];

pub(super) static DEF: ArchDef = ArchDef {
    arch: Architecture::Whisper,
    hf_model_types: &["whisper"],
    before: &BEFORE,
    block: &BLOCK,
    after: &AFTER,
    hf_block_prefix: DEC,
    hf_optional_prefix: "",
    recipe: Recipe {
        scale_embeddings: false,
    },
    gguf_rope_permuted: false,
};
