//! Status codes, the thread-local message of the last failure, and the wrapper that runs
//! every entry point: no panic crosses into C.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub(crate) use edgelm_ffi::{Error, ErrorKind};

/// What an edgelm function returns. Anything but `EDGELM_STATUS_OK` leaves a message for
/// `edgelm_last_error()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgelmStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument is NULL.
    NullArgument = 1,
    /// A handle is not one of this kind (wrong kind, freed, or garbage).
    InvalidHandle = 2,
    /// An argument is out of range, not UTF-8, or an option is unknown.
    InvalidArgument = 3,
    /// A caller's buffer is too small; the needed size was written to the `needed` argument.
    BufferTooSmall = 4,
    /// The model file cannot be read or is not a valid edgelm model.
    Model = 5,
    /// The model cannot do this (generation with an encoder, embeddings with a decoder).
    Unsupported = 6,
    /// The tokens do not fit in what is left of the session's context.
    ContextFull = 7,
    /// The chat template failed to render.
    Template = 8,
    /// The handle is in use by another call.
    Busy = 9,
    /// A bug in edgelm (a caught panic); the message says where.
    Internal = 10,
}

impl From<ErrorKind> for EdgelmStatus {
    fn from(kind: ErrorKind) -> EdgelmStatus {
        match kind {
            ErrorKind::NullArgument => EdgelmStatus::NullArgument,
            ErrorKind::InvalidHandle => EdgelmStatus::InvalidHandle,
            ErrorKind::InvalidArgument => EdgelmStatus::InvalidArgument,
            ErrorKind::BufferTooSmall => EdgelmStatus::BufferTooSmall,
            ErrorKind::Model => EdgelmStatus::Model,
            ErrorKind::Unsupported => EdgelmStatus::Unsupported,
            ErrorKind::ContextFull => EdgelmStatus::ContextFull,
            ErrorKind::Template => EdgelmStatus::Template,
            ErrorKind::Busy => EdgelmStatus::Busy,
            ErrorKind::Internal => EdgelmStatus::Internal,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs an entry point: `Ok` becomes `EDGELM_STATUS_OK`, an error its status with its
/// message kept for `edgelm_last_error`, a panic `EDGELM_STATUS_INTERNAL`.
pub(crate) fn run(f: impl FnOnce() -> Result<(), Error>) -> EdgelmStatus {
    let e = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return EdgelmStatus::Ok,
        Ok(Err(e)) => e,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::new(
                ErrorKind::Internal,
                format!("internal error (please report): {what}"),
            )
        }
    };
    set_last_error(&e.to_string());
    e.kind().into()
}

/// The message of the last failed edgelm call on this thread ("" if none). The text stays
/// valid until the next failed call on this thread; it is owned by edgelm.
///
/// Thread safety: any thread; each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_last_error() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|e| e.borrow().as_ptr())).unwrap_or(c"internal error".as_ptr())
}
