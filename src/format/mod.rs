//! The packed `.edgelm` file format: one little-endian file holding the model
//! configuration, the tokenizer, the chat template and every tensor, aligned for the
//! kernels and mapped without copying. `docs/FORMAT.md` specifies it byte by byte.

pub mod meta;
pub mod reader;
pub mod spec;
pub mod table;
pub mod text;
pub mod writer;

pub use meta::Metadata;
pub use reader::{FormatError, PackedFile, TensorInfo, TensorView};
pub use spec::{DType, Layout};
pub use table::Table;
pub use writer::{PackedWriter, TensorPlan, WriteError};

#[cfg(test)]
pub(crate) mod tests;
