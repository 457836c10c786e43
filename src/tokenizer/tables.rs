//! Gathering the table tensors of a tokenizer, typed and with their shapes checked: shared
//! with a packed file without copying, or read from tensors about to be written.

use super::TokenizerError;
use super::vocab::table_error;
use crate::format::meta::tok_tensor;
use crate::format::table::Element;
use crate::format::{FormatError, Layout, PackedFile, Table, TensorPlan};

/// A tensor as a table, with its shape.
type Shaped<T> = (Vec<u64>, Table<T>);

/// Where the tables come from.
pub(crate) trait Source {
    /// The tensor `name` as a table of `T`; `None` if absent, an error if it has another type.
    fn shaped<T: Element>(&self, name: &'static str) -> Result<Option<Shaped<T>>, TokenizerError>;
}

impl Source for PackedFile {
    fn shaped<T: Element>(&self, name: &'static str) -> Result<Option<Shaped<T>>, TokenizerError> {
        let Some(table) = self.table::<T>(name)? else {
            return Ok(None);
        };
        let shape = self.tensor(name)?.info.shape.clone();
        Ok(Some((shape, table)))
    }
}

impl Source for [(TensorPlan, Vec<u8>)] {
    fn shaped<T: Element>(&self, name: &'static str) -> Result<Option<Shaped<T>>, TokenizerError> {
        let Some((plan, bytes)) = self.iter().find(|(p, _)| p.name == name) else {
            return Ok(None);
        };
        let numel = plan.shape.iter().product::<u64>();
        if plan.dtype != T::DTYPE || plan.layout != Layout::RowMajor {
            return Err(FormatError::Tensor {
                name: name.into(),
                problem: format!("is {} {}, expected {}", plan.dtype, plan.layout.name(), T::DTYPE),
            }
            .into());
        }
        if bytes.len() as u64 != numel * size_of::<T>() as u64 {
            return Err(table_error(
                name,
                format!("{} bytes for shape {:?}", bytes.len(), plan.shape),
            ));
        }
        let values = bytes
            .chunks_exact(size_of::<T>())
            .filter_map(|c| T::read_from_bytes(c).ok())
            .collect::<Vec<T>>();
        Ok(Some((plan.shape.clone(), values.into())))
    }
}

/// Every table a tokenizer may have.
pub(crate) struct Tables {
    /// [`tok_tensor::VOCAB`].
    pub vocab: Table<u8>,
    /// [`tok_tensor::VOCAB_OFFSETS`].
    pub offsets: Table<u32>,
    /// [`tok_tensor::KINDS`].
    pub kinds: Table<u8>,
    /// [`tok_tensor::MERGES`], three words per merge.
    pub merges: Option<Table<u32>>,
    /// [`tok_tensor::SCORES`].
    pub scores: Option<Table<f32>>,
    /// [`tok_tensor::TEXT_INDEX`].
    pub text_index: Option<Table<u32>>,
    /// [`tok_tensor::MERGE_INDEX`].
    pub merge_index: Option<Table<u32>>,
}

fn required<T>(name: &'static str, table: Option<Shaped<T>>) -> Result<Table<T>, TokenizerError> {
    table
        .map(|(_, t)| t)
        .ok_or_else(|| FormatError::Missing(name.into()).into())
}

/// The table, if its shape is `[n, cols]`.
fn rows<T>(
    name: &'static str,
    table: Option<Shaped<T>>,
    cols: u64,
) -> Result<Option<Table<T>>, TokenizerError> {
    match table {
        Some((shape, t)) if shape.len() == 2 && shape[1] == cols => Ok(Some(t)),
        Some((shape, _)) => Err(table_error(
            name,
            format!("shape {shape:?}, expected [n, {cols}]"),
        )),
        None => Ok(None),
    }
}

impl Tables {
    /// Gathers the tables of `source`.
    pub fn gather(source: &(impl Source + ?Sized)) -> Result<Tables, TokenizerError> {
        use tok_tensor::*;
        Ok(Tables {
            vocab: required(VOCAB, source.shaped(VOCAB)?)?,
            offsets: required(VOCAB_OFFSETS, source.shaped(VOCAB_OFFSETS)?)?,
            kinds: required(KINDS, source.shaped(KINDS)?)?,
            merges: rows(MERGES, source.shaped(MERGES)?, 3)?,
            scores: source.shaped(SCORES)?.map(|(_, t)| t),
            text_index: source.shaped(TEXT_INDEX)?.map(|(_, t)| t),
            merge_index: source.shaped(MERGE_INDEX)?.map(|(_, t)| t),
        })
    }
}
