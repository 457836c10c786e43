//! Read-only arrays that outlive the borrow of their packed file: a tensor shared without
//! copying (the table keeps the file's bytes alive), or an array built in memory.

use std::ops::{Deref, Range};
use std::sync::Arc;

use zerocopy::{FromBytes, Immutable};

use super::reader::Bytes;
use super::spec::DType;

/// A read-only array of `T` from a packed file or from memory.
pub struct Table<T> {
    /// The elements: inside `file`'s bytes, or in `vec`'s buffer.
    ptr: *const T,
    len: usize,
    /// Keeps the file's bytes alive (a table of a file).
    file: Option<Arc<Bytes>>,
    /// Owns the elements (a table built in memory; empty for a table of a file).
    _vec: Vec<T>,
}

// SAFETY: a table is an immutable view into bytes it keeps alive; it shares them between
// threads like `Arc<[T]>` does, so it is as `Send` and `Sync` as `T` is.
unsafe impl<T: Sync + Send> Send for Table<T> {}
// SAFETY: as above; no method mutates the elements.
unsafe impl<T: Sync + Send> Sync for Table<T> {}

impl<T: FromBytes + Immutable> Table<T> {
    /// The `range` of `bytes`, if it holds whole, aligned `T`s.
    pub(super) fn shared(bytes: &Arc<Bytes>, range: Range<usize>) -> Option<Table<T>> {
        let elems = <[T]>::ref_from_bytes(bytes.get(range)?).ok()?;
        Some(Table {
            ptr: elems.as_ptr(),
            len: elems.len(),
            file: Some(Arc::clone(bytes)),
            _vec: Vec::new(),
        })
    }
}

impl<T> From<Vec<T>> for Table<T> {
    fn from(v: Vec<T>) -> Self {
        Table {
            ptr: v.as_ptr(),
            len: v.len(),
            file: None,
            _vec: v,
        }
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` and `len` describe initialized, aligned `T`s inside `file`'s bytes
        // (checked by `shared`) or in `_vec`'s buffer (which moving the vector does not move);
        // both live as long as `self`, and nothing mutates them (files are mapped read-only or
        // owned by a `PackedFile` that only lends its bytes immutably).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = if self.file.is_some() { "file" } else { "memory" };
        f.debug_struct("Table")
            .field("len", &self.len())
            .field("in", &source)
            .finish()
    }
}

/// Element types a [`Table`] can hold, with the tensor type that stores them.
pub trait Element: FromBytes + Immutable {
    /// The tensor type of a table of these.
    const DTYPE: DType;
}

impl Element for u8 {
    const DTYPE: DType = DType::U8;
}

impl Element for u32 {
    const DTYPE: DType = DType::U32;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
