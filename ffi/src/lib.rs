//! What edgelm's C API (`capi/`) and Python package (`python/`) share: sessions and
//! embedders that own a share of their model, the kinds of failure both report (as status
//! codes and as exception classes), and the checks of settings that come from outside.
#![warn(missing_docs)]

mod owned;

use edgelm::chat::ChatError;
use edgelm::embed::EmbedError;
use edgelm::model::ModelError;
use edgelm::sampling::SamplingParams;
use edgelm::session::SessionError;
use edgelm::tokenizer::TokenizerError;

pub use owned::{OwnedEmbedder, OwnedSession};

/// Kinds of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required pointer argument is NULL.
    NullArgument,
    /// A handle is not one of this kind (wrong kind, freed, or garbage).
    InvalidHandle,
    /// An argument is out of range, not UTF-8, or an option is unknown.
    InvalidArgument,
    /// A caller's buffer is too small; it needs more room.
    BufferTooSmall,
    /// The model file cannot be read or is not a valid edgelm model.
    Model,
    /// The model cannot do this (generation with an encoder, embeddings with a decoder).
    Unsupported,
    /// The tokens do not fit in what is left of the session's context.
    ContextFull,
    /// The chat template failed to render.
    Template,
    /// The handle is in use by another call.
    Busy,
    /// A bug in edgelm (a caught panic); the message says where.
    Internal,
}

/// A failure: its kind and message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// An invalid-argument error.
    pub fn arg(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Error {
        let kind = match e {
            ModelError::Config(_) => ErrorKind::Unsupported,
            _ => ErrorKind::Model,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Error {
        match e {
            SessionError::Model(e) => e.into(),
            // The session's own wording names the command line's options.
            SessionError::ContextFull { needed, context } => Error::new(
                ErrorKind::ContextFull,
                format!(
                    "context is full: {needed} tokens needed, the context holds {context} (open the session with a larger context)"
                ),
            ),
            SessionError::Options(_) | SessionError::BadToken { .. } => Error::arg(e.to_string()),
        }
    }
}

impl From<ChatError> for Error {
    fn from(e: ChatError) -> Error {
        match e {
            ChatError::Template(_) => Error::new(ErrorKind::Template, e.to_string()),
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
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl std::error::Error for Error {}

/// Longest penalty window taken from outside: longer than any context, so a longer one acts
/// the same, and the sampler's buffers stay small however large the request.
const MAX_WINDOW: usize = 1 << 20;

/// `p` if [`SamplingParams::check`] passes, with its penalty windows capped at
/// [`MAX_WINDOW`] tokens.
pub fn checked_sampling(p: SamplingParams) -> Result<SamplingParams, Error> {
    p.check().map_err(|e| Error::arg(e.to_string()))?;
    Ok(SamplingParams {
        repeat_last_n: p.repeat_last_n.min(MAX_WINDOW),
        dry_penalty_last_n: p.dry_penalty_last_n.min(MAX_WINDOW),
        ..p
    })
}

/// `stop` if no stop string is empty: an empty one would end every answer before its first
/// character (the server refuses it too).
pub fn checked_stop(stop: Vec<String>) -> Result<Vec<String>, Error> {
    match stop.iter().position(String::is_empty) {
        Some(i) => Err(Error::arg(format!(
            "stop: string {i} is empty; a stop string needs at least one character"
        ))),
        None => Ok(stop),
    }
}

/// A requested worker-thread count (`0` or `None`: the library's default), capped at the cores
/// this process may use: a hostile count must not try to start billions of threads.
pub fn threads(requested: Option<usize>) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    requested.filter(|&n| n != 0).map(|n| n.min(cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_checked_by_the_library_and_windows_capped() {
        let bad = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        };
        let e = checked_sampling(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().starts_with("top_p 0: must be above 0"), "{e}");
        let long = SamplingParams {
            repeat_last_n: usize::MAX,
            ..SamplingParams::default()
        };
        assert_eq!(checked_sampling(long).unwrap().repeat_last_n, MAX_WINDOW);
    }

    #[test]
    fn context_full_gives_the_counts_without_command_line_options() {
        let e = Error::from(SessionError::ContextFull {
            needed: 700,
            context: 512,
        });
        assert_eq!(e.kind(), ErrorKind::ContextFull);
        let m = e.to_string();
        assert!(m.contains("700 tokens needed, the context holds 512"), "{m}");
        assert!(!m.contains("-c") && !m.contains("--keep"), "{m}");
    }
}
