//! A decoder session: the KV cache, every scratch buffer and the engine, created once.
//! Feeding tokens after creation performs no heap allocation.
//!
//! The forward pass is one recipe for every decoder architecture (see `docs/ARCHITECTURE.md`):
//! embed (scaled for Gemma), then per block `x += post_attn_norm(attn(attn_norm(x)))` and
//! `x += post_ffn_norm(mlp(ffn_norm(x)))`, where the norms an architecture lacks are skipped
//! and attention applies the per-head q/k norms, the layer's RoPE and sliding window.

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::arch;
use crate::engine::Engine;
use crate::format::meta::{ModelConfig, RopeLayout};
use crate::kv_cache::{KvCache, KvType};
use crate::model::{DecoderLayer, DecoderWeights, Model, ModelError};
use crate::nn::attention::{CausalAttention, Heads, QUERY_BLOCK};
use crate::nn::rope::RopeTable;
use crate::nn::{mlp, norm};
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

/// Which positions of a forward pass produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Logits {
    Last,
    All,
}

/// The rotary embeddings of a model: one table per distinct RoPE (Gemma 3's local and global
/// layers differ), which one each layer uses, and the pairing of dimensions.
struct Positions {
    tables: Vec<RopeTable>,
    of_layer: Vec<usize>,
    rotate: fn(&mut [f32], &[f32], &[f32]),
    /// Pairs of the widest table: angles per token in the cosine and sine buffers.
    pairs: usize,
    /// Values per table in those buffers (`batch × pairs`).
    stride: usize,
}

impl Positions {
    fn new(k: &Kernels, c: &ModelConfig, batch: usize) -> Result<Positions, SessionError> {
        let global = c
            .rope
            .as_ref()
            .ok_or_else(|| SessionError::Options("model has no RoPE".into()))?;
        let mut tables = vec![RopeTable::new(global)];
        let local = c.attention.local_rope.filter(|r| r != global);
        if let Some(local) = &local {
            tables.push(RopeTable::new(local));
        }
        let of_layer = (0..c.num_layers)
            .map(|l| usize::from(local.is_some() && c.attention.window_of(l).is_some()))
            .collect();
        let rotate = match global.layout {
            RopeLayout::Neox => k.rope_neox,
            RopeLayout::Interleaved => k.rope_interleaved,
        };
        let pairs = tables.iter().map(RopeTable::pairs).max().unwrap_or(0);
        Ok(Positions {
            tables,
            of_layer,
            rotate,
            pairs,
            stride: batch * pairs,
        })
    }

    /// Where the angles of token `t` of a forward pass start for `table`.
    fn at(&self, table: usize, t: usize) -> usize {
        table * self.stride + t * self.pairs
    }
}

/// `n` copies of `value`, allocated fallibly: an error, not an abort, where the memory is
/// not there.
fn filled<T: Clone>((n, value): (usize, T)) -> Result<Vec<T>, std::collections::TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)?;
    v.resize(n, value);
    Ok(v)
}

/// Scratch buffers for one forward pass of up to `batch` tokens.
struct Scratch {
    /// Residual stream, `batch × hidden`.
    x: Vec<f32>,
    /// Normalized residual or a sublayer's output, `batch × hidden`.
    xn: Vec<f32>,
    /// A sublayer's output after its post-norm, `batch × hidden`.
    post: Vec<f32>,
    /// The input of a product as q8 blocks, `batch × widest / QK`.
    xq: Vec<BlockQ8Act>,
    /// Queries, keys and values, `batch × qkv_dim`.
    qkv: Vec<f32>,
    /// Attention output, `batch × q_dim`.
    attn: Vec<f32>,
    /// Gate and up projections, `batch × 2·ff`.
    ffn: Vec<f32>,
    /// Gated activation, `batch × ff`.
    act: Vec<f32>,
    /// Per head: a block of queries, then their scores over the context.
    scores: Vec<f32>,
    /// Queries per attention-score matrix product in prompt processing.
    query_block: usize,
    /// Per head: the query as q8 blocks (q8 cache).
    qq: Vec<BlockQ8Act>,
    /// Per RoPE table, per token: cosines and sines, `tables × batch × pairs`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Logits, `batch × vocab`.
    logits: Vec<f32>,
    /// One head.
    head: Vec<f32>,
}

