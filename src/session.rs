//! A decoder session: the KV cache, every scratch buffer and the thread pool, created once.
//! Feeding tokens after creation performs no heap allocation.

use std::sync::Arc;

use edgelm_kernels::layout::{QK, QuantBlock};
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::format::meta::RopeLayout;
use crate::kv_cache::{KvCache, KvStore, KvType};
use crate::model::{DecoderLayer, DecoderWeights, Model, ModelError};
use crate::rope::RopeTable;
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
        "context is full: {needed} tokens needed, the context holds {context} (use a larger -c, or a sliding window)"
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

/// Queries whose attention scores one matrix product computes in prompt processing (each
/// block reads the keys once for all of them).
const QUERY_BLOCK: usize = 16;

/// Scratch buffers for one forward pass of up to `batch` tokens.
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    xq: Vec<BlockQ8Act>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    ffn: Vec<f32>,
    act: Vec<f32>,
    /// Per head: [`Scratch::query_block`] queries, then their scores over the context.
    scores: Vec<f32>,
    /// Queries per attention-score matrix product in prompt processing.
    query_block: usize,
    qq: Vec<BlockQ8Act>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    logits: Vec<f32>,
    rot: Vec<f32>,
}

/// A conversation with a decoder model: everything needed to feed tokens and get logits.
pub struct Session<'m> {
    model: &'m Model,
    kernels: &'static Kernels,
    pool: Arc<rayon::ThreadPool>,
    kv: KvCache,
    rope: RopeTable,
    batch: usize,
    tokens: Vec<u32>,
    s: Scratch,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("isa", &self.kernels.isa)
            .field("threads", &self.threads())
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

/// Picks the kernel table: the requested path, else `EDGELM_ISA`, else the best available.
pub fn select_kernels(requested: Option<&str>) -> Result<&'static Kernels, String> {
    let env = std::env::var("EDGELM_ISA").ok();
    Kernels::select(requested.or(env.as_deref())).map_err(|e| e.to_string())
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
        let kernels = select_kernels(opts.isa.as_deref()).map_err(SessionError::Options)?;
        let pool = crate::threads::pool(opts.threads).map_err(SessionError::Options)?;
        let kv = KvCache::new(opts.kv_type, c.num_layers, c.num_kv_heads, c.head_dim, ctx)
            .map_err(SessionError::Options)?;
        let rope = RopeTable::new(
            c.rope
                .as_ref()
                .ok_or_else(|| SessionError::Options("model has no RoPE".into()))?,
        );
        let (h, q_dim) = (c.hidden_size, c.num_heads * c.head_dim);
        let widest = h.max(q_dim).max(c.intermediate_size);
        let qkv_dim = w.layers.first().map_or(0, |l| l.qkv.out_dim());
        let query_block = QUERY_BLOCK.min(batch);
        let s = Scratch {
            x: vec![0.0; batch * h],
            xn: vec![0.0; batch * h],
            xq: vec![BlockQ8Act::default(); batch * widest / QK],
            qkv: vec![0.0; batch * qkv_dim],
            attn: vec![0.0; batch * q_dim],
            ffn: vec![0.0; batch * 2 * c.intermediate_size],
            act: vec![0.0; batch * c.intermediate_size],
            scores: vec![0.0; c.num_heads * query_block * (c.head_dim + ctx)],
            query_block,
            qq: vec![BlockQ8Act::default(); q_dim / QK],
            cos: vec![0.0; batch * rope.pairs()],
            sin: vec![0.0; batch * rope.pairs()],
            logits: vec![0.0; batch * c.vocab_size],
            rot: vec![0.0; c.head_dim],
        };
        Ok(Session {
            model,
            kernels,
            pool,
            kv,
            rope,
            batch,
            tokens: Vec::with_capacity(ctx),
            s,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// The kernel path in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
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
        let pool = Arc::clone(&self.pool);
        pool.install(|| f(self))
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
        let k = self.kernels;
        let pairs = self.rope.pairs();
        let (cos, sin) = (&mut self.s.cos[..pairs], &mut self.s.sin[..pairs]);
        self.rope.angles(-(discard as i64), cos, sin);
        let rope = rope_fn(k, c.rope.map_or(RopeLayout::Neox, |r| r.layout));
        let hd = c.head_dim;
        for l in 0..c.num_layers {
            for g in 0..c.num_kv_heads {
                for p in keep..keep + len {
                    let off = self.kv.offset(l, g, p);
                    match &mut self.kv.k {
                        KvStore::F32(v) => rope(&mut v[off..off + hd], cos, sin),
                        KvStore::F16(v) => {
                            let row = &mut v[off..off + hd];
                            f16_to_f32(row, &mut self.s.rot);
                            rope(&mut self.s.rot, cos, sin);
                            (k.f32_to_f16)(&self.s.rot, row);
                        }
                        KvStore::Q8(v) => {
                            let row = &mut v[off / QK..(off + hd) / QK];
                            for (b, out) in row.iter().zip(self.s.rot.chunks_exact_mut(QK)) {
                                b.dequantize(out.try_into().expect("QK values"));
                            }
                            rope(&mut self.s.rot, cos, sin);
                            (k.quantize_q8_kv)(&self.s.rot, row);
                        }
                    }
                }
            }
        }
    }

    /// One forward pass over `tokens` (at most `batch`), appended at the current position.
    fn forward(&mut self, tokens: &[u32], logits: Logits) {
        let Session {
            model,
            kernels: k,
            pool,
            kv,
            rope,
            tokens: history,
            s,
            ..
        } = self;
        let w = match model.decoder() {
            Ok(w) => w,
            Err(_) => unreachable!("sessions are only made for decoders"),
        };
        let c = model.config();
        let pos0 = history.len();
        let n = tokens.len();
        pool.install(|| {
            let chunks = rayon::current_num_threads();
            let h = c.hidden_size;
            for (t, &id) in tokens.iter().enumerate() {
                w.embed.dequantize_row(id as usize, &mut s.x[t * h..(t + 1) * h]);
            }
            let pairs = rope.pairs();
            for t in 0..n {
                let r = t * pairs..(t + 1) * pairs;
                rope.angles((pos0 + t) as i64, &mut s.cos[r.clone()], &mut s.sin[r]);
            }
            for (l, layer) in w.layers.iter().enumerate() {
                layer_forward(k, c, l, layer, kv, s, pos0, n, chunks);
            }
            let (first, rows) = match logits {
                Logits::Last => (n - 1, 1),
                Logits::All => (0, n),
            };
            final_logits(k, w, c.norm_eps, s, first, rows, chunks);
        });
        history.extend_from_slice(tokens);
    }
}

fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    for (d, &h) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(h).to_f32();
    }
}

fn rope_fn(k: &Kernels, layout: RopeLayout) -> fn(&mut [f32], &[f32], &[f32]) {
    match layout {
        RopeLayout::Neox => k.rope_neox,
        RopeLayout::Interleaved => k.rope_interleaved,
    }
}

/// Normalizes rows `[first, first + rows)` of the residual and writes their logits.
fn final_logits(
    k: &Kernels,
    w: &DecoderWeights<'_>,
    eps: f32,
    s: &mut Scratch,
    first: usize,
    rows: usize,
    chunks: usize,
) {
    let h = w.output_norm.len();
    let x = &s.x[first * h..(first + rows) * h];
    rms_norm_rows(k, x, w.output_norm, eps, &mut s.xn[..rows * h]);
    let vocab = w.output.out_dim();
    w.output.apply(
        k,
        &s.xn[..rows * h],
        &mut s.xq,
        rows,
        &mut s.logits[..rows * vocab],
        chunks,
    );
}

/// RMSNorm of each row of `x` (rows as long as `w`) into `out`.
fn rms_norm_rows(k: &Kernels, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (x, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        (k.rms_norm)(x, w, eps, o);
    }
}

#[allow(clippy::too_many_arguments)]
fn layer_forward(
    k: &Kernels,
    c: &crate::format::meta::ModelConfig,
    l: usize,
    layer: &DecoderLayer<'_>,
    kv: &mut KvCache,
    s: &mut Scratch,
    pos0: usize,
    n: usize,
    chunks: usize,
) {
    let (h, hd, eps) = (c.hidden_size, c.head_dim, c.norm_eps);
    let (q_dim, kv_dim, ff) = (c.num_heads * hd, c.num_kv_heads * hd, c.intermediate_size);
    let qkv_dim = layer.qkv.out_dim();
    let rope = rope_fn(k, c.rope.map_or(RopeLayout::Neox, |r| r.layout));
    let pairs = c.rope.map_or(0, |r| r.dims / 2);

    // Attention block.
    rms_norm_rows(k, &s.x[..n * h], layer.attn_norm, eps, &mut s.xn[..n * h]);
    layer
        .qkv
        .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.qkv, chunks);
    for t in 0..n {
        let (cos, sin) = (
            &s.cos[t * pairs..(t + 1) * pairs],
            &s.sin[t * pairs..(t + 1) * pairs],
        );
        let row = &mut s.qkv[t * qkv_dim..(t + 1) * qkv_dim];
        for head in row[..q_dim + kv_dim].chunks_exact_mut(hd) {
            rope(head, cos, sin);
        }
        for g in 0..c.num_kv_heads {
            let off = kv.offset(l, g, pos0 + t);
            let key = &row[q_dim + g * hd..q_dim + (g + 1) * hd];
            let value = &row[q_dim + kv_dim + g * hd..q_dim + kv_dim + (g + 1) * hd];
            match (&mut kv.k, &mut kv.v) {
                (KvStore::F32(kc), KvStore::F32(vc)) => {
                    kc[off..off + hd].copy_from_slice(key);
                    vc[off..off + hd].copy_from_slice(value);
                }
                (KvStore::F16(kc), KvStore::F16(vc)) => {
                    (k.f32_to_f16)(key, &mut kc[off..off + hd]);
                    (k.f32_to_f16)(value, &mut vc[off..off + hd]);
                }
                (KvStore::Q8(kc), KvStore::Q8(vc)) => {
                    (k.quantize_q8_kv)(key, &mut kc[off / QK..(off + hd) / QK]);
                    (k.quantize_q8_kv)(value, &mut vc[off / QK..(off + hd) / QK]);
                }
                _ => unreachable!("keys and values share one type"),
            }
        }
    }
    let ctx = kv.context();
    let attn = OutCols::new(&mut s.attn[..n * q_dim], n, q_dim);
    let job = Attention {
        k,
        c,
        kv,
        qkv: &s.qkv[..n * qkv_dim],
        qkv_dim,
        l,
        pos0,
        n,
        ctx,
        query_block: s.query_block,
    };
    job.heads(0, c.num_heads, attn, &mut s.scores, &mut s.qq, chunks);
    layer
        .attn_out
        .apply(k, &s.attn[..n * q_dim], &mut s.xq, n, &mut s.xn, chunks);
    (k.add)(&mut s.x[..n * h], &s.xn[..n * h]);

    // Feed-forward block.
    rms_norm_rows(k, &s.x[..n * h], layer.ffn_norm, eps, &mut s.xn[..n * h]);
    layer
        .gate_up
        .apply(k, &s.xn[..n * h], &mut s.xq, n, &mut s.ffn, chunks);
    for t in 0..n {
        let row = &s.ffn[t * 2 * ff..(t + 1) * 2 * ff];
        (k.swiglu)(&row[..ff], &row[ff..], &mut s.act[t * ff..(t + 1) * ff]);
    }
    layer
        .down
        .apply(k, &s.act[..n * ff], &mut s.xq, n, &mut s.xn, chunks);
    (k.add)(&mut s.x[..n * h], &s.xn[..n * h]);
}

