//! A decoder session: one conversation's sequence and a [`BatchDecoder`] to run it, created
//! once. Feeding tokens after creation performs no heap allocation.

use std::path::Path;

use edgelm_kernels::Kernels;

use crate::batch::{BatchDecoder, Logits, Sequence, Span, context_of};
use crate::kv_cache::KvType;
use crate::model::{Model, ModelError};
use crate::prompt_cache::CacheError;
use crate::sampling::Sampler;

/// How a session is set up.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Context size in tokens (default: the model's maximum, capped at 4096).
    pub context: Option<usize>,
    /// Tokens processed per forward pass during prompt processing.
    pub batch: usize,
    /// Worker threads (default: the physical performance cores).
    pub threads: Option<usize>,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Kernel path to force (an `Isa` name: `scalar`, `avx2`, `avx512vnni`, `dotprod`, ...); default: the
    /// `EDGELM_ISA` environment variable, else the best the CPU supports.
    pub isa: Option<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            context: None,
            batch: 64,
            threads: None,
            kv_type: KvType::F16,
            isa: None,
        }
    }
}

/// Why a session cannot be made or cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The model cannot run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The options do not fit the model or the machine.
    #[error("{0}")]
    Options(String),
    /// The tokens do not fit in what is left of the context.
    #[error(
        "context is full: {needed} tokens needed, the context holds {context} (use a larger -c, or --keep N to slide the window)"
    )]
    ContextFull {
        /// Tokens that would be in the context.
        needed: usize,
        /// Context size.
        context: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
}

/// A conversation with a decoder model: everything needed to feed tokens and get logits.
pub struct Session<'m> {
    dec: BatchDecoder<'m>,
    seq: Sequence,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("isa", &self.kernels().isa)
            .field("threads", &self.threads())
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl<'m> Session<'m> {
    /// Allocates the cache and buffers and starts the threads.
    pub fn new(model: &'m Model, opts: &SessionOptions) -> Result<Session<'m>, SessionError> {
        // The cache first: where memory is short, its error says what helps (--kv q8).
        let seq = Sequence::new(model, opts.kv_type, context_of(model, opts)?)?;
        let dec = BatchDecoder::new(model, opts)?;
        Ok(Session { dec, seq })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.dec.model()
    }

    /// The kernel path in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.dec.kernels()
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.dec.threads()
    }

    /// Context size in tokens.
    pub fn context(&self) -> usize {
        self.seq.context()
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.seq.kv_bytes()
    }

    /// Tokens processed so far (the next token's position).
    pub fn position(&self) -> usize {
        self.seq.position()
    }

    /// The tokens in the context, in order.
    pub fn tokens(&self) -> &[u32] {
        self.seq.tokens()
    }

    /// Forgets the context.
    pub fn reset(&mut self) {
        self.seq.truncate(0);
    }

    /// Keeps only the first `len` tokens of the context.
    pub fn truncate(&mut self, len: usize) {
        self.seq.truncate(len);
    }

    /// See [`Sequence::reuse_prefix`].
    pub fn reuse_prefix(&mut self, ids: &[u32]) -> usize {
        self.seq.reuse_prefix(ids)
    }

    /// See [`Sequence::save_prompt_cache`].
    pub fn save_prompt_cache(&self, path: &Path, len: usize) -> Result<(), CacheError> {
        self.seq.save_prompt_cache(self.model(), path, len)
    }

    /// See [`Sequence::load_prompt_cache`]; follow with [`Session::reuse_prefix`] to use the
    /// part a prompt shares with it.
    pub fn load_prompt_cache(&mut self, path: &Path) -> Result<usize, CacheError> {
        self.seq.load_prompt_cache(self.dec.model(), path)
    }

    /// Most tokens one forward pass takes (longer inputs go in several).
    pub fn batch(&self) -> usize {
        self.dec.batch()
    }

    /// Runs `f` with the session's thread pool installed on this thread once for all the work
    /// inside (see [`crate::engine::Engine::install`]).
    pub fn run_in_pool<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let engine = self.dec.engine().clone();
        engine.install(|| f(self))
    }

    /// Appends `tokens` to the context and returns the logits after the last one.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&mut [f32], SessionError> {
        self.dec.check_room(&self.seq, tokens)?;
        for chunk in tokens.chunks(self.dec.batch()) {
            self.forward(chunk, Logits::Last)?;
        }
        Ok(self.dec.logits_mut(0))
    }

    /// Appends `tokens` and samples the next token (the context feeds the repetition penalty).
    pub fn feed_and_sample(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32, SessionError> {
        self.feed(tokens)?;
        Ok(sampler.sample(self.dec.logits_mut(0), self.seq.tokens()))
    }

    /// Appends `tokens` and calls `f(i, logits)` with the logits after each token `i`.
    pub fn feed_all(&mut self, tokens: &[u32], mut f: impl FnMut(usize, &[f32])) -> Result<(), SessionError> {
        self.dec.check_room(&self.seq, tokens)?;
        let batch = self.dec.batch();
        for (c, chunk) in tokens.chunks(batch).enumerate() {
            self.forward(chunk, Logits::All)?;
            for i in 0..chunk.len() {
                f(c * batch + i, self.dec.logits_mut(i));
            }
        }
        Ok(())
    }

    /// Drops `discard` tokens after the first `keep` and moves the rest down, rotating the
    /// cached keys back by `discard` positions (a sliding window that keeps the system prompt).
    pub fn shift_context(&mut self, keep: usize, discard: usize) {
        self.dec.shift_context(&mut self.seq, keep, discard);
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<(), SessionError> {
        let span = Span {
            seq: 0,
            len: tokens.len(),
        };
        self.dec
            .forward(std::slice::from_mut(&mut self.seq), tokens, &[span], logits)
    }
}
