//! Causal self-attention of new tokens over one layer's KV cache (grouped-query heads, an
//! optional sliding window and score soft-capping), and cross-attention over fixed keys and
//! values; heads split across threads.

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::kv_cache::LayerKv;

/// Queries whose attention scores one matrix product computes in prompt processing (each
/// block reads the keys once for all of them).
pub const QUERY_BLOCK: usize = 16;

/// The shape of a layer's attention.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Factor of the scores.
    pub scale: f32,
    /// Scores become `cap · tanh(score / cap)`.
    pub softcap: Option<f32>,
    /// A query at position `p` sees the keys at `p - window < k ≤ p`.
    pub window: Option<usize>,
}

/// Attention of `n` new tokens at positions `pos0..pos0 + n` whose keys and values are
/// already in `kv` (positions `0..ctx` per kv head).
pub struct CausalAttention<'a> {
    /// The kernels.
    pub k: &'a Kernels,
    /// The shape.
    pub shape: Heads,
    /// The layer's cache.
    pub kv: &'a LayerKv,
    /// Positions per kv head in the cache.
    pub ctx: usize,
    /// Per token, the q rows of every head, then k and v (the q rows are read).
    pub qkv: &'a [f32],
    /// Values per token in `qkv`.
    pub qkv_dim: usize,
    /// First new position.
    pub pos0: usize,
    /// New tokens.
    pub n: usize,
    /// Queries per score product in prompt processing.
    pub query_block: usize,
}

impl CausalAttention<'_> {
    /// Scratch floats per head: a block of queries and their scores.
    pub fn slot(&self) -> usize {
        self.query_block * (self.shape.head_dim + self.ctx)
    }

    /// The query of token `t` for head `h`.
    fn query(&self, t: usize, h: usize) -> &[f32] {
        let at = t * self.qkv_dim + h * self.shape.head_dim;
        &self.qkv[at..at + self.shape.head_dim]
    }

    /// The first key position the query at `pos` sees.
    fn first_key(&self, pos: usize) -> usize {
        self.shape.window.map_or(0, |w| (pos + 1).saturating_sub(w))
    }

    fn softcap(&self, scores: &mut [f32]) {
        if let Some(cap) = self.shape.softcap {
            scores.iter_mut().for_each(|s| *s = cap * (*s / cap).tanh());
        }
    }

    /// Heads `[h0, h1)`, split across `chunks` parallel tasks; `out` covers their columns,
    /// `scores` ([`CausalAttention::slot`] per head) and `qq` (`head_dim / QK` per head)
    /// their scratch.
    pub fn heads(
        &self,
        h0: usize,
        h1: usize,
        mut out: OutCols<'_>,
        scores: &mut [f32],
        qq: &mut [BlockQ8Act],
        chunks: usize,
    ) {
        let hd = self.shape.head_dim;
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
        let (k, hd, scale) = (self.k, self.shape.head_dim, self.shape.scale);
        let g = h / (self.shape.heads / self.shape.kv_heads);
        let base = g * self.ctx * hd;
        if let LayerKv::F16 { k: kc, v: vc } = self.kv
            && self.n > 1
        {
            return self.head_prompt_f16(h, out, col, scores, &kc[base..], &vc[base..]);
        }
        for t in 0..self.n {
            let (start, end) = (self.first_key(self.pos0 + t), self.pos0 + t + 1);
            let (k0, k1) = (base + start * hd, base + end * hd);
            let q = self.query(t, h);
            let sc = &mut scores[..end - start];
            let o = &mut out.row(t)[col..col + hd];
            match self.kv {
                LayerKv::F32 { k: kc, v: vc } => {
                    (k.matmul_f32)(&kc[k0..k1], q, OutCols::new(sc, 1, end - start));
                    sc.iter_mut().for_each(|x| *x *= scale);
                    self.softcap(sc);
                    (k.softmax)(sc);
                    o.fill(0.0);
                    for (&p, v) in sc.iter().zip(vc[k0..k1].chunks_exact(hd)) {
                        o.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
                    }
                }
                LayerKv::F16 { k: kc, v: vc } => {
                    (k.attn_scores_f16)(q, &kc[k0..k1], scale, sc);
                    self.softcap(sc);
                    (k.softmax)(sc);
                    (k.attn_values_f16)(sc, &vc[k0..k1], o);
                }
                LayerKv::Q8 { k: kc, v: vc } => {
                    let (b0, b1) = (k0 / QK, k1 / QK);
                    (k.quantize_q8_act)(q, qq);
                    (k.attn_scores_q8)(qq, &kc[b0..b1], scale, sc);
                    self.softcap(sc);
                    (k.softmax)(sc);
                    (k.attn_values_q8)(sc, &vc[b0..b1], o);
                }
            }
        }
    }

    /// Head `h` for a prompt of several tokens on the f16 cache (`keys` and `values` start at
    /// the head's first position): the scores of a block of queries are one matrix product
    /// (each key read once per block, no reduction per key), then each row is cut to the keys
    /// its position sees, scaled, softmaxed and weighs the values.
    fn head_prompt_f16(
        &self,
        h: usize,
        out: &mut OutCols<'_>,
        col: usize,
        slot: &mut [f32],
        keys: &[u16],
        values: &[u16],
    ) {
        let (k, hd, scale) = (self.k, self.shape.head_dim, self.shape.scale);
        let (queries, scores) = slot.split_at_mut(self.query_block * hd);
        for t0 in (0..self.n).step_by(self.query_block) {
            let t1 = (t0 + self.query_block).min(self.n);
            for (t, q) in (t0..t1).zip(queries.chunks_exact_mut(hd)) {
                q.copy_from_slice(self.query(t, h));
            }
            // The keys from the first one the block's first query sees to the last one its
            // last query sees; each row then takes its own part.
            let (lo, seen) = (self.first_key(self.pos0 + t0), self.pos0 + t1);
            let width = seen - lo;
            let sc = &mut scores[..(t1 - t0) * width];
            (k.matmul_f16)(
                &keys[lo * hd..seen * hd],
                &queries[..(t1 - t0) * hd],
                OutCols::new(sc, t1 - t0, width),
            );
            for (t, row) in (t0..t1).zip(sc.chunks_exact_mut(width)) {
                let (start, end) = (self.first_key(self.pos0 + t), self.pos0 + t + 1);
                let p = &mut row[start - lo..end - lo];
                p.iter_mut().for_each(|x| *x *= scale);
                self.softcap(p);
                (k.softmax)(p);
                (k.attn_values_f16)(p, &values[start * hd..end * hd], &mut out.row(t)[col..col + hd]);
            }
        }
    }
}

