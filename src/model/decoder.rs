//! Weights of the causal decoders, looked up through the architecture's tensor table and
//! shape-checked. Norms an architecture does not have are `None`, and the block skips them.

use super::ModelError;
use super::matrix::{Linear, Matrix};
use super::tensors::Tensors;
use crate::format::PackedFile;
use crate::format::meta::ModelConfig;

/// One transformer block: `x += post_attn_norm(attn(attn_norm(x)))`, then
/// `x += post_ffn_norm(mlp(ffn_norm(x)))`.
#[derive(Debug)]
pub struct DecoderLayer<'a> {
    /// RMSNorm weight before attention.
    pub attn_norm: &'a [f32],
    /// Fused q/k/v projection (q rows, then k, then v).
    pub qkv: Linear<'a>,
    /// Per-head RMSNorm weight of the queries (Qwen3, Gemma 3).
    pub q_norm: Option<&'a [f32]>,
    /// Per-head RMSNorm weight of the keys.
    pub k_norm: Option<&'a [f32]>,
    /// Attention output projection.
    pub attn_out: Linear<'a>,
    /// RMSNorm weight of the attention output (Gemma 3).
    pub post_attn_norm: Option<&'a [f32]>,
    /// RMSNorm weight before the feed-forward layer.
    pub ffn_norm: &'a [f32],
    /// Fused gate/up projection (gate rows, then up).
    pub gate_up: Linear<'a>,
    /// Down projection.
    pub down: Linear<'a>,
    /// RMSNorm weight of the feed-forward output (Gemma 3).
    pub post_ffn_norm: Option<&'a [f32]>,
}

/// All weights of a causal decoder.
#[derive(Debug)]
pub struct DecoderWeights<'a> {
    /// Token embedding table (`vocab × hidden`).
    pub embed: Matrix<'a>,
    /// Final RMSNorm weight.
    pub output_norm: &'a [f32],
    /// Output head (`vocab × hidden`; the embedding table when tied).
    pub output: Linear<'a>,
    /// The blocks.
    pub layers: Vec<DecoderLayer<'a>>,
}

impl<'a> DecoderWeights<'a> {
    /// Looks up every weight the architecture's table names and checks it against `c`.
    pub fn load(file: &'a PackedFile, c: &ModelConfig) -> Result<Self, ModelError> {
        let t = Tensors::new(file, c);
        let (h, vocab) = (c.hidden_size, c.vocab_size);
        let embed = t.matrix("token_embd.weight", vocab, h)?;
        let output = if c.tied_embeddings {
            embed
        } else {
            t.matrix("output.weight", vocab, h)?
        };
        let layer = |i: usize| -> Result<DecoderLayer<'a>, ModelError> {
            Ok(DecoderLayer {
                attn_norm: t.required_block_vector(i, "attn_norm")?,
                qkv: t.block_linear(i, "attn_qkv")?,
                q_norm: t.block_vector(i, "attn_q_norm")?,
                k_norm: t.block_vector(i, "attn_k_norm")?,
                attn_out: t.block_linear(i, "attn_output")?,
                post_attn_norm: t.block_vector(i, "post_attention_norm")?,
                ffn_norm: t.required_block_vector(i, "ffn_norm")?,
                gate_up: t.block_linear(i, "ffn_gate_up")?,
                down: t.block_linear(i, "ffn_down")?,
                post_ffn_norm: t.block_vector(i, "post_ffw_norm")?,
            })
        };
        let layers = (0..c.num_layers).map(layer).collect::<Result<_, _>>()?;
        Ok(DecoderWeights {
            embed,
            output_norm: t.vector("output_norm.weight", h)?,
            output: Linear::new(vec![(output, None)]),
            layers,
        })
    }

    /// Bytes of weights read to produce one token (every matrix once, one embedding row).
    pub fn bytes_per_token(&self) -> usize {
        let layer: usize = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.attn_out, &l.gate_up, &l.down])
            .map(Linear::bytes)
            .sum();
        layer + self.output.bytes()
    }
}
