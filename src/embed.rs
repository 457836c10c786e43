//! Sentence embeddings with encoder models (BERT): texts are tokenized, packed end to end into
//! one batch, run through the encoder, then pooled (mean over each sentence's tokens, or its
//! `[CLS]` token) and L2-normalised as the model's sentence-transformers configuration says.
//!
//! An [`Embedder`] owns every buffer for `batch_tokens` tokens and its thread pool, made once;
//! [`Embedder::embed_batch`] performs no heap allocation.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use edgelm::embed::{EmbedOptions, Embedder, cosine};
//! use edgelm::model::Model;
//!
//! let model = Model::open("all-minilm-l6-v2.q8_0.edgelm".as_ref())?;
//! let mut embedder = Embedder::new(&model, &EmbedOptions::default())?;
//! let e = embedder.embed(&["A cat sits on the mat.", "There is a cat on a rug."])?;
//! println!("{} dimensions, cosine {:.3}", e.dim(), cosine(e.get(0), e.get(1)));
//! # Ok(())
//! # }
//! ```

mod index;

use std::ops::Range;

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Isa, Kernels};

use crate::batch::filled;
use crate::engine::Engine;
use crate::format::meta::{Activation, Pooling, PoolingMode};
use crate::model::{EncoderWeights, LayerNorm, Model, ModelError};
use crate::nn::{bidirectional, par_rows};
use crate::tokenizer::{EncodeOptions, TokenizerError};

pub use index::{CacheStatus, CorpusIndex, Hit, IndexError, model_fingerprint};

/// How an [`Embedder`] is set up.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// Longest input in tokens, `[CLS]` and `[SEP]` included; longer texts are truncated
    /// (default: the model's, i.e. sentence-transformers' `max_seq_length`).
    pub max_length: Option<usize>,
    /// Tokens per forward pass, all sentences of a batch together (raised to `max_length`).
    pub batch_tokens: usize,
    /// Worker threads (default: the physical performance cores).
    pub threads: Option<usize>,
    /// Kernel path to force (see [`crate::session::SessionOptions::isa`]).
    pub isa: Option<String>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            max_length: None,
            batch_tokens: 1024,
            threads: None,
            isa: None,
        }
    }
}

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model is not an encoder, or its weights are unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokenizing a text failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The options do not fit the model or the machine.
    #[error("{0}")]
    Options(String),
    /// An input of token ids is empty or longer than the maximum length.
    #[error("input {index} has {len} tokens; inputs need 1 to {max}")]
    Length {
        /// Position of the input in the batch.
        index: usize,
        /// Its tokens.
        len: usize,
        /// The maximum length.
        max: usize,
    },
    /// A batch holds more tokens than the embedder has room for.
    #[error("the batch holds {tokens} tokens, more than the {capacity} the embedder was made for")]
    BatchFull {
        /// Tokens in the batch.
        tokens: usize,
        /// The embedder's `batch_tokens`.
        capacity: usize,
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

/// Sentence vectors, `len()` rows of `dim()` values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embeddings {
    dim: usize,
    values: Vec<f32>,
}

impl Embeddings {
    /// Wraps `values` as rows of `dim`; `None` unless `dim > 0` divides their number.
    pub fn new(dim: usize, values: Vec<f32>) -> Option<Embeddings> {
        (dim > 0 && values.len().is_multiple_of(dim)).then_some(Embeddings { dim, values })
    }

    /// Values per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Vector `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The vectors in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.dim.max(1))
    }

    /// All values, vector after vector.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n > 0.0 { dot / n } else { 0.0 }
}

/// Buffers for one forward pass of up to `capacity` tokens.
struct Scratch {
    capacity: usize,
    ids: Vec<u32>,
    spans: Vec<Range<usize>>,
    x: Vec<f32>,
    tmp: Vec<f32>,
    attn: Vec<f32>,
    qkv: Vec<f32>,
    ffn: Vec<f32>,
    xq: Vec<BlockQ8Act>,
    heads: Vec<bidirectional::HeadScratch>,
    pooled: Vec<f32>,
}

/// Turns texts into sentence vectors with an encoder model.
pub struct Embedder<'m> {
    model: &'m Model,
    engine: Engine,
    max_length: usize,
    pooling: Pooling,
    s: Scratch,
}

