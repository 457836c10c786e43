//! Weights of BERT encoders, loaded and shape-checked.

use super::ModelError;
use super::matrix::{Linear, Matrix};
use super::tensors::Tensors;
use crate::format::PackedFile;
use crate::format::meta::ModelConfig;

/// LayerNorm parameters.
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm<'a> {
    /// Scale.
    pub weight: &'a [f32],
    /// Shift.
    pub bias: &'a [f32],
}

/// One post-LayerNorm encoder block: `x = LN(x + attn(x))`, then `x = LN(x + ffn(x))`.
#[derive(Debug)]
pub struct EncoderLayer<'a> {
    /// Fused q/k/v projection (q rows, then k, then v).
    pub qkv: Linear<'a>,
    /// Attention output projection.
    pub attn_out: Linear<'a>,
    /// LayerNorm after the attention residual.
    pub attn_norm: LayerNorm<'a>,
    /// Feed-forward up projection (followed by GELU).
    pub up: Linear<'a>,
    /// Feed-forward down projection.
    pub down: Linear<'a>,
    /// LayerNorm after the feed-forward residual.
    pub out_norm: LayerNorm<'a>,
}

/// All weights of a BERT encoder.
#[derive(Debug)]
pub struct EncoderWeights<'a> {
    /// Word embeddings (`vocab × hidden`).
    pub token_embd: Matrix<'a>,
    /// Learned absolute position embeddings (`max_context × hidden`).
    pub position_embd: Matrix<'a>,
    /// Token-type (segment) embeddings; every input is segment 0. `None` without segments.
    pub token_types: Option<Matrix<'a>>,
    /// LayerNorm of the summed embeddings.
    pub embd_norm: LayerNorm<'a>,
    /// The blocks.
    pub layers: Vec<EncoderLayer<'a>>,
}

impl<'a> EncoderWeights<'a> {
    /// Looks up every weight and checks it against `c`.
    pub fn load(file: &'a PackedFile, c: &ModelConfig) -> Result<Self, ModelError> {
        let t = Tensors::new(file, c);
        let h = c.hidden_size;
        let layer = |i: usize| -> Result<EncoderLayer<'a>, ModelError> {
            Ok(EncoderLayer {
                qkv: t.block_linear(i, "attn_qkv")?,
                attn_out: t.block_linear(i, "attn_output")?,
                attn_norm: t.layer_norm(&format!("blk.{i}.attn_output_norm"))?,
                up: t.block_linear(i, "ffn_up")?,
                down: t.block_linear(i, "ffn_down")?,
                out_norm: t.layer_norm(&format!("blk.{i}.layer_output_norm"))?,
            })
        };
        let token_types = match c.type_vocab_size {
            0 => None,
            types => Some(t.matrix("token_types.weight", types, h)?),
        };
        Ok(EncoderWeights {
            token_embd: t.matrix("token_embd.weight", c.vocab_size, h)?,
            position_embd: t.matrix("position_embd.weight", c.max_context, h)?,
            token_types,
            embd_norm: t.layer_norm("token_embd_norm")?,
            layers: (0..c.num_layers).map(layer).collect::<Result<_, _>>()?,
        })
    }
}
