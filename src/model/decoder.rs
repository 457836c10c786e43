//! Weights of the causal decoders (llama, qwen2), loaded and shape-checked.

use super::ModelError;
use super::matrix::{Linear, Matrix};
use super::tensors::Tensors;
use crate::format::PackedFile;
use crate::format::meta::{Activation, ModelConfig, NormKind};

/// One transformer block.
#[derive(Debug)]
pub struct DecoderLayer<'a> {
    /// RMSNorm weight before attention.
    pub attn_norm: &'a [f32],
    /// Fused q/k/v projection (q rows, then k, then v).
    pub qkv: Linear<'a>,
    /// Attention output projection.
    pub attn_out: Linear<'a>,
    /// RMSNorm weight before the feed-forward layer.
    pub ffn_norm: &'a [f32],
    /// Fused gate/up projection (gate rows, then up).
    pub gate_up: Linear<'a>,
    /// Down projection.
    pub down: Linear<'a>,
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
    /// Looks up every weight and checks it against `c`.
    pub fn load(file: &'a PackedFile, c: &ModelConfig) -> Result<Self, ModelError> {
        if c.norm != NormKind::Rms || c.activation != Activation::Silu {
            return Err(ModelError::Config(format!(
                "{} decoders need RMSNorm and SwiGLU (got {:?} and {:?})",
                c.architecture.name(),
                c.norm,
                c.activation
            )));
        }
        let t = Tensors { file };
        let (h, hd) = (c.hidden_size, c.head_dim);
        let (q_dim, kv_dim, ff) = (c.num_heads * hd, c.num_kv_heads * hd, c.intermediate_size);
        let embed = t.matrix("token_embd.weight", c.vocab_size, h)?;
        let output = if c.tied_embeddings {
            embed
        } else {
            t.matrix("output.weight", c.vocab_size, h)?
        };
        let output = Linear::new(vec![(output, None)]);
        let layer = |i: usize| -> Result<DecoderLayer<'a>, ModelError> {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (q, k, v) = (n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight"));
            let (gate, up, out, down) = (
                n("ffn_gate.weight"),
                n("ffn_up.weight"),
                n("attn_output.weight"),
                n("ffn_down.weight"),
            );
            Ok(DecoderLayer {
                attn_norm: t.vector(&n("attn_norm.weight"), h)?,
                qkv: t.linear(
                    &n("attn_qkv.weight"),
                    &[(&q, q_dim), (&k, kv_dim), (&v, kv_dim)],
                    h,
                    c.qkv_bias,
                )?,
                attn_out: t.linear(&out, &[(&out, h)], q_dim, c.attn_out_bias)?,
                ffn_norm: t.vector(&n("ffn_norm.weight"), h)?,
                gate_up: t.linear(&n("ffn_gate_up.weight"), &[(&gate, ff), (&up, ff)], h, c.mlp_bias)?,
                down: t.linear(&down, &[(&down, h)], ff, c.mlp_bias)?,
            })
        };
        let layers = (0..c.num_layers).map(layer).collect::<Result<_, _>>()?;
        Ok(DecoderWeights {
            embed,
            output_norm: t.vector("output_norm.weight", h)?,
            output,
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