impl std::fmt::Debug for Embedder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("isa", &self.engine.kernels.isa)
            .field("threads", &self.threads())
            .field("max_length", &self.max_length)
            .field("batch_tokens", &self.s.capacity)
            .finish_non_exhaustive()
    }
}

impl<'m> Embedder<'m> {
    /// Checks that `model` is an encoder, allocates the buffers and starts the threads.
    pub fn new(model: &'m Model, opts: &EmbedOptions) -> Result<Embedder<'m>, EmbedError> {
        let w = model.encoder()?;
        let c = model.config();
        let max_length = match opts.max_length {
            Some(n) if n == 0 || n > c.max_context => {
                return Err(EmbedError::Options(format!(
                    "maximum length {n} is outside 1..={} (the model's positions)",
                    c.max_context
                )));
            }
            Some(n) => n,
            None => model
                .tokenizer()
                .max_length()
                .unwrap_or(c.max_context)
                .min(c.max_context),
        };
        let engine = Engine::new(opts.isa.as_deref(), opts.threads).map_err(EmbedError::Options)?;
        let cap = opts.batch_tokens.max(max_length);
        let (h, ff) = (c.hidden_size, c.intermediate_size);
        let qkv_dim = w.layers.first().map_or(0, |l| l.qkv.out_dim());
        let widest = h.max(ff).max(c.num_heads * c.head_dim);
        // Bytes per token of the batch buffers below: checked, and allocated fallibly, so that
        // a huge `batch_tokens` is an error naming it, not an overflow or an abort.
        let per_token = 4 * (3 * h + c.num_heads * c.head_dim + qkv_dim + ff)
            + widest.div_ceil(QK) * size_of::<BlockQ8Act>()
            + size_of::<u32>()
            + size_of::<Range<usize>>();
        let oom = || {
            EmbedError::Options(format!(
                "not enough memory for a batch of {cap} tokens ({} MiB of buffers); a smaller \
batch (-b) needs less",
                cap.saturating_mul(per_token) >> 20
            ))
        };
        if cap.checked_mul(per_token).is_none() {
            return Err(oom());
        }
        let f = |n: usize| filled((cap * n, 0.0f32)).map_err(|_| oom());
        let (mut ids, mut spans) = (Vec::new(), Vec::new());
        ids.try_reserve_exact(cap).map_err(|_| oom())?;
        spans.try_reserve_exact(cap).map_err(|_| oom())?;
        let s = Scratch {
            capacity: cap,
            ids,
            spans,
            x: f(h)?,
            tmp: f(h)?,
            attn: f(c.num_heads * c.head_dim)?,
            qkv: f(qkv_dim)?,
            ffn: f(ff)?,
            xq: filled((cap * widest / QK, BlockQ8Act::default())).map_err(|_| oom())?,
            heads: (0..engine.threads())
                .map(|_| bidirectional::HeadScratch::new(max_length, c.head_dim))
                .collect(),
            pooled: f(h)?,
        };
        let pooling = c.pooling.unwrap_or(Pooling {
            // sentence-transformers' default for a plain transformer folder.
            mode: PoolingMode::Mean,
            normalize: false,
        });
        Ok(Embedder {
            model,
            engine,
            max_length,
            pooling,
            s,
        })
    }

    /// Values per sentence vector.
    pub fn dim(&self) -> usize {
        self.model.config().hidden_size
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.engine.threads()
    }

    /// The instruction-set path of the kernels in use.
    pub fn isa(&self) -> Isa {
        self.engine.kernels.isa
    }

    /// Longest input in tokens.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokens one forward pass holds.
    pub fn batch_tokens(&self) -> usize {
        self.s.capacity
    }

    /// The pooling applied to the token states.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Runs `f` with the embedder's thread pool installed on this thread once for all the work
    /// inside (see [`crate::engine::Engine::install`]).
    pub fn run_in_pool<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let engine = self.engine.clone();
        engine.install(|| f(self))
    }

