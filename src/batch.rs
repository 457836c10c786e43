//! Batched decoding: one forward pass over the new tokens of several sequences at once.
//!
//! A [`BatchDecoder`] holds what sequences share — the model's weights, the engine and the
//! scratch buffers of one pass — and each [`Sequence`] its own KV cache and tokens. The rows
//! of a pass are the new tokens of one sequence after another ([`Span`]s): the matrix
//! products read each weight once for all of them (where a bandwidth-bound device gains),
//! while keys, values and attention go to each row's own sequence. A
//! [`Session`](crate::session::Session) is a decoder with one sequence; a server decodes
//! its slots' sequences together. Feeding tokens performs no heap allocation.
//!
//! The forward pass is one recipe for every decoder architecture (see `docs/ARCHITECTURE.md`):
//! embed (scaled for Gemma), then per block `x += post_attn_norm(attn(attn_norm(x)))` and
//! `x += post_ffn_norm(mlp(ffn_norm(x)))`, where the norms an architecture lacks are skipped
//! and attention applies the per-head q/k norms, the layer's RoPE and sliding window.

use std::path::Path;

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::arch;
use crate::engine::Engine;
use crate::format::meta::{ModelConfig, RopeLayout};
use crate::kv_cache::{KvCache, KvType};
use crate::model::{DecoderLayer, DecoderWeights, Model, ModelError};
use crate::nn::attention::{self, CausalAttention, Heads, QUERY_BLOCK};
use crate::nn::rope::RopeTable;
use crate::nn::{PAR_MIN_VALUES, mlp, norm, pieces};
use crate::pool::{Pieces, even_ranges};
use crate::prompt_cache::{self, CacheError};
use crate::session::{SessionError, SessionOptions};

/// One conversation's state: its KV cache and the tokens in it.
#[derive(Debug)]
pub struct Sequence {
    kv: KvCache,
    tokens: Vec<u32>,
}

impl Sequence {
    /// An empty sequence of `context` tokens of `model` with a KV cache of `kv_type`.
    pub fn new(model: &Model, kv_type: KvType, context: usize) -> Result<Sequence, SessionError> {
        let c = model.config();
        let kv = KvCache::new(kv_type, c.num_layers, c.num_kv_heads, c.head_dim, context)
            .map_err(SessionError::Options)?;
        let mut tokens = Vec::new();
        tokens.try_reserve_exact(context).map_err(|_| {
            SessionError::Options(format!(
                "not enough memory for the tokens of a {context}-token context"
            ))
        })?;
        Ok(Sequence { kv, tokens })
    }

    /// Tokens processed so far (the next token's position).
    pub fn position(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens in the context, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Context size in tokens.
    pub fn context(&self) -> usize {
        self.kv.context()
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// Keeps only the first `len` tokens of the context (all: `truncate(0)`).
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }

    /// Saves the state of the first `len` tokens (at most the position) to a prompt cache
    /// file at `path`, atomically.
    pub fn save_prompt_cache(&self, model: &Model, path: &Path, len: usize) -> Result<(), CacheError> {
        let tokens = self.tokens.get(..len).ok_or_else(|| {
            CacheError::Invalid(format!(
                "{len} tokens asked, the context holds {}",
                self.position()
            ))
        })?;
        prompt_cache::save(model, &self.kv, tokens, path)
    }

    /// Replaces the context by the prompt cache at `path`, mapped in place (not read), and
    /// returns its token count; a cache of another model or setup, or a damaged one, is an
    /// error naming why, and the sequence is unchanged then.
    pub fn load_prompt_cache(&mut self, model: &Model, path: &Path) -> Result<usize, CacheError> {
        let (kv, tokens) = prompt_cache::load(model, &self.kv, path)?;
        *self = Sequence { kv, tokens };
        Ok(self.position())
    }

    /// Prepares to feed `ids` (a whole conversation re-rendered): keeps the part of the
    /// context they share with it — but at least one token to feed, so that there are fresh
    /// logits — and returns how many tokens of `ids` are already in the context.
    pub fn reuse_prefix(&mut self, ids: &[u32]) -> usize {
        let common = ids.iter().zip(&self.tokens).take_while(|(a, b)| a == b).count();
        self.truncate(common.min(ids.len().saturating_sub(1)));
        self.position()
    }
}

/// The next `len` tokens of a pass go to sequence `seq` (an index into the pass's sequences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Which sequence.
    pub seq: usize,
    /// How many tokens.
    pub len: usize,
}

