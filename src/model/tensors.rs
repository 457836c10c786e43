//! Looking up weights by name with their shapes checked against the configuration.

use super::ModelError;
use super::matrix::{Linear, Matrix};
use crate::format::{FormatError, PackedFile};

/// Typed, shape-checked access to a packed file's tensors.
pub(super) struct Tensors<'a> {
    pub file: &'a PackedFile,
}

fn shape_error(name: &str, got: &[u64], want: &[usize]) -> ModelError {
    ModelError::Format(FormatError::Tensor {
        name: name.to_owned(),
        problem: format!("has shape {got:?}, the config needs {want:?}"),
    })
}

impl<'a> Tensors<'a> {
    /// An f32 vector of `len` values.
    pub fn vector(&self, name: &str, len: usize) -> Result<&'a [f32], ModelError> {
        let v = self.file.tensor(name)?;
        if v.info.shape != [len as u64] {
            return Err(shape_error(name, &v.info.shape, &[len]));
        }
        Ok(v.f32s()?)
    }

    /// An optional f32 vector (absent → `None`, present → checked).
    pub fn optional_vector(&self, name: &str, len: usize) -> Result<Option<&'a [f32]>, ModelError> {
        match self.file.get(name) {
            None => Ok(None),
            Some(_) => self.vector(name, len).map(Some),
        }
    }

    /// A `rows × cols` matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>, ModelError> {
        let v = self.file.tensor(name)?;
        if v.info.shape != [rows as u64, cols as u64] {
            return Err(shape_error(name, &v.info.shape, &[rows, cols]));
        }
        Ok(Matrix::from_view(v)?)
    }

    /// A linear layer stored either fused under `fused` (the parts' rows stacked) or as the
    /// separate tensors `parts` (name, rows); with an optional bias `bias`.
    pub fn linear(
        &self,
        fused: &str,
        parts: &[(&str, usize)],
        cols: usize,
        bias: Option<&str>,
    ) -> Result<Linear<'a>, ModelError> {
        let rows: usize = parts.iter().map(|p| p.1).sum();
        let matrices = if self.file.get(fused).is_some() || parts.len() == 1 {
            vec![self.matrix(fused, rows, cols)?]
        } else {
            parts
                .iter()
                .map(|&(name, r)| self.matrix(name, r, cols))
                .collect::<Result<_, _>>()?
        };
        let bias = match bias {
            Some(name) => self.optional_vector(name, rows)?,
            None => None,
        };
        Ok(Linear::new(matrices, bias))
    }
}
