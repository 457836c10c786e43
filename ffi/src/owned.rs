//! Sessions and embedders that own a share of their model. The library's `Session<'m>` and
//! `Embedder<'m>` borrow the model; across a C or Python boundary there is no lifetime to
//! borrow for, so each handle keeps an `Arc<Model>` next to the value that borrows from it
//! (a self-referential pair built by `self_cell`, no `unsafe` here). Freeing the model handle
//! drops one reference: the file stays mapped until its last session or embedder is gone.

use std::sync::Arc;

use edgelm::embed::{EmbedError, EmbedOptions, Embedder};
use edgelm::model::Model;
use edgelm::session::{Session, SessionError, SessionOptions};

self_cell::self_cell!(
    /// A decoder session owning a share of its model.
    pub struct OwnedSession {
        owner: Arc<Model>,
        #[covariant]
        dependent: Session,
    }
);

self_cell::self_cell!(
    /// A sentence embedder owning a share of its model.
    pub struct OwnedEmbedder {
        owner: Arc<Model>,
        #[covariant]
        dependent: Embedder,
    }
);

impl OwnedSession {
    /// A session of `model` (see [`Session::new`]).
    pub fn open(model: Arc<Model>, opts: &SessionOptions) -> Result<OwnedSession, SessionError> {
        OwnedSession::try_new(model, |m| Session::new(m, opts))
    }

    /// Runs `f` with the session.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
        self.with_dependent_mut(|_, s| f(s))
    }
}

impl OwnedEmbedder {
    /// An embedder of `model` (see [`Embedder::new`]).
    pub fn open(model: Arc<Model>, opts: &EmbedOptions) -> Result<OwnedEmbedder, EmbedError> {
        OwnedEmbedder::try_new(model, |m| Embedder::new(m, opts))
    }

    /// Runs `f` with the embedder.
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Embedder<'_>) -> R) -> R {
        self.with_dependent_mut(|_, e| f(e))
    }
}