/// Cross-attention of `n` tokens over a fixed set of keys and values (a speech model's
/// encoder output, projected once per audio window into `kv`): every query sees every key.
/// It is [`CausalAttention`] one token at a time with all `ctx` positions behind it.
pub struct CrossAttention<'a> {
    /// The kernels.
    pub k: &'a Kernels,
    /// The shape (no window, no soft-capping).
    pub shape: Heads,
    /// The layer's keys and values.
    pub kv: &'a LayerKv,
    /// Positions per kv head.
    pub ctx: usize,
    /// Per token, the q rows of every head.
    pub q: &'a [f32],
    /// New tokens.
    pub n: usize,
}

impl CrossAttention<'_> {
    /// Scratch floats per head.
    pub fn slot(&self) -> usize {
        self.shape.head_dim + self.ctx
    }

    /// Writes the attention output of every head (`n` rows of `heads · head_dim`) into `out`,
    /// heads split into `chunks` parallel tasks; `scores` ([`CrossAttention::slot`] per head)
    /// and `qq` (`head_dim / QK` per head) are scratch.
    pub fn run(&self, out: &mut [f32], scores: &mut [f32], qq: &mut [BlockQ8Act], chunks: usize) {
        let q_dim = self.shape.heads * self.shape.head_dim;
        for (t, row) in out.chunks_exact_mut(q_dim).take(self.n).enumerate() {
            let one = CausalAttention {
                k: self.k,
                shape: self.shape,
                kv: self.kv,
                ctx: self.ctx,
                qkv: &self.q[t * q_dim..(t + 1) * q_dim],
                qkv_dim: q_dim,
                pos0: self.ctx - 1,
                n: 1,
                query_block: 1,
            };
            one.heads(
                0,
                self.shape.heads,
                OutCols::new(row, 1, q_dim),
                scores,
                qq,
                chunks,
            );
        }
    }
}
