//! The C API of edgelm (`libedgelm.so`, `libedgelm.a`, `include/edgelm.h`).
//!
//! Every entry point returns an [`EdgelmStatus`], runs inside `catch_unwind`, checks its
//! handles (magic number, busy flag: see `handle.rs`) and pointers before use, and writes
//! results only to caller-sized buffers or to memory that an edgelm function frees.
//! `docs/C_API.md` is the guide; the header documents each function. What the Python package
//! shares with it (owned sessions, error kinds, checks) is in the `edgelm-ffi` crate.
#![warn(missing_docs)]

mod embed;
mod error;
mod handle;
mod model;
mod session;

use std::ffi::{CStr, c_char};

pub use error::EdgelmStatus;
use error::{Error, ErrorKind};

/// Major version of the C API: changes break source or binary compatibility.
pub const EDGELM_API_VERSION_MAJOR: u32 = 0;
/// Minor version: additions.
pub const EDGELM_API_VERSION_MINOR: u32 = 2;
/// Patch version.
pub const EDGELM_API_VERSION_PATCH: u32 = 0;
/// `major * 10000 + minor * 100 + patch`, what `edgelm_api_version()` returns.
pub const EDGELM_API_VERSION: u32 =
    EDGELM_API_VERSION_MAJOR * 10000 + EDGELM_API_VERSION_MINOR * 100 + EDGELM_API_VERSION_PATCH;

/// The API version of the linked library (`EDGELM_API_VERSION` of its header); compare with
/// the header's to catch a mismatched library at run time.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_api_version() -> u32 {
    EDGELM_API_VERSION
}

/// `ptr` as a mutable reference, or an error naming the argument.
///
/// # Safety
/// `ptr` is null or valid for writes of a `T`.
unsafe fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Error> {
    if !ptr.is_aligned() {
        return Err(Error::arg(format!("{name} is misaligned")));
    }
    // SAFETY: aligned, and valid when non-null per this function's contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::new(ErrorKind::NullArgument, format!("{name} is NULL")))
}

/// `n` values at `ptr` (NULL is accepted when `n` is 0).
///
/// # Safety
/// `ptr` is null or points to `n` initialised values that outlive the call.
unsafe fn slice<'a, T>(ptr: *const T, n: usize, name: &str) -> Result<&'a [T], Error> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::new(ErrorKind::NullArgument, format!("{name} is NULL")));
    }
    if !ptr.is_aligned()
        || n.checked_mul(size_of::<T>())
            .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Error::arg(format!("{name} is misaligned or too long")));
    }
    // SAFETY: non-null, aligned, size in range; valid per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// The NUL-terminated UTF-8 text at `ptr`.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::new(ErrorKind::NullArgument, format!("{name} is NULL")));
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| Error::arg(format!("{name} is not UTF-8: {e}")))
}

/// Copies `src` to the caller's buffer `buf` of `cap` values and writes `src.len()` to
/// `needed`; `BufferTooSmall` (nothing copied) when it does not fit.
///
/// # Safety
/// `buf` is null or valid for `cap` writes; `needed` is null or valid for a write.
unsafe fn copy_out<T: Copy>(src: &[T], buf: *mut T, cap: usize, needed: *mut usize) -> Result<(), Error> {
    // SAFETY: forwarded contract.
    *unsafe { out(needed, "needed") }? = src.len();
    if src.len() > cap {
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!("the buffer holds {cap} values, {} are needed", src.len()),
        ));
    }
    if src.is_empty() {
        return Ok(());
    }
    if buf.is_null() {
        return Err(Error::new(ErrorKind::NullArgument, "the output buffer is NULL"));
    }
    if !buf.is_aligned() {
        return Err(Error::arg("the output buffer is misaligned"));
    }
    // SAFETY: `buf` is non-null, aligned and valid for `cap >= src.len()` writes per this
    // function's contract; `src` is Rust memory, so they do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len()) };
    Ok(())
}