/// A matrix product of the forward pass, for [`ProductObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// The fused query, key and value projection of a block (input: the normalized residual).
    Qkv,
    /// The attention output projection (input: the attention output).
    AttnOut,
    /// The fused gate and up projection (input: the normalized residual).
    GateUp,
    /// The down projection (input: the gated activation).
    Down,
    /// The output head (input: the normalized final residual).
    Output,
}

/// Sees the input of every matrix product of a forward pass (calibration: the converter's
/// importance matrix is the mean square of each input channel).
pub trait ProductObserver: Send {
    /// `x` holds `rows` input rows of `product` in block `layer` (`None` for the output head).
    fn input(&mut self, layer: Option<usize>, product: Product, x: &[f32], rows: usize);
}

/// Which rows of a forward pass produce logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// The last token of each span: row `i` of the logits belongs to span `i`.
    Last,
    /// Every token, in order.
    All,
}

/// Where a span's rows are in a pass and where its tokens go in its sequence.
#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: usize,
    row0: usize,
    n: usize,
    pos0: usize,
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

/// The context `opts` ask of `model`: by default its maximum, capped at 4096.
pub(crate) fn context_of(model: &Model, opts: &SessionOptions) -> Result<usize, SessionError> {
    let max = model.config().max_context;
    let ctx = opts.context.unwrap_or(max.min(4096));
    if ctx == 0 || ctx > max {
        return Err(SessionError::Options(format!(
            "context {ctx} is outside 1..={max}"
        )));
    }
    Ok(ctx)
}

/// `n` copies of `value`, allocated fallibly: an error, not an abort, where the memory is
/// not there.
pub(crate) fn filled<T: Clone>((n, value): (usize, T)) -> Result<Vec<T>, std::collections::TryReserveError> {
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
    /// One head per piece of the per-row work.
    head: Vec<f32>,
}

/// Runs forward passes over the new tokens of several sequences; everything is allocated
/// when it is created.
pub struct BatchDecoder<'m> {
    model: &'m Model,
    weights: &'m DecoderWeights<'m>,
    engine: Engine,
    positions: Positions,
    batch: usize,
    context: usize,
    kv_type: KvType,
    segments: Vec<Segment>,
    s: Scratch,
}