/// Causal attention of `n` new tokens over the cache, for one layer.
struct Attention<'a> {
    k: &'a Kernels,
    c: &'a crate::format::meta::ModelConfig,
    kv: &'a KvCache,
    qkv: &'a [f32],
    qkv_dim: usize,
    l: usize,
    pos0: usize,
    n: usize,
    ctx: usize,
    query_block: usize,
}

impl Attention<'_> {
    /// Scratch floats per head: a block of queries and their scores.
    fn slot(&self) -> usize {
        self.query_block * (self.c.head_dim + self.ctx)
    }

    /// The factor of the attention scores, `1/√head_dim`.
    fn scale(&self) -> f32 {
        1.0 / (self.c.head_dim as f32).sqrt()
    }

    /// The query of token `t` for head `h`.
    fn query(&self, t: usize, h: usize) -> &[f32] {
        let at = t * self.qkv_dim + h * self.c.head_dim;
        &self.qkv[at..at + self.c.head_dim]
    }

    /// Heads `[h0, h1)`, split across `chunks` parallel tasks; `out` covers their columns,
    /// `scores` and `qq` their scratch rows.
    fn heads(
        &self,
        h0: usize,
        h1: usize,
        mut out: OutCols<'_>,
        scores: &mut [f32],
        qq: &mut [BlockQ8Act],
        chunks: usize,
    ) {
        let hd = self.c.head_dim;
        if chunks <= 1 || h1 - h0 <= 1 {
            let qb = hd / QK;
            for h in h0..h1 {
                let i = h - h0;
                let (sc, q8) = (
                    &mut scores[i * self.slot()..(i + 1) * self.slot()],
                    &mut qq[i * qb..(i + 1) * qb],
                );
                self.head(h, &mut out, i * hd, sc, q8);
            }
            return;
        }
        let mid = h0 + (h1 - h0) * (chunks / 2) / chunks;
        let mid = mid.clamp(h0 + 1, h1 - 1);
        let (oa, ob) = out.split_at((mid - h0) * hd);
        let (sa, sb) = scores.split_at_mut((mid - h0) * self.slot());
        let (qa, qb) = qq.split_at_mut((mid - h0) * (hd / QK));
        rayon::join(
            || self.heads(h0, mid, oa, sa, qa, chunks / 2),
            || self.heads(mid, h1, ob, sb, qb, chunks - chunks / 2),
        );
    }

    fn head(&self, h: usize, out: &mut OutCols<'_>, col: usize, scores: &mut [f32], qq: &mut [BlockQ8Act]) {
        let (k, hd) = (self.k, self.c.head_dim);
        let g = h / (self.c.num_heads / self.c.num_kv_heads);
        let scale = self.scale();
        let base = self.kv.offset(self.l, g, 0);
        if let (KvStore::F16(kc), KvStore::F16(vc)) = (&self.kv.k, &self.kv.v)
            && self.n > 1
        {
            return self.head_prompt_f16(h, out, col, scores, &kc[base..], &vc[base..]);
        }
        for t in 0..self.n {
            let len = self.pos0 + t + 1;
            let q = self.query(t, h);
            let sc = &mut scores[..len];
            let o = &mut out.row(t)[col..col + hd];
            match (&self.kv.k, &self.kv.v) {
                (KvStore::F32(kc), KvStore::F32(vc)) => {
                    (k.matmul_f32)(&kc[base..base + len * hd], q, OutCols::new(sc, 1, len));
                    sc.iter_mut().for_each(|x| *x *= scale);
                    (k.softmax)(sc);
                    o.fill(0.0);
                    for (&p, v) in sc.iter().zip(vc[base..base + len * hd].chunks_exact(hd)) {
                        o.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
                    }
                }
                (KvStore::F16(kc), KvStore::F16(vc)) => {
                    (k.attn_scores_f16)(q, &kc[base..base + len * hd], scale, sc);
                    (k.softmax)(sc);
                    (k.attn_values_f16)(sc, &vc[base..base + len * hd], o);
                }
                (KvStore::Q8(kc), KvStore::Q8(vc)) => {
                    let (b0, b1) = (base / QK, (base + len * hd) / QK);
                    (k.quantize_q8_act)(q, qq);
                    (k.attn_scores_q8)(qq, &kc[b0..b1], scale, sc);
                    (k.softmax)(sc);
                    (k.attn_values_q8)(sc, &vc[b0..b1], o);
                }
                _ => unreachable!("keys and values share one type"),
            }
        }
    }

    /// Head `h` for a prompt of several tokens on the f16 cache (`keys` and `values` start at
    /// the head's first position): the scores of a block of queries are one matrix product
    /// (each key read once per block, no reduction per key), then each row is masked to its
    /// position, scaled, softmaxed and weighs the values.
    fn head_prompt_f16(
        &self,
        h: usize,
        out: &mut OutCols<'_>,
        col: usize,
        slot: &mut [f32],
        keys: &[u16],
        values: &[u16],
    ) {
        let (k, hd, scale) = (self.k, self.c.head_dim, self.scale());
        let (queries, scores) = slot.split_at_mut(self.query_block * hd);
        for t0 in (0..self.n).step_by(self.query_block) {
            let t1 = (t0 + self.query_block).min(self.n);
            for (t, q) in (t0..t1).zip(queries.chunks_exact_mut(hd)) {
                q.copy_from_slice(self.query(t, h));
            }
            // Every key that the block's last query sees; earlier queries ignore the rest.
            let seen = self.pos0 + t1;
            let sc = &mut scores[..(t1 - t0) * seen];
            (k.matmul_f16)(
                &keys[..seen * hd],
                &queries[..(t1 - t0) * hd],
                OutCols::new(sc, t1 - t0, seen),
            );
            for (t, row) in (t0..t1).zip(sc.chunks_exact_mut(seen)) {
                let p = &mut row[..self.pos0 + t + 1];
                p.iter_mut().for_each(|x| *x *= scale);
                (k.softmax)(p);
                (k.attn_values_f16)(p, &values[..p.len() * hd], &mut out.row(t)[col..col + hd]);
            }
        }
    }
}
