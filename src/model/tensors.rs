//! Looking up weights by name with their shapes checked against the configuration, through
//! the architecture's tensor table.

use super::ModelError;
use super::encoder::LayerNorm;
use super::matrix::{Linear, Matrix};
use crate::arch::{self, ArchDef, Shape};
use crate::format::meta::ModelConfig;
use crate::format::{FormatError, PackedFile, TensorView};

/// Typed, shape-checked access to a packed file's tensors.
pub(super) struct Tensors<'a, 'c> {
    pub file: &'a PackedFile,
    pub def: &'static ArchDef,
    pub config: &'c ModelConfig,
}

fn shape_error(name: &str, got: &[u64], want: &[usize]) -> ModelError {
    ModelError::Format(FormatError::Tensor {
        name: name.to_owned(),
        problem: format!("has shape {got:?}, the config needs {want:?}"),
    })
}

impl<'a, 'c> Tensors<'a, 'c> {
    /// The tensors of `file` through the table of `config`'s architecture.
    pub fn new(file: &'a PackedFile, config: &'c ModelConfig) -> Self {
        Tensors {
            file,
            def: arch::def(config.architecture),
            config,
        }
    }

    /// The tensor `name`, which must have the shape `want`.
    fn shaped(&self, name: &str, want: &[usize]) -> Result<TensorView<'a>, ModelError> {
        let v = self.file.tensor(name)?;
        if !v.info.shape.iter().copied().eq(want.iter().map(|&d| d as u64)) {
            return Err(shape_error(name, &v.info.shape, want));
        }
        Ok(v)
    }

    /// An f32 vector of `len` values.
    pub fn vector(&self, name: &str, len: usize) -> Result<&'a [f32], ModelError> {
        Ok(self.shaped(name, &[len])?.f32s()?)
    }

    /// An f32 `rows × cols` matrix, as its values.
    pub fn floats(&self, name: &str, rows: usize, cols: usize) -> Result<&'a [f32], ModelError> {
        Ok(self.shaped(name, &[rows, cols])?.f32s()?)
    }

    /// The LayerNorm `name` (`name.weight`, `name.bias`) over the hidden size.
    pub fn layer_norm(&self, name: &str) -> Result<LayerNorm<'a>, ModelError> {
        let h = self.config.hidden_size;
        Ok(LayerNorm {
            weight: self.vector(&format!("{name}.weight"), h)?,
            bias: self.vector(&format!("{name}.bias"), h)?,
        })
    }

    /// A `rows × cols` matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>, ModelError> {
        Ok(Matrix::from_view(self.shaped(name, &[rows, cols])?)?)
    }

    /// The error for a block tensor the architecture's table does not have.
    pub fn lacks(&self, slot: &str) -> ModelError {
        ModelError::Config(format!("the {} table has no {slot} tensor", self.def.arch.name()))
    }

    /// Block `i`'s vector `slot` (`attn_q_norm`), or `None` if the architecture has none.
    pub fn block_vector(&self, i: usize, slot: &str) -> Result<Option<&'a [f32]>, ModelError> {
        let Some(d) = self.def.block_tensor(slot) else {
            return Ok(None);
        };
        let Shape::Vector(len) = d.shape else {
            return Err(self.lacks(slot));
        };
        self.vector(&format!("blk.{i}.{slot}.weight"), len.size(self.config))
            .map(Some)
    }

    /// Block `i`'s vector `slot`, which the architecture must have.
    pub fn required_block_vector(&self, i: usize, slot: &str) -> Result<&'a [f32], ModelError> {
        self.block_vector(i, slot)?.ok_or_else(|| self.lacks(slot))
    }

    /// Block `i`'s linear layer `slot`: the table's tensor of that name, or the parts it fuses
    /// into `slot` (`attn_q`, `attn_k`, `attn_v` into `attn_qkv`), stored fused under
    /// `blk.i.slot` or apart, each with its bias where the configuration has one.
    pub fn block_linear(&self, i: usize, slot: &str) -> Result<Linear<'a>, ModelError> {
        let c = self.config;
        let parts = self.def.parts(slot);
        let Some(first) = parts.first() else {
            return Err(self.lacks(slot));
        };
        let Shape::Matrix(_, cols) = first.shape else {
            return Err(self.lacks(slot));
        };
        let cols = cols.size(c);
        let rows_of = |d: &crate::arch::TensorDef| match d.shape {
            Shape::Matrix(r, _) => r.size(c),
            Shape::Vector(r) => r.size(c),
        };
        let fused = format!("blk.{i}.{slot}");
        let stored: Vec<(String, usize)> =
            if parts.len() == 1 || self.file.get(&format!("{fused}.weight")).is_some() {
                vec![(fused, parts.iter().map(|d| rows_of(d)).sum())]
            } else {
                parts
                    .iter()
                    .map(|d| (format!("blk.{i}.{}", d.name), rows_of(d)))
                    .collect()
            };
        let bias = first.bias.present(c);
        Ok(Linear::new(
            stored
                .into_iter()
                .map(|(stem, rows)| {
                    let b = if bias {
                        Some(self.vector(&format!("{stem}.bias"), rows)?)
                    } else {
                        None
                    };
                    Ok((self.matrix(&format!("{stem}.weight"), rows, cols)?, b))
                })
                .collect::<Result<_, ModelError>>()?,
        ))
    }
}
