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

    /// A `rows × cols` matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>, ModelError> {
        let v = self.file.tensor(name)?;
        if v.info.shape != [rows as u64, cols as u64] {
            return Err(shape_error(name, &v.info.shape, &[rows, cols]));
        }
        Ok(Matrix::from_view(v)?)
    }

    /// A linear layer stored either fused under `fused` (the parts' rows stacked) or as the
    /// separate tensors `parts` (name, rows), all `….weight`. With `bias`, each stored matrix
    /// has its `….bias` vector, which must be there.
    pub fn linear(
        &self,
        fused: &str,
        parts: &[(&str, usize)],
        cols: usize,
        bias: bool,
    ) -> Result<Linear<'a>, ModelError> {
        let with_bias = |name: &str, rows: usize| -> Result<_, ModelError> {
            let b = match name.strip_suffix(".weight") {
                Some(stem) if bias => Some(self.vector(&format!("{stem}.bias"), rows)?),
                _ => None,
            };
            Ok((self.matrix(name, rows, cols)?, b))
        };
        let stored: Vec<(&str, usize)> = if self.file.get(fused).is_some() || parts.len() == 1 {
            vec![(fused, parts.iter().map(|p| p.1).sum())]
        } else {
            parts.to_vec()
        };
        Ok(Linear::new(
            stored
                .into_iter()
                .map(|(name, rows)| with_bias(name, rows))
                .collect::<Result<_, _>>()?,
        ))
    }
}