    /// The token ids of `text` as the encoder sees it: `[CLS] … [SEP]`, truncated to the
    /// maximum length.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        self.encode(text, Some(self.max_length))
    }

    /// The length of `text` in tokens as the encoder sees it, before truncation.
    pub fn untruncated_len(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.encode(text, None)?.len())
    }

    fn encode(&self, text: &str, max_length: Option<usize>) -> Result<Vec<u32>, EmbedError> {
        let opts = EncodeOptions {
            add_special: true,
            parse_special: true,
            max_length,
        };
        Ok(self.model.tokenizer().encode(text, opts)?)
    }

    /// Embeds any number of texts: tokenizes them, groups them by length into batches of
    /// at most `batch_tokens` tokens, and returns one vector per text, in order.
    pub fn embed<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Embeddings, EmbedError> {
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        // Longest first: sentences of similar length share a batch, and the first batch
        // shows at once whether the longest input fits.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let dim = self.dim();
        let mut values = vec![0.0; ids.len() * dim];
        let mut batch: Vec<&[u32]> = Vec::new();
        let mut rest = &order[..];
        while !rest.is_empty() {
            let mut tokens = 0;
            let take = rest
                .iter()
                .take_while(|&&i| {
                    tokens += ids[i].len();
                    tokens <= self.s.capacity
                })
                .count()
                .max(1);
            let (now, later) = rest.split_at(take);
            batch.clear();
            batch.extend(now.iter().map(|&i| &ids[i][..]));
            let pooled = self.embed_batch(&batch)?;
            for (&i, v) in now.iter().zip(pooled.chunks_exact(dim)) {
                values[i * dim..(i + 1) * dim].copy_from_slice(v);
            }
            rest = later;
        }
        Ok(Embeddings { dim, values })
    }

    /// Embeds one batch of token-id sequences in a single forward pass and returns their
    /// vectors, `inputs.len()` rows of [`Embedder::dim`] values. Performs no heap allocation.
    pub fn embed_batch<I: AsRef<[u32]>>(&mut self, inputs: &[I]) -> Result<&[f32], EmbedError> {
        let vocab = self.model.config().vocab_size;
        let mut tokens = 0;
        for (index, ids) in inputs.iter().enumerate() {
            let ids = ids.as_ref();
            if ids.is_empty() || ids.len() > self.max_length {
                let (len, max) = (ids.len(), self.max_length);
                return Err(EmbedError::Length { index, len, max });
            }
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(EmbedError::BadToken { id, vocab });
            }
            tokens += ids.len();
        }
        if tokens > self.s.capacity {
            let capacity = self.s.capacity;
            return Err(EmbedError::BatchFull { tokens, capacity });
        }
        self.model.file().check_result().map_err(ModelError::from)?;
        let s = &mut self.s;
        s.ids.clear();
        s.spans.clear();
        for ids in inputs {
            let start = s.ids.len();
            s.ids.extend_from_slice(ids.as_ref());
            s.spans.push(start..s.ids.len());
        }
        let (model, k, pooling) = (self.model, self.engine.kernels, self.pooling);
        let w = model.encoder()?;
        self.engine.install(|| forward(model, w, k, s));
        let h = model.config().hidden_size;
        for (span, out) in s.spans.iter().zip(s.pooled.chunks_exact_mut(h)) {
            pool_sentence(pooling, &s.x[span.start * h..span.end * h], out);
        }
        Ok(&s.pooled[..inputs.len() * h])
    }
}

