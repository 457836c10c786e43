//! Status codes, the thread-local message of the last failure, and the wrapper that runs
//! every entry point: no panic crosses into C.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use edgelm::chat::ChatError;
use edgelm::embed::EmbedError;
use edgelm::model::ModelError;
use edgelm::session::SessionError;
use edgelm::tokenizer::TokenizerError;

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

pub(crate) use EdgelmStatus as Status;

/// A failure: its status and message (the Python package maps these to exceptions).
#[derive(Debug)]
pub struct Error {
    status: Status,
    message: String,
}

impl Error {
    /// An error with `status` and `message`.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// An invalid-argument error.
    pub fn arg(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Error {
        let status = match e {
            ModelError::Config(_) => Status::Unsupported,
            _ => Status::Model,
        };
        Error::new(status, e.to_string())
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Error {
        match e {
            SessionError::Model(e) => e.into(),
            SessionError::ContextFull { .. } => Error::new(Status::ContextFull, e.to_string()),
            SessionError::Options(_) | SessionError::BadToken { .. } => Error::arg(e.to_string()),
        }
    }
}

impl From<ChatError> for Error {
    fn from(e: ChatError) -> Error {
        match e {
            ChatError::Template(_) => Error::new(Status::Template, e.to_string()),
            ChatError::Tokenizer(e) => e.into(),
        }
    }
}

impl From<TokenizerError> for Error {
    fn from(e: TokenizerError) -> Error {
        Error::arg(e.to_string())
    }
}

impl From<EmbedError> for Error {
    fn from(e: EmbedError) -> Error {
        match e {
            EmbedError::Model(e) => e.into(),
            EmbedError::Tokenizer(e) => e.into(),
            _ => Error::arg(e.to_string()),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// The status code.
    pub fn status(&self) -> EdgelmStatus {
        self.status
    }
}

impl std::error::Error for Error {}

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
        Ok(Ok(())) => return Status::Ok,
        Ok(Err(e)) => e,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::new(
                Status::Internal,
                format!("internal error (please report): {what}"),
            )
        }
    };
    set_last_error(&e.message);
    e.status
}

/// The message of the last failed edgelm call on this thread ("" if none). The text stays
/// valid until the next failed call on this thread; it is owned by edgelm.
///
/// Thread safety: any thread; each thread has its own message.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_last_error() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|e| e.borrow().as_ptr())).unwrap_or(c"internal error".as_ptr())
}