impl std::fmt::Debug for BatchDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchDecoder")
            .field("isa", &self.engine.kernels.isa)
            .field("threads", &self.engine.threads())
            .field("batch", &self.batch)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl<'m> BatchDecoder<'m> {
    /// Allocates the buffers of one pass of up to `opts.batch` tokens over sequences of up
    /// to `opts.context` tokens, and starts the threads.
    pub fn new(model: &'m Model, opts: &SessionOptions) -> Result<BatchDecoder<'m>, SessionError> {
        let c = model.config();
        let w = model.decoder()?;
        let ctx = context_of(model, opts)?;
        let batch = opts.batch.clamp(1, ctx);
        let engine = Engine::new(opts.isa.as_deref(), opts.threads).map_err(SessionError::Options)?;
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
        let slots = attention::prompt_slots(c.num_heads, engine.threads());
        let scores = f(attention::scratch_len(
            c.num_heads,
            c.num_kv_heads,
            c.head_dim,
            ctx,
            query_block,
            slots,
        ));
        let (qq, cos, sin) = (q(slots * c.head_dim / QK), f(rope_values), f(rope_values));
        // A head's scratch for each piece of the per-row work (see `Block::rotate_rows`).
        let pieces = pieces(engine.threads());
        let (logits, head) = (f(batch * c.vocab_size), f(pieces * c.head_dim));
        let floats = [x, xn, post, qkv, attn, ffn, act, scores, cos, sin, logits, head];
        let bytes =
            floats.iter().map(|p| p.0 * 4).sum::<usize>() + (xq.0 + qq.0) * std::mem::size_of::<BlockQ8Act>();
        let oom = |_| {
            SessionError::Options(format!(
                "not enough memory for the session's buffers: {bytes} bytes ({} MiB) for a batch of {batch} \
and a context of {ctx} tokens; a smaller batch (-b) or context (-c) needs less, and a q8 KV cache (--kv q8) leaves them more room",
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
        let mut segments = Vec::new();
        segments.try_reserve_exact(batch).map_err(oom)?;
        Ok(BatchDecoder {
            model,
            weights: w,
            engine,
            positions,
            batch,
            context: ctx,
            kv_type: opts.kv_type,
            segments,
            s,
        })
    }

    /// A new, empty sequence of `context` tokens (at most the decoder's context), with its
    /// KV cache.
    pub fn sequence(&self, context: usize) -> Result<Sequence, SessionError> {
        if context == 0 || context > self.context {
            return Err(SessionError::Options(format!(
                "a sequence's context {context} is outside 1..={}",
                self.context
            )));
        }
        Sequence::new(self.model, self.kv_type, context)
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

    /// The kernels and threads.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Most tokens per pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Longest context of a sequence.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Row `i` of the last pass's logits (see [`Logits`]).
    pub fn logits_mut(&mut self, i: usize) -> &mut [f32] {
        let vocab = self.model.config().vocab_size;
        &mut self.s.logits[i * vocab..(i + 1) * vocab]
    }

    /// Checks that `tokens` fit in what is left of `seq`'s context and are in the vocabulary.
    pub fn check_room(&self, seq: &Sequence, tokens: &[u32]) -> Result<(), SessionError> {
        let needed = seq.position() + tokens.len();
        if needed > seq.context() {
            return Err(SessionError::ContextFull {
                needed,
                context: seq.context(),
            });
        }
        let vocab = self.model.config().vocab_size;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&id) => Err(SessionError::BadToken { id, vocab }),
            None => Ok(()),
        }
    }

    /// One forward pass: `tokens` are the new tokens of `spans` one after another (at most
    /// [`BatchDecoder::batch`] in all, no sequence twice), appended to their sequences. The
    /// logits are then in [`BatchDecoder::logits_mut`]. Nothing changes on an error; damaged
    /// weights found by the file's background check ([`crate::format::PackedFile::check_result`]) are one.
    pub fn forward(
        &mut self,
        seqs: &mut [Sequence],
        tokens: &[u32],
        spans: &[Span],
        logits: Logits,
    ) -> Result<(), SessionError> {
        self.forward_observed(seqs, tokens, spans, logits, None)
    }

    /// [`BatchDecoder::forward`], showing the input of every matrix product to `observer`.
    pub fn forward_observed(
        &mut self,
        seqs: &mut [Sequence],
        tokens: &[u32],
        spans: &[Span],
        logits: Logits,
        observer: Option<&mut dyn ProductObserver>,
    ) -> Result<(), SessionError> {
        self.segments.clear();
        let mut row0 = 0;
        for (i, sp) in spans.iter().enumerate() {
            let bad = |why: &str| SessionError::Options(format!("span {i} of a forward pass {why}"));
            let seq = seqs.get(sp.seq).ok_or_else(|| bad("names no sequence"))?;
            if sp.len == 0 || row0 + sp.len > tokens.len() {
                return Err(bad("is empty or past the tokens"));
            }
            if spans[..i].iter().any(|o| o.seq == sp.seq) {
                return Err(bad("repeats a sequence"));
            }
            self.check_room(seq, &tokens[row0..row0 + sp.len])?;
            self.segments.push(Segment {
                seq: sp.seq,
                row0,
                n: sp.len,
                pos0: seq.position(),
            });
            row0 += sp.len;
        }
        if row0 != tokens.len() || row0 > self.batch {
            return Err(SessionError::Options(format!(
                "a forward pass of {} tokens with spans of {row0}, at most {} per pass",
                tokens.len(),
                self.batch
            )));
        }
        self.model.file().check_result().map_err(ModelError::from)?;
        self.pass(seqs, tokens, logits, observer);
        for seg in &self.segments {
            seqs[seg.seq]
                .tokens
                .extend_from_slice(&tokens[seg.row0..seg.row0 + seg.n]);
        }
        Ok(())
    }

    /// The checked pass over the rows of `self.segments`.
    fn pass(
        &mut self,
        seqs: &mut [Sequence],
        tokens: &[u32],
        logits: Logits,
        mut observer: Option<&mut dyn ProductObserver>,
    ) {
        let BatchDecoder {
            model,
            weights: w,
            engine,
            positions,
            segments,
            s,
            ..
        } = self;
        let c = model.config();
        let k = engine.kernels;
        let n = tokens.len();
        engine.install(|| {
            let chunks = crate::pool::threads();
            let h = c.hidden_size;
            for (t, &id) in tokens.iter().enumerate() {
                w.embed.dequantize_row(id as usize, &mut s.x[t * h..(t + 1) * h]);
            }
            if arch::def(c.architecture).recipe.scale_embeddings {
                let scale = (h as f32).sqrt();
                s.x[..n * h].iter_mut().for_each(|v| *v *= scale);
            }
            for (i, table) in positions.tables.iter().enumerate() {
                for seg in segments.iter() {
                    for t in 0..seg.n {
                        let at = positions.at(i, seg.row0 + t);
                        let r = at..at + table.pairs();
                        table.angles((seg.pos0 + t) as i64, &mut s.cos[r.clone()], &mut s.sin[r]);
                    }
                }
            }
            let block = Block {
                k,
                c,
                positions,
                segments,
                n,
                chunks,
            };
            // Only each span's last row is asked for: after the last layer's attention (which
            // every row's key and value need), the rest of that layer runs on those rows alone,
            // as llama.cpp's graph does. An observer sees every row of every product.
            let last_rows = matches!(logits, Logits::Last) && observer.is_none();
            for (l, layer) in w.layers.iter().enumerate() {
                // (The cast shortens the object's lifetime to this call's.)
                let o = observer.as_mut().map(|o| &mut **o as &mut dyn ProductObserver);
                block.forward(l, layer, seqs, s, o, last_rows && l + 1 == w.layers.len());
            }
            let rows = match logits {
                Logits::Last => {
                    for (i, seg) in segments.iter().enumerate() {
                        let last = if last_rows { i } else { seg.row0 + seg.n - 1 };
                        let row = &s.x[last * h..(last + 1) * h];
                        (k.rms_norm)(row, w.output_norm, c.norm_eps, &mut s.xn[i * h..(i + 1) * h]);
                    }
                    segments.len()
                }
                Logits::All => {
                    let (x, xn) = (&s.x[..n * h], &mut s.xn[..n * h]);
                    norm::rms_rows_par(k, x, w.output_norm, c.norm_eps, xn, pieces(chunks));
                    n
                }
            };
            if let Some(o) = observer {
                o.input(None, Product::Output, &s.xn[..rows * h], rows);
            }
            output_logits(k, w, c, s, rows, chunks);
        });
    }

    /// Drops `discard` tokens of `seq` after the first `keep` and moves the rest down,
    /// rotating the cached keys back by `discard` positions (a sliding window that keeps the
    /// system prompt).
    pub fn shift_context(&mut self, seq: &mut Sequence, keep: usize, discard: usize) {
        let end = seq.tokens.len();
        let discard = discard.min(end.saturating_sub(keep));
        if discard == 0 {
            return;
        }
        let (from, len) = (keep + discard, end - keep - discard);
        seq.kv.move_positions(from, keep, len);
        seq.tokens.drain(keep..keep + discard);
        let c = self.model.config();
        let (k, p, hd) = (self.engine.kernels, &self.positions, c.head_dim);
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
                    let off = seq.kv.offset(g, pos);
                    seq.kv
                        .layer_mut(l)
                        .update_key(k, off, &mut self.s.head[..hd], |key| (p.rotate)(key, cos, sin));
                }
            }
        }
    }
}