/// Runs the encoder over the packed batch in `s.ids` / `s.spans`, leaving the final token
/// states in `s.x`.
fn forward(model: &Model, w: &EncoderWeights<'_>, k: &Kernels, s: &mut Scratch) {
    let c = model.config();
    let chunks = crate::pool::threads();
    let Scratch {
        ids,
        spans,
        x,
        tmp,
        attn,
        qkv,
        ffn,
        xq,
        heads,
        ..
    } = s;
    let (h, ff, eps) = (c.hidden_size, c.intermediate_size, c.norm_eps);
    let (n, q_dim) = (ids.len(), c.num_heads * c.head_dim);
    let nh = n * h;
    // Embeddings: LN(word + position + segment 0).
    for span in spans.iter() {
        for t in span.clone() {
            let (sum, other) = (&mut tmp[t * h..(t + 1) * h], &mut x[t * h..(t + 1) * h]);
            w.token_embd.dequantize_row(ids[t] as usize, sum);
            w.position_embd.dequantize_row(t - span.start, other);
            (k.add)(sum, other);
            match &w.token_types {
                Some(types) => types.dequantize_row(0, other),
                None => other.fill(0.0),
            }
        }
    }
    residual_norm(k, w.embd_norm, eps, &mut tmp[..nh], &mut x[..nh], chunks);
    let gelu = match c.activation {
        Activation::GeluTanh => k.gelu_tanh,
        _ => k.gelu_erf,
    };
    for layer in &w.layers {
        let qkv = &mut qkv[..n * layer.qkv.out_dim()];
        layer.qkv.apply(k, &x[..nh], xq, n, qkv, chunks);
        let job = bidirectional::SelfAttention {
            k,
            qkv,
            spans,
            heads: c.num_heads,
            head_dim: c.head_dim,
        };
        job.run(&mut attn[..n * q_dim], heads, chunks);
        layer.attn_out.apply(k, &attn[..n * q_dim], xq, n, tmp, chunks);
        residual_norm(k, layer.attn_norm, eps, &mut tmp[..nh], &mut x[..nh], chunks);
        layer.up.apply(k, &x[..nh], xq, n, ffn, chunks);
        par_rows(&mut ffn[..n * ff], ff, (), 0, chunks, &|a, ()| gelu(a));
        layer.down.apply(k, &ffn[..n * ff], xq, n, tmp, chunks);
        residual_norm(k, layer.out_norm, eps, &mut tmp[..nh], &mut x[..nh], chunks);
    }
}

/// Post-LN residual: `sum += x`, then `x = LN(sum)`, row by row.
fn residual_norm(k: &Kernels, norm: LayerNorm<'_>, eps: f32, sum: &mut [f32], x: &mut [f32], chunks: usize) {
    let h = norm.weight.len();
    par_rows(sum, h, x, h, chunks, &|sum, x| {
        for (s, x) in sum.chunks_exact_mut(h).zip(x.chunks_exact_mut(h)) {
            (k.add)(s, x);
            (k.layer_norm)(s, norm.weight, norm.bias, eps, x);
        }
    });
}

/// Pools one sentence's token states (`states`: its rows, in order) into `out`.
fn pool_sentence(pooling: Pooling, states: &[f32], out: &mut [f32]) {
    let h = out.len();
    match pooling.mode {
        PoolingMode::Cls => out.copy_from_slice(&states[..h]),
        PoolingMode::Mean => {
            out.fill(0.0);
            let rows = states.chunks_exact(h);
            let scale = 1.0 / rows.len().max(1) as f32;
            for row in rows {
                out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
            }
            out.iter_mut().for_each(|o| *o *= scale);
        }
    }
    if pooling.normalize {
        // As torch.nn.functional.normalize: divide by max(‖v‖, 1e-12).
        let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        out.iter_mut().for_each(|o| *o /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_averages_and_normalizes() {
        let states = [1.0, 2.0, 3.0, 6.0];
        let mut out = [0.0; 2];
        let mean = |normalize| Pooling {
            mode: PoolingMode::Mean,
            normalize,
        };
        pool_sentence(mean(false), &states, &mut out);
        assert_eq!(out, [2.0, 4.0]);
        pool_sentence(mean(true), &states, &mut out);
        let n = 20f32.sqrt();
        assert!((out[0] - 2.0 / n).abs() < 1e-6 && (out[1] - 4.0 / n).abs() < 1e-6);
        let cls = Pooling {
            mode: PoolingMode::Cls,
            normalize: false,
        };
        pool_sentence(cls, &states, &mut out);
        assert_eq!(out, [1.0, 2.0]);
    }

    #[test]
    fn zero_vectors_stay_zero() {
        let mut out = [1.0; 3];
        let p = Pooling {
            mode: PoolingMode::Mean,
            normalize: true,
        };
        pool_sentence(p, &[0.0; 6], &mut out);
        assert_eq!(out, [0.0; 3]);
        assert_eq!(cosine(&out, &[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn embeddings_are_rows() {
        let e = Embeddings::new(2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((e.len(), e.dim()), (2, 2));
        assert_eq!(e.get(1), &[3.0, 4.0]);
        assert_eq!(e.iter().count(), 2);
        assert!(Embeddings::new(3, vec![0.0; 4]).is_none());
        assert!(Embeddings::new(0, vec![]).is_none());
    }
}
