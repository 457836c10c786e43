//! Weights of Whisper models, loaded and shape-checked through the architecture's table.

use super::ModelError;
use super::encoder::LayerNorm;
use super::matrix::{Linear, Matrix};
use super::tensors::Tensors;
use crate::arch::WHISPER_FFT_BINS;
use crate::format::PackedFile;
use crate::format::meta::{ModelConfig, WhisperConfig};

/// One pre-LayerNorm encoder block: `x += attn(LN(x))`, then `x += mlp(LN(x))`.
#[derive(Debug)]
pub struct WhisperEncoderLayer<'a> {
    /// LayerNorm before attention.
    pub attn_norm: LayerNorm<'a>,
    /// Fused q/k/v projection.
    pub qkv: Linear<'a>,
    /// Attention output projection.
    pub attn_out: Linear<'a>,
    /// LayerNorm before the MLP.
    pub ffn_norm: LayerNorm<'a>,
    /// MLP up projection (then GELU).
    pub up: Linear<'a>,
    /// MLP down projection.
    pub down: Linear<'a>,
}

/// One decoder block: causal self-attention, cross-attention to the audio, MLP, each
/// `x += f(LN(x))`.
#[derive(Debug)]
pub struct WhisperDecoderLayer<'a> {
    /// LayerNorm before self-attention.
    pub attn_norm: LayerNorm<'a>,
    /// Fused q/k/v projection.
    pub qkv: Linear<'a>,
    /// Self-attention output projection.
    pub attn_out: Linear<'a>,
    /// LayerNorm before cross-attention.
    pub cross_norm: LayerNorm<'a>,
    /// Cross-attention query projection.
    pub cross_q: Linear<'a>,
    /// Fused key/value projection of the encoder output.
    pub cross_kv: Linear<'a>,
    /// Cross-attention output projection.
    pub cross_out: Linear<'a>,
    /// LayerNorm before the MLP.
    pub ffn_norm: LayerNorm<'a>,
    /// MLP up projection (then GELU).
    pub up: Linear<'a>,
    /// MLP down projection.
    pub down: Linear<'a>,
}

/// All weights of a Whisper model.
#[derive(Debug)]
pub struct WhisperWeights<'a> {
    /// Mel filter bank, `n_mels × 201`.
    pub mel_filters: &'a [f32],
    /// First convolution (kernel 3, stride 1) as a matrix over `mel bins × 3` taps.
    pub conv1: Linear<'a>,
    /// Second convolution (kernel 3, stride 2) over `hidden × 3` taps.
    pub conv2: Linear<'a>,
    /// Encoder positions (sinusoidal), `audio_ctx × hidden`.
    pub enc_pos: &'a [f32],
    /// Encoder blocks.
    pub encoder: Vec<WhisperEncoderLayer<'a>>,
    /// Final encoder LayerNorm.
    pub enc_norm: LayerNorm<'a>,
    /// Token embeddings, also the output head.
    pub token_embd: Matrix<'a>,
    /// Decoder positions (learned), `max_context × hidden`.
    pub dec_pos: &'a [f32],
    /// Decoder blocks.
    pub decoder: Vec<WhisperDecoderLayer<'a>>,
    /// Final decoder LayerNorm.
    pub output_norm: LayerNorm<'a>,
    /// The output head: the token embeddings as a linear layer.
    pub output: Linear<'a>,
}

impl<'a> WhisperWeights<'a> {
    /// Looks up every weight and checks it against `c`.
    pub fn load(file: &'a PackedFile, c: &ModelConfig) -> Result<Self, ModelError> {
        let w: &WhisperConfig = c
            .whisper
            .as_ref()
            .ok_or_else(|| ModelError::Config("a whisper model without its audio configuration".into()))?;
        let t = Tensors::new(file, c);
        let h = c.hidden_size;
        let conv = |name: &str, cols: usize| -> Result<Linear<'a>, ModelError> {
            let m = t.matrix(&format!("{name}.weight"), h, cols)?;
            Ok(Linear::new(vec![(
                m,
                Some(t.vector(&format!("{name}.bias"), h)?),
            )]))
        };
        let enc = |i: usize| -> Result<WhisperEncoderLayer<'a>, ModelError> {
            Ok(WhisperEncoderLayer {
                attn_norm: t.layer_norm(&format!("blk.{i}.enc_attn_norm"))?,
                qkv: t.block_linear(i, "enc_attn_qkv")?,
                attn_out: t.block_linear(i, "enc_attn_output")?,
                ffn_norm: t.layer_norm(&format!("blk.{i}.enc_ffn_norm"))?,
                up: t.block_linear(i, "enc_ffn_up")?,
                down: t.block_linear(i, "enc_ffn_down")?,
            })
        };
        let dec = |i: usize| -> Result<WhisperDecoderLayer<'a>, ModelError> {
            Ok(WhisperDecoderLayer {
                attn_norm: t.layer_norm(&format!("blk.{i}.attn_norm"))?,
                qkv: t.block_linear(i, "attn_qkv")?,
                attn_out: t.block_linear(i, "attn_output")?,
                cross_norm: t.layer_norm(&format!("blk.{i}.cross_norm"))?,
                cross_q: t.block_linear(i, "cross_q")?,
                cross_kv: t.block_linear(i, "cross_kv")?,
                cross_out: t.block_linear(i, "cross_output")?,
                ffn_norm: t.layer_norm(&format!("blk.{i}.ffn_norm"))?,
                up: t.block_linear(i, "ffn_up")?,
                down: t.block_linear(i, "ffn_down")?,
            })
        };
        let token_embd = t.matrix("token_embd.weight", c.vocab_size, h)?;
        Ok(WhisperWeights {
            mel_filters: t.floats("mel_filters.weight", w.n_mels, WHISPER_FFT_BINS)?,
            conv1: conv("enc_conv1", 3 * w.n_mels)?,
            conv2: conv("enc_conv2", 3 * h)?,
            enc_pos: t.floats("enc_pos.weight", w.audio_ctx, h)?,
            encoder: (0..c.num_layers).map(enc).collect::<Result<_, _>>()?,
            enc_norm: t.layer_norm("enc_norm")?,
            output: Linear::new(vec![(token_embd, None)]),
            token_embd,
            dec_pos: t.floats("dec_pos.weight", c.max_context, h)?,
            decoder: (0..c.num_layers).map(dec).collect::<Result<_, _>>()?,
            output_norm: t.layer_norm("output_norm")?,
        })
    }
}