/// Writes the logits of the first `rows` rows of `s.xn` (already normalized).
fn output_logits(
    k: &Kernels,
    w: &DecoderWeights<'_>,
    c: &ModelConfig,
    s: &mut Scratch,
    rows: usize,
    chunks: usize,
) {
    let h = w.output_norm.len();
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
    segments: &'a [Segment],
    n: usize,
    chunks: usize,
}

impl Block<'_> {
    /// Block `l` on the `n` rows of the residual stream; with `last_rows`, everything after
    /// the attention runs on each span's last row only, moved to row `i` for span `i`.
    fn forward(
        &self,
        l: usize,
        layer: &DecoderLayer<'_>,
        seqs: &mut [Sequence],
        s: &mut Scratch,
        mut observer: Option<&mut dyn ProductObserver>,
        last_rows: bool,
    ) {
        let (k, c, mut n, chunks) = (self.k, self.c, self.n, self.chunks);
        let (h, eps) = (c.hidden_size, c.norm_eps);
        let (q_dim, ff) = (c.num_heads * c.head_dim, c.intermediate_size);
        let mut observe = |product, x: &[f32], n| {
            if let Some(o) = observer.as_deref_mut() {
                o.input(Some(l), product, x, n);
            }
        };

        let pieces = pieces(chunks);

        // Attention sublayer.
        norm::rms_rows_par(k, &s.x[..n * h], layer.attn_norm, eps, &mut s.xn[..n * h], pieces);
        observe(Product::Qkv, &s.xn[..n * h], n);
        layer
            .qkv
            .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.qkv, chunks);
        self.store_keys(l, layer, seqs, s);
        self.attention(l, seqs, s);
        if last_rows {
            self.keep_last_rows(s);
            n = self.segments.len();
        }
        observe(Product::AttnOut, &s.attn[..n * q_dim], n);
        layer
            .attn_out
            .apply(k, &s.attn[..n * q_dim], &mut s.xq, n, &mut s.xn, chunks);
        self.residual(layer.post_attn_norm, s, n);

        // Feed-forward sublayer.
        norm::rms_rows_par(k, &s.x[..n * h], layer.ffn_norm, eps, &mut s.xn[..n * h], pieces);
        observe(Product::GateUp, &s.xn[..n * h], n);
        layer
            .gate_up
            .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.ffn, chunks);
        mlp::gated_par(
            k,
            c.activation,
            ff,
            &s.ffn[..n * 2 * ff],
            &mut s.act[..n * ff],
            pieces,
        );
        observe(Product::Down, &s.act[..n * ff], n);
        layer
            .down
            .apply(k, &s.act[..n * ff], &mut s.xq, n, &mut s.xn, chunks);
        self.residual(layer.post_ffn_norm, s, n);
    }

    /// Moves each span's last row of the residual stream and of the attention output to row
    /// `i` for span `i` (rows only move down: span `i` ends at row `i` or later).
    fn keep_last_rows(&self, s: &mut Scratch) {
        let (h, q_dim) = (self.c.hidden_size, self.c.num_heads * self.c.head_dim);
        for (i, seg) in self.segments.iter().enumerate() {
            let last = seg.row0 + seg.n - 1;
            s.x.copy_within(last * h..(last + 1) * h, i * h);
            s.attn.copy_within(last * q_dim..(last + 1) * q_dim, i * q_dim);
        }
    }

    /// `x += post_norm(xn)`, or `x += xn` without a post-norm, on the first `n` rows.
    fn residual(&self, post_norm: Option<&[f32]>, s: &mut Scratch, n: usize) {
        let (k, h) = (self.k, self.c.hidden_size);
        let (nh, pieces) = (n * h, pieces(self.chunks));
        let sum = match post_norm {
            Some(w) => {
                norm::rms_rows_par(k, &s.xn[..nh], w, self.c.norm_eps, &mut s.post[..nh], pieces);
                &s.post[..nh]
            }
            None => &s.xn[..nh],
        };
        norm::add_rows_par(k, &mut s.x[..nh], sum, h, pieces);
    }

    /// Normalizes the new queries and keys per head, rotates them to their positions and
    /// stores the keys and values in layer `l`'s cache of each row's sequence.
    fn store_keys(&self, l: usize, layer: &DecoderLayer<'_>, seqs: &mut [Sequence], s: &mut Scratch) {
        let c = self.c;
        let hd = c.head_dim;
        let (q_dim, kv_dim) = (c.num_heads * hd, c.num_kv_heads * hd);
        let qkv_dim = layer.qkv.out_dim();
        let pieces = pieces(self.chunks);
        let rows = &mut s.qkv[..self.n * qkv_dim];
        self.rotate_rows(l, layer, rows, (&s.cos, &s.sin), &mut s.head, pieces);
        for seg in self.segments {
            let kv = &mut seqs[seg.seq].kv;
            let ctx = kv.context();
            let cache = kv.layer_mut(l);
            for t in seg.row0..seg.row0 + seg.n {
                let row = &s.qkv[t * qkv_dim..(t + 1) * qkv_dim];
                let pos = seg.pos0 + t - seg.row0;
                for g in 0..c.num_kv_heads {
                    let key = &row[q_dim + g * hd..q_dim + (g + 1) * hd];
                    let value = &row[q_dim + kv_dim + g * hd..q_dim + kv_dim + (g + 1) * hd];
                    cache.write(self.k, (g * ctx + pos) * hd, key, value);
                }
            }
        }
    }

    /// The per-head q/k norms and rotations of `rows` (rows `t0..` of the batch), split into
    /// `parts` pieces run in parallel, each with its own head of `tmp` (`parts` heads).
    fn rotate_rows(
        &self,
        l: usize,
        layer: &DecoderLayer<'_>,
        rows: &mut [f32],
        angles: (&[f32], &[f32]),
        tmp: &mut [f32],
        parts: usize,
    ) {
        let (hd, qkv_dim) = (self.c.head_dim, layer.qkv.out_dim());
        let n = rows.len() / qkv_dim;
        let parts = parts.min(rows.len() / PAR_MIN_VALUES).min(n).max(1);
        let piece = |(rows, t0, tmp)| self.rotate_piece(l, layer, (rows, t0), angles, tmp);
        let mut pieces = Pieces::new(&piece);
        let (mut rows, mut tmp) = (rows, tmp);
        for r in even_ranges(n, parts) {
            let ((mine, rest), (head, tmp_rest)) =
                (rows.split_at_mut(r.len() * qkv_dim), tmp.split_at_mut(hd));
            pieces.push((mine, r.start, head));
            (rows, tmp) = (rest, tmp_rest);
        }
        pieces.run();
    }

    /// [`Self::rotate_rows`] on rows `t0..` of the batch, on this thread.
    fn rotate_piece(
        &self,
        l: usize,
        layer: &DecoderLayer<'_>,
        (rows, t0): (&mut [f32], usize),
        (cos, sin): (&[f32], &[f32]),
        tmp: &mut [f32],
    ) {
        let (k, c, p) = (self.k, self.c, self.positions);
        let hd = c.head_dim;
        let (q_dim, kv_dim) = (c.num_heads * hd, c.num_kv_heads * hd);
        let qkv_dim = layer.qkv.out_dim();
        let table = p.of_layer[l];
        let pairs = p.tables[table].pairs();
        let tmp = &mut tmp[..hd];
        for (t, row) in (t0..).zip(rows.chunks_exact_mut(qkv_dim)) {
            let at = p.at(table, t);
            let (cos, sin) = (&cos[at..at + pairs], &sin[at..at + pairs]);
            if let Some(w) = layer.q_norm {
                norm::rms_in_place(k, &mut row[..q_dim], w, c.norm_eps, tmp);
            }
            if let Some(w) = layer.k_norm {
                norm::rms_in_place(k, &mut row[q_dim..q_dim + kv_dim], w, c.norm_eps, tmp);
            }
            for head in row[..q_dim + kv_dim].chunks_exact_mut(hd) {
                (p.rotate)(head, cos, sin);
            }
        }
    }

    /// Attention of each span's new tokens over layer `l`'s cache of its sequence into
    /// `s.attn`.
    fn attention(&self, l: usize, seqs: &[Sequence], s: &mut Scratch) {
        let c = self.c;
        let q_dim = c.num_heads * c.head_dim;
        let qkv_dim = arch::Dim::QkvRows.size(c);
        let shape = Heads {
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            scale: c.attention.scale.unwrap_or(1.0 / (c.head_dim as f32).sqrt()),
            softcap: c.attention.softcap,
            window: c.attention.window_of(l),
        };
        for seg in self.segments {
            let kv = &seqs[seg.seq].kv;
            let rows = seg.row0..seg.row0 + seg.n;
            let job = CausalAttention {
                k: self.k,
                shape,
                kv: kv.layer(l),
                ctx: kv.context(),
                qkv: &s.qkv[rows.start * qkv_dim..rows.end * qkv_dim],
                qkv_dim,
                pos0: seg.pos0,
                n: seg.n,
                query_block: s.query_block,
            };
            let out = OutCols::new(&mut s.attn[rows.start * q_dim..rows.end * q_dim], seg.n, q_dim);
            if seg.n == 1 {
                job.decode(out, &mut s.scores, &mut s.qq, self.chunks);
            } else {
                let pieces = pieces(self.chunks);
                job.heads(0, c.num_heads, out, &mut s.scores, &mut s.qq, pieces);
            }
        }
    }
}