/// A conversation with a decoder model: everything needed to feed tokens and get logits.
pub struct Session<'m> {
    model: &'m Model,
    weights: &'m DecoderWeights<'m>,
    engine: Engine,
    kv: KvCache,
    positions: Positions,
    batch: usize,
    tokens: Vec<u32>,
    s: Scratch,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("isa", &self.engine.kernels.isa)
            .field("threads", &self.threads())
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl<'m> Session<'m> {
    /// Allocates the cache and buffers and starts the threads.
    pub fn new(model: &'m Model, opts: &SessionOptions) -> Result<Session<'m>, SessionError> {
        let c = model.config();
        let w = model.decoder()?;
        let ctx = opts.context.unwrap_or(c.max_context.min(4096));
        if ctx == 0 || ctx > c.max_context {
            return Err(SessionError::Options(format!(
                "context {ctx} is outside 1..={}",
                c.max_context
            )));
        }
        let batch = opts.batch.clamp(1, ctx);
        let engine = Engine::new(opts.isa.as_deref(), opts.threads).map_err(SessionError::Options)?;
        let kv = KvCache::new(opts.kv_type, c.num_layers, c.num_kv_heads, c.head_dim, ctx)
            .map_err(SessionError::Options)?;
        let positions = Positions::new(engine.kernels, c, batch)?;
        let (h, q_dim) = (c.hidden_size, c.num_heads * c.head_dim);
        let widest = h.max(q_dim).max(c.intermediate_size);
        let qkv_dim = w.layers.first().map_or(0, |l| l.qkv.out_dim());
        let query_block = QUERY_BLOCK.min(batch);
        let rope_values = positions.tables.len() * positions.stride;
        let f = |n: usize| (n, 0.0f32);
        let q = |n: usize| (n, BlockQ8Act::default());
        let (x, xn, post) = (f(batch * h), f(batch * h), f(batch * h));
        let (xq, qkv, attn) = (q(batch * widest / QK), f(batch * qkv_dim), f(batch * q_dim));
        let (ffn, act) = (f(batch * 2 * c.intermediate_size), f(batch * c.intermediate_size));
        let scores = f(c.num_heads * query_block * (c.head_dim + ctx));
        let (qq, cos, sin) = (q(q_dim / QK), f(rope_values), f(rope_values));
        let (logits, head) = (f(batch * c.vocab_size), f(c.head_dim));
        let floats = [x, xn, post, qkv, attn, ffn, act, scores, cos, sin, logits, head];
        let bytes =
            floats.iter().map(|p| p.0 * 4).sum::<usize>() + (xq.0 + qq.0) * std::mem::size_of::<BlockQ8Act>();
        let oom = |_| {
            SessionError::Options(format!(
                "not enough memory for the session's buffers: {bytes} bytes ({} MiB) for a batch of {batch} \
and a context of {ctx} tokens; a smaller batch (-b) or context (-c) needs less",
                bytes >> 20
            ))
        };
        let s = Scratch {
            x: filled(x).map_err(oom)?,
            xn: filled(xn).map_err(oom)?,
            post: filled(post).map_err(oom)?,
            xq: filled(xq).map_err(oom)?,
            qkv: filled(qkv).map_err(oom)?,
            attn: filled(attn).map_err(oom)?,
            ffn: filled(ffn).map_err(oom)?,
            act: filled(act).map_err(oom)?,
            scores: filled(scores).map_err(oom)?,
            query_block,
            qq: filled(qq).map_err(oom)?,
            cos: filled(cos).map_err(oom)?,
            sin: filled(sin).map_err(oom)?,
            logits: filled(logits).map_err(oom)?,
            head: filled(head).map_err(oom)?,
        };
        let mut tokens = Vec::new();
        tokens.try_reserve_exact(ctx).map_err(oom)?;
        Ok(Session {
            model,
            weights: w,
            engine,
            kv,
            positions,
            batch,
            tokens,
            s,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The kernel path in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.engine.kernels
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.engine.threads()
    }

    /// Context size in tokens.
    pub fn context(&self) -> usize {
        self.kv.context()
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// Tokens processed so far (the next token's position).
    pub fn position(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens in the context, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets the context.
    pub fn reset(&mut self) {
        self.tokens.clear();
    }

    /// Keeps only the first `len` tokens of the context.
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }

    /// Prepares to feed `ids` (a whole conversation re-rendered): keeps the part of the
    /// context they share with it — but at least one token to feed, so that there are fresh
    /// logits — and returns how many tokens of `ids` are already in the context.
    pub fn reuse_prefix(&mut self, ids: &[u32]) -> usize {
        let common = ids.iter().zip(&self.tokens).take_while(|(a, b)| a == b).count();
        self.truncate(common.min(ids.len().saturating_sub(1)));
        self.position()
    }

    /// Runs `f` on one of the session's threads, so that every forward pass inside it
    /// starts its parallel work without a cross-thread hand-off (generation loops use this).
    pub fn run_in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        let engine = self.engine.clone();
        engine.install(|| f(self))
    }

    /// Appends `tokens` to the context and returns the logits after the last one.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<&mut [f32], SessionError> {
        self.check_room(tokens)?;
        let vocab = self.model.config().vocab_size;
        for chunk in tokens.chunks(self.batch) {
            self.forward(chunk, Logits::Last);
        }
        Ok(&mut self.s.logits[..vocab])
    }

    /// Appends `tokens` and samples the next token (the context feeds the repetition penalty).
    pub fn feed_and_sample(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32, SessionError> {
        self.feed(tokens)?;
        let vocab = self.model.config().vocab_size;
        Ok(sampler.sample(&mut self.s.logits[..vocab], &self.tokens))
    }

    /// Appends `tokens` and calls `f(i, logits)` with the logits after each token `i`.
    pub fn feed_all(&mut self, tokens: &[u32], mut f: impl FnMut(usize, &[f32])) -> Result<(), SessionError> {
        self.check_room(tokens)?;
        let vocab = self.model.config().vocab_size;
        for (c, chunk) in tokens.chunks(self.batch).enumerate() {
            self.forward(chunk, Logits::All);
            for (i, row) in self.s.logits[..chunk.len() * vocab]
                .chunks_exact(vocab)
                .enumerate()
            {
                f(c * self.batch + i, row);
            }
        }
        Ok(())
    }

    fn check_room(&self, tokens: &[u32]) -> Result<(), SessionError> {
        let needed = self.tokens.len() + tokens.len();
        if needed > self.context() {
            return Err(SessionError::ContextFull {
                needed,
                context: self.context(),
            });
        }
        let vocab = self.model.config().vocab_size;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&id) => Err(SessionError::BadToken { id, vocab }),
            None => Ok(()),
        }
    }

    /// Drops `discard` tokens after the first `keep` and moves the rest down, rotating the
    /// cached keys back by `discard` positions (a sliding window that keeps the system prompt).
    pub fn shift_context(&mut self, keep: usize, discard: usize) {
        let end = self.tokens.len();
        let discard = discard.min(end.saturating_sub(keep));
        if discard == 0 {
            return;
        }
        let (from, len) = (keep + discard, end - keep - discard);
        self.kv.move_positions(from, keep, len);
        self.tokens.drain(keep..keep + discard);
        let c = self.model.config();
        let (k, p) = (self.engine.kernels, &self.positions);
        for (i, table) in p.tables.iter().enumerate() {
            let at = p.at(i, 0)..p.at(i, 0) + table.pairs();
            table.angles(
                -(discard as i64),
                &mut self.s.cos[at.clone()],
                &mut self.s.sin[at],
            );
        }
        for l in 0..c.num_layers {
            let at = p.at(p.of_layer[l], 0);
            let n = p.tables[p.of_layer[l]].pairs();
            let (cos, sin) = (&self.s.cos[at..at + n], &self.s.sin[at..at + n]);
            for g in 0..c.num_kv_heads {
                for pos in keep..keep + len {
                    let off = self.kv.offset(g, pos);
                    self.kv
                        .layer_mut(l)
                        .update_key(k, off, &mut self.s.head, |key| (p.rotate)(key, cos, sin));
                }
            }
        }
    }

    /// One forward pass over `tokens` (at most `batch`), appended at the current position.
    fn forward(&mut self, tokens: &[u32], logits: Logits) {
        let Session {
            model,
            weights: w,
            engine,
            kv,
            positions,
            tokens: history,
            s,
            ..
        } = self;
        let c = model.config();
        let k = engine.kernels;
        let pos0 = history.len();
        let n = tokens.len();
        engine.install(|| {
            let chunks = rayon::current_num_threads();
            let h = c.hidden_size;
            for (t, &id) in tokens.iter().enumerate() {
                w.embed.dequantize_row(id as usize, &mut s.x[t * h..(t + 1) * h]);
            }
            if arch::def(c.architecture).recipe.scale_embeddings {
                let scale = (h as f32).sqrt();
                s.x[..n * h].iter_mut().for_each(|v| *v *= scale);
            }
            for (i, table) in positions.tables.iter().enumerate() {
                for t in 0..n {
                    let at = positions.at(i, t);
                    let r = at..at + table.pairs();
                    table.angles((pos0 + t) as i64, &mut s.cos[r.clone()], &mut s.sin[r]);
                }
            }
            let block = Block {
                k,
                c,
                positions,
                pos0,
                n,
                chunks,
            };
            for (l, layer) in w.layers.iter().enumerate() {
                block.forward(l, layer, kv, s);
            }
            let (first, rows) = match logits {
                Logits::Last => (n - 1, 1),
                Logits::All => (0, n),
            };
            final_logits(k, w, c, s, first, rows, chunks);
        });
        history.extend_from_slice(tokens);
    }
}

/// Normalizes rows `[first, first + rows)` of the residual and writes their logits.
fn final_logits(
    k: &Kernels,
    w: &DecoderWeights<'_>,
    c: &ModelConfig,
    s: &mut Scratch,
    first: usize,
    rows: usize,
    chunks: usize,
) {
    let h = w.output_norm.len();
    let x = &s.x[first * h..(first + rows) * h];
    norm::rms_rows(k, x, w.output_norm, c.norm_eps, &mut s.xn[..rows * h]);
    let vocab = w.output.out_dim();
    let logits = &mut s.logits[..rows * vocab];
    w.output
        .apply(k, &s.xn[..rows * h], &mut s.xq, rows, logits, chunks);
    if let Some(cap) = c.final_softcap {
        logits.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
    }
}

/// What every block of one forward pass shares.
struct Block<'a> {
    k: &'a Kernels,
    c: &'a ModelConfig,
    positions: &'a Positions,
    pos0: usize,
    n: usize,
    chunks: usize,
}

impl Block<'_> {
    /// Block `l` on the `n` rows of the residual stream.
    fn forward(&self, l: usize, layer: &DecoderLayer<'_>, kv: &mut KvCache, s: &mut Scratch) {
        let (k, c, n, chunks) = (self.k, self.c, self.n, self.chunks);
        let (h, eps) = (c.hidden_size, c.norm_eps);
        let (q_dim, ff) = (c.num_heads * c.head_dim, c.intermediate_size);

        // Attention sublayer.
        norm::rms_rows(k, &s.x[..n * h], layer.attn_norm, eps, &mut s.xn[..n * h]);
        layer
            .qkv
            .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.qkv, chunks);
        self.store_keys(l, layer, kv, s);
        self.attention(l, kv, s);
        layer
            .attn_out
            .apply(k, &s.attn[..n * q_dim], &mut s.xq, n, &mut s.xn, chunks);
        self.residual(layer.post_attn_norm, s);

        // Feed-forward sublayer.
        norm::rms_rows(k, &s.x[..n * h], layer.ffn_norm, eps, &mut s.xn[..n * h]);
        layer
            .gate_up
            .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.ffn, chunks);
        mlp::gated(k, c.activation, ff, &s.ffn[..n * 2 * ff], &mut s.act[..n * ff]);
        layer
            .down
            .apply(k, &s.act[..n * ff], &mut s.xq, n, &mut s.xn, chunks);
        self.residual(layer.post_ffn_norm, s);
    }

    /// `x += post_norm(xn)`, or `x += xn` without a post-norm.
    fn residual(&self, post_norm: Option<&[f32]>, s: &mut Scratch) {
        let nh = self.n * self.c.hidden_size;
        match post_norm {
            Some(w) => {
                norm::rms_rows(self.k, &s.xn[..nh], w, self.c.norm_eps, &mut s.post[..nh]);
                (self.k.add)(&mut s.x[..nh], &s.post[..nh]);
            }
            None => (self.k.add)(&mut s.x[..nh], &s.xn[..nh]),
        }
    }

    /// Normalizes the new queries and keys per head, rotates them to their positions and
    /// stores the keys and values in layer `l`'s cache.
    fn store_keys(&self, l: usize, layer: &DecoderLayer<'_>, kv: &mut KvCache, s: &mut Scratch) {
        let (k, c) = (self.k, self.c);
        let hd = c.head_dim;
        let (q_dim, kv_dim) = (c.num_heads * hd, c.num_kv_heads * hd);
        let qkv_dim = layer.qkv.out_dim();
        let p = self.positions;
        let table = p.of_layer[l];
        let pairs = p.tables[table].pairs();
        for t in 0..self.n {
            let at = p.at(table, t);
            let (cos, sin) = (&s.cos[at..at + pairs], &s.sin[at..at + pairs]);
            let row = &mut s.qkv[t * qkv_dim..(t + 1) * qkv_dim];
            if let Some(w) = layer.q_norm {
                norm::rms_in_place(k, &mut row[..q_dim], w, c.norm_eps, &mut s.head);
            }
            if let Some(w) = layer.k_norm {
                norm::rms_in_place(k, &mut row[q_dim..q_dim + kv_dim], w, c.norm_eps, &mut s.head);
            }
            for head in row[..q_dim + kv_dim].chunks_exact_mut(hd) {
                (p.rotate)(head, cos, sin);
            }
            let ctx = kv.context();
            let cache = kv.layer_mut(l);
            for g in 0..c.num_kv_heads {
                let key = &row[q_dim + g * hd..q_dim + (g + 1) * hd];
                let value = &row[q_dim + kv_dim + g * hd..q_dim + kv_dim + (g + 1) * hd];
                let off = (g * ctx + self.pos0 + t) * hd;
                cache.write(k, off, key, value);
            }
        }
    }

    /// Attention of the new tokens over layer `l`'s cache into `s.attn`.
    fn attention(&self, l: usize, kv: &KvCache, s: &mut Scratch) {
        let c = self.c;
        let q_dim = c.num_heads * c.head_dim;
        let qkv_dim = arch::Dim::QkvRows.size(c);
        let job = CausalAttention {
            k: self.k,
            shape: Heads {
                heads: c.num_heads,
                kv_heads: c.num_kv_heads,
                head_dim: c.head_dim,
                scale: c.attention.scale.unwrap_or(1.0 / (c.head_dim as f32).sqrt()),
                softcap: c.attention.softcap,
                window: c.attention.window_of(l),
            },
            kv: kv.layer(l),
            ctx: kv.context(),
            qkv: &s.qkv[..self.n * qkv_dim],
            qkv_dim,
            pos0: self.pos0,
            n: self.n,
            query_block: s.query_block,
        };
        let out = OutCols::new(&mut s.attn[..self.n * q_dim], self.n, q_dim);
        job.heads(0, c.num_heads, out, &mut s.scores, &mut s.qq, self.chunks);
    }
}
