//! Causal self-attention of new tokens over one layer's KV cache (grouped-query heads, an
//! optional sliding window and score soft-capping), and cross-attention over fixed keys and
//! values; heads split across threads.

use std::ops::Range;

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::kv_cache::LayerKv;
use crate::pool::{self, Pieces};

/// Queries whose attention scores one matrix product computes in prompt processing (each
/// block reads the keys once for all of them).
pub const QUERY_BLOCK: usize = 16;

/// Queries per score product in the causal triangle of a prompt's query block (a register
/// tile's tokens in the float matmul): the scores it computes and discards are those above
/// the diagonal within each group.
const TRIANGLE_GROUP: usize = 4;

/// A prompt task of [`CausalAttention::part`]: heads, tokens, their output columns, and a
/// slot of scratch (scores, quantized query).
type Task<'a> = (
    Range<usize>,
    Range<usize>,
    OutCols<'a>,
    &'a mut [f32],
    &'a mut [BlockQ8Act],
);

/// The fewest cached positions one generation task attends ([`CausalAttention::decode`]).
const MIN_BLOCK_KEYS: usize = 64;

/// Prompt tasks (and slots of scratch) for `heads` query heads on `threads` threads: one per
/// head, or two per thread where that is more (see [`CausalAttention::heads`]).
pub fn prompt_slots(heads: usize, threads: usize) -> usize {
    heads.max(2 * threads)
}

/// Scratch floats the attention of `heads` query heads over `kv_heads` kv heads of `head_dim`
/// needs over a context of `ctx` positions with `query_block` queries per score product: the
/// prompt path's `slots` (at least `heads`), or generation's key blocks.
pub fn scratch_len(
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ctx: usize,
    query_block: usize,
    slots: usize,
) -> usize {
    let prompt = slots.max(heads) * query_block * (head_dim + ctx);
    let blocks = ctx.div_ceil(MIN_BLOCK_KEYS);
    let decode = kv_heads * (ctx + blocks) + heads * blocks * (head_dim + 2);
    prompt.max(decode)
}

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

    /// Heads `[h0, h1)` of every token, split across up to `chunks` parallel tasks; `out`
    /// covers their columns, `scores` and `qq` hold each task's scratch
    /// ([`CausalAttention::slot`] and `head_dim / QK` blocks): at least one per head, and
    /// as many tasks as they hold. A prompt's work splits by (head, block of queries), so that
    /// more threads than heads all get some.
    pub fn heads(
        &self,
        h0: usize,
        h1: usize,
        out: OutCols<'_>,
        scores: &mut [f32],
        qq: &mut [BlockQ8Act],
        chunks: usize,
    ) {
        let slots = (scores.len() / self.slot()).min(qq.len() / (self.shape.head_dim / QK).max(1));
        let tasks = chunks.min(slots).max(1);
        let task = |task| self.task(task);
        let mut pieces = Pieces::new(&task);
        self.part(h0..h1, 0..self.n, out, scores, qq, tasks, &mut pieces);
        pieces.run();
    }

    /// Heads `hs` over tokens `ts` (all tokens where `hs` is several heads) into `out` (their
    /// columns, rows from `ts.start`), cut into `parts` tasks with a slot of scratch each.
    #[allow(clippy::too_many_arguments)]
    fn part<'a>(
        &self,
        hs: Range<usize>,
        ts: Range<usize>,
        out: OutCols<'a>,
        scores: &'a mut [f32],
        qq: &'a mut [BlockQ8Act],
        parts: usize,
        tasks: &mut Pieces<'_, Task<'a>, impl Fn(Task<'a>) + Sync>,
    ) {
        let (hd, slot, blocks) = (self.shape.head_dim, self.slot(), self.shape.head_dim / QK);
        let left = parts / 2;
        if parts > 1 && hs.len() > 1 {
            let mid = (hs.start + hs.len() * left / parts).clamp(hs.start + 1, hs.end - 1);
            let (oa, ob) = out.split_at((mid - hs.start) * hd);
            let ((sa, sb), (qa, qb)) = (scores.split_at_mut(left * slot), qq.split_at_mut(left * blocks));
            self.part(hs.start..mid, ts.clone(), oa, sa, qa, left, tasks);
            self.part(mid..hs.end, ts, ob, sb, qb, parts - left, tasks);
        } else if let Some(mid) = (parts > 1)
            .then(|| self.split_queries(ts.clone(), left, parts))
            .flatten()
        {
            let (oa, ob) = out.split_tokens(mid - ts.start);
            let ((sa, sb), (qa, qb)) = (scores.split_at_mut(left * slot), qq.split_at_mut(left * blocks));
            self.part(hs.clone(), ts.start..mid, oa, sa, qa, left, tasks);
            self.part(hs, mid..ts.end, ob, sb, qb, parts - left, tasks);
        } else {
            tasks.push((hs, ts, out, &mut scores[..slot], &mut qq[..blocks]));
        }
    }

    /// One task of [`CausalAttention::part`]: its heads one after the other.
    fn task(&self, (hs, ts, mut out, scores, qq): Task<'_>) {
        for (i, h) in hs.enumerate() {
            self.head(h, ts.clone(), &mut out, i * self.shape.head_dim, scores, qq);
        }
    }

    /// A query-block boundary inside `ts` that leaves about `left / parts` of the work (the
    /// keys the queries see) before it, or `None` where `ts` is one block.
    fn split_queries(&self, ts: Range<usize>, left: usize, parts: usize) -> Option<usize> {
        let seen = |t: usize| self.pos0 + t + 1 - self.first_key(self.pos0 + t);
        let total: usize = ts.clone().map(seen).sum();
        let (mut done, mut t) = (0, ts.start);
        while t < ts.end && done * parts < total * left {
            let end = (t + 1).next_multiple_of(self.query_block.max(1)).min(ts.end);
            done += (t..end).map(seen).sum::<usize>();
            t = end;
        }
        (t > ts.start && t < ts.end).then_some(t)
    }

    /// Head `h` over tokens `ts` into `out` (rows from `ts.start`) at column `col`.
    fn head(
        &self,
        h: usize,
        ts: Range<usize>,
        out: &mut OutCols<'_>,
        col: usize,
        scores: &mut [f32],
        qq: &mut [BlockQ8Act],
    ) {
        let hd = self.shape.head_dim;
        if let LayerKv::F16 { k: kc, v: vc } = self.kv
            && self.n > 1
        {
            let base = self.kv_head(h) * self.ctx * hd;
            return self.head_prompt_f16(h, ts, out, col, scores, &kc[base..], &vc[base..]);
        }
        for t in ts.clone() {
            if let LayerKv::Q8 { .. } = self.kv {
                (self.k.quantize_q8_act)(self.query(t, h), qq);
            }
            let keys = self.first_key(self.pos0 + t)..self.pos0 + t + 1;
            self.attend(h, t, keys, scores, qq, &mut out.row(t - ts.start)[col..col + hd]);
        }
    }

    /// The kv head that query head `h` reads.
    fn kv_head(&self, h: usize) -> usize {
        h / (self.shape.heads / self.shape.kv_heads)
    }

    /// Token `t`'s head `h` over the cached positions `keys` of its kv head: scores in `sc`
    /// (soft-capped, softmaxed), the weighted values in `o`; `q8` is the query quantized when
    /// the cache is q8. Returns the largest score and Σ exp(score − largest), which a merge of
    /// several key blocks needs.
    fn attend(
        &self,
        h: usize,
        t: usize,
        keys: Range<usize>,
        sc: &mut [f32],
        q8: &[BlockQ8Act],
        o: &mut [f32],
    ) -> (f32, f32) {
        let (k, hd, scale) = (self.k, self.shape.head_dim, self.shape.scale);
        let base = self.kv_head(h) * self.ctx * hd;
        let (k0, k1) = (base + keys.start * hd, base + keys.end * hd);
        let q = self.query(t, h);
        let sc = &mut sc[..keys.len()];
        match self.kv {
            LayerKv::F32 { k: kc, .. } => {
                (k.matmul_f32)(&kc[k0..k1], q, OutCols::new(sc, 1, keys.len()));
                sc.iter_mut().for_each(|x| *x *= scale);
            }
            LayerKv::F16 { k: kc, .. } => (k.attn_scores_f16)(q, &kc[k0..k1], scale, sc),
            LayerKv::Q8 { k: kc, .. } => (k.attn_scores_q8)(q8, &kc[k0 / QK..k1 / QK], scale, sc),
        }
        self.softcap(sc);
        let (top, max) =
            sc.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |(i, m), (j, &x)| if x > m { (j, x) } else { (i, m) },
            );
        (k.softmax)(sc, 1.0);
        // The largest score's weight is exp(0) / Σ exp(score − largest).
        let sum = 1.0 / sc[top];
        match self.kv {
            LayerKv::F32 { v: vc, .. } => {
                o.fill(0.0);
                for (&p, v) in sc.iter().zip(vc[k0..k1].chunks_exact(hd)) {
                    o.iter_mut().zip(v).for_each(|(o, &v)| *o += p * v);
                }
            }
            LayerKv::F16 { v: vc, .. } => (k.attn_values_f16)(sc, &vc[k0..k1], o),
            LayerKv::Q8 { v: vc, .. } => (k.attn_values_q8)(sc, &vc[k0 / QK..k1 / QK], o),
        }
        (max, sum)
    }

    /// Generation (`n == 1`) over every head into `out`: the cached positions are cut into
    /// blocks, and each (kv head, block) is one parallel task that attends the query heads
    /// sharing that kv head over its block (the block's keys stay in cache for all of them);
    /// a merge then weighs each block's output by its share of the softmax (flash-decoding).
    /// So a long context splits across threads however few heads the model has. `scratch`
    /// holds at least [`scratch_len`] floats, `qq` `heads · head_dim / QK` blocks.
    pub fn decode(&self, mut out: OutCols<'_>, scratch: &mut [f32], qq: &mut [BlockQ8Act], threads: usize) {
        debug_assert_eq!(self.n, 1);
        let (hd, heads, kv_heads) = (self.shape.head_dim, self.shape.heads, self.shape.kv_heads);
        let (group, qb) = (heads / kv_heads, hd / QK);
        let keys = self.first_key(self.pos0)..self.pos0 + 1;
        let wanted = (2 * threads)
            .div_ceil(kv_heads)
            .min(keys.len().div_ceil(MIN_BLOCK_KEYS));
        let width = keys.len().div_ceil(wanted.max(1));
        let blocks = keys.len().div_ceil(width);
        // A task's floats: its scores (reused head after head), then per head its output,
        // largest score and sum.
        let part = width + group * (hd + 2);
        if let LayerKv::Q8 { .. } = self.kv {
            for (h, q8) in qq.chunks_exact_mut(qb).take(heads).enumerate() {
                (self.k.quantize_q8_act)(self.query(0, h), q8);
            }
        }
        let qq = &*qq;
        let scratch = &mut scratch[..kv_heads * blocks * part];
        pool::each(scratch.chunks_mut(part).enumerate(), &|(task, buf): (
            usize,
            &mut [f32],
        )| {
            let (g, b) = (task / blocks, task % blocks);
            let start = keys.start + b * width;
            let range = start..(start + width).min(keys.end);
            let (sc, partials) = buf.split_at_mut(width);
            for (i, p) in partials.chunks_exact_mut(hd + 2).enumerate() {
                let h = g * group + i;
                let (o, stats) = p.split_at_mut(hd);
                let (max, sum) = self.attend(h, 0, range.clone(), sc, &qq[h * qb..(h + 1) * qb], o);
                stats.copy_from_slice(&[max, sum]);
            }
        });
        let row = out.row(0);
        for h in 0..heads {
            let (g, i) = (h / group, h % group);
            let partial = |b: usize| &scratch[(g * blocks + b) * part + width + i * (hd + 2)..][..hd + 2];
            let o = &mut row[h * hd..(h + 1) * hd];
            if blocks == 1 {
                o.copy_from_slice(&partial(0)[..hd]);
                continue;
            }
            let top = (0..blocks)
                .map(|b| partial(b)[hd])
                .fold(f32::NEG_INFINITY, f32::max);
            let weight = |b: usize| partial(b)[hd + 1] * (partial(b)[hd] - top).exp();
            let total: f32 = (0..blocks).map(weight).sum();
            o.fill(0.0);
            for b in 0..blocks {
                let w = weight(b) / total;
                o.iter_mut()
                    .zip(&partial(b)[..hd])
                    .for_each(|(o, &x)| *o += w * x);
            }
        }
    }

    /// Head `h` for a prompt of several tokens on the f16 cache (`keys` and `values` start at
    /// the head's first position): the scores of a block of queries are one matrix product
    /// (each key read once per block, no reduction per key), then each row is cut to the keys
    /// its position sees, scaled, softmaxed and weighs the values.
    #[allow(clippy::too_many_arguments)]
    fn head_prompt_f16(
        &self,
        h: usize,
        ts: Range<usize>,
        out: &mut OutCols<'_>,
        col: usize,
        slot: &mut [f32],
        keys: &[u16],
        values: &[u16],
    ) {
        let (k, hd, scale) = (self.k, self.shape.head_dim, self.shape.scale);
        let (queries, scores) = slot.split_at_mut(self.query_block * hd);
        for t0 in ts.clone().step_by(self.query_block) {
            let t1 = (t0 + self.query_block).min(ts.end);
            for (t, q) in (t0..t1).zip(queries.chunks_exact_mut(hd)) {
                q.copy_from_slice(self.query(t, h));
            }
            // The keys from the first one the block's first query sees to the last one its
            // last query sees; each row then takes its own part. The keys up to the first
            // query's position, which every query sees, are one product; the causal triangle
            // after them is one per group of queries, up to the group's last position.
            let (lo, seen) = (self.first_key(self.pos0 + t0), self.pos0 + t1);
            let (width, shared) = (seen - lo, self.pos0 + t0 + 1 - lo);
            let sc = &mut scores[..(t1 - t0) * width];
            let mut block = OutCols::new(sc, t1 - t0, width);
            let key_rows = |r: Range<usize>| &keys[(lo + r.start) * hd..(lo + r.end) * hd];
            (k.matmul_f16)(
                key_rows(0..shared),
                &queries[..(t1 - t0) * hd],
                block.tokens(0..t1 - t0).split_at(shared).0,
            );
            for g0 in (0..t1 - t0).step_by(TRIANGLE_GROUP) {
                let g1 = (g0 + TRIANGLE_GROUP).min(t1 - t0);
                let cols = shared..shared + g1 - 1;
                if !cols.is_empty() {
                    let (left, _) = block.tokens(g0..g1).split_at(cols.end);
                    (k.matmul_f16)(
                        key_rows(cols.clone()),
                        &queries[g0 * hd..g1 * hd],
                        left.split_at(cols.start).1,
                    );
                }
            }
            for (t, row) in (t0..t1).zip(sc.chunks_exact_mut(width)) {
                let (start, end) = (self.first_key(self.pos0 + t), self.pos0 + t + 1);
                let p = &mut row[start - lo..end - lo];
                // Soft-capping needs the scaled scores; otherwise softmax scales them.
                let softmax_scale = if self.shape.softcap.is_some() {
                    p.iter_mut().for_each(|x| *x *= scale);
                    self.softcap(p);
                    1.0
                } else {
                    scale
                };
                (k.softmax)(p, softmax_scale);
                let o = &mut out.row(t - ts.start)[col..col + hd];
                (k.attn_values_f16)(p, &values[start * hd..end * hd], o);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::{KvCache, KvType};
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    /// The test layer's shape: query heads, kv heads, values per head.
    type Shape = (usize, usize, usize);

    /// A cache of `kind` whose first `filled` positions per kv head hold random keys and values.
    fn random_cache(
        kind: KvType,
        (_, kv_heads, hd): Shape,
        ctx: usize,
        filled: usize,
        rng: &mut StdRng,
    ) -> KvCache {
        let k = Kernels::detect();
        let mut cache = KvCache::new(kind, 1, kv_heads, hd, ctx).unwrap();
        for g in 0..kv_heads {
            for p in 0..filled {
                let mut row = || (0..hd).map(|_| rng.random_range(-2.0..2.0)).collect::<Vec<f32>>();
                let (key, value) = (row(), row());
                cache.layer_mut(0).write(k, (g * ctx + p) * hd, &key, &value);
            }
        }
        cache
    }

    /// Attention of `n` tokens from `pos0` whose rows of `qkv` are `qkv.len() / n` long.
    fn job<'a>(
        cache: &'a KvCache,
        (heads, kv_heads, head_dim): Shape,
        qkv: &'a [f32],
        (pos0, n): (usize, usize),
        (window, softcap): (Option<usize>, Option<f32>),
    ) -> CausalAttention<'a> {
        CausalAttention {
            k: Kernels::detect(),
            shape: Heads {
                heads,
                kv_heads,
                head_dim,
                scale: 0.125,
                softcap,
                window,
            },
            kv: cache.layer(0),
            ctx: cache.context(),
            qkv,
            qkv_dim: qkv.len() / n,
            pos0,
            n,
            query_block: QUERY_BLOCK,
        }
    }

    /// A prompt's attention split by (head, block of queries) over more tasks than heads is
    /// bit for bit the attention of one task, for every cache type, with and without a window.
    #[test]
    fn prompt_tasks_split_by_query_blocks_match_one_task() {
        let (shape @ (heads, kv_heads, hd), ctx, n, pos0) = ((3, 1, 64), 160, 70, 50);
        let mut rng = StdRng::seed_from_u64(11);
        let pool = crate::pool::Pool::new(4).unwrap();
        for kind in [KvType::F32, KvType::F16, KvType::Q8] {
            let cache = random_cache(kind, shape, ctx, pos0 + n, &mut rng);
            let qkv_dim = (heads + 2 * kv_heads) * hd;
            let qkv: Vec<f32> = (0..n * qkv_dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            for window in [None, Some(40)] {
                let job = job(&cache, shape, &qkv, (pos0, n), (window, None));
                let run = |tasks: usize| {
                    let slots = prompt_slots(heads, tasks);
                    let mut scratch = vec![0.0; scratch_len(heads, kv_heads, hd, ctx, QUERY_BLOCK, slots)];
                    let mut qq = vec![BlockQ8Act::default(); slots * hd / QK];
                    let mut out = vec![0.0; n * heads * hd];
                    let view = OutCols::new(&mut out, n, heads * hd);
                    pool.install(|| job.heads(0, heads, view, &mut scratch, &mut qq, tasks));
                    out
                };
                let want = run(1);
                for tasks in [2, 5, 8, 16] {
                    assert!(
                        run(tasks) == want,
                        "{kind:?} window {window:?}: {tasks} tasks differ"
                    );
                }
            }
        }
    }

    /// Generation's key blocks, merged, give what one pass over all keys gives, for every cache
    /// type, with and without a window and soft-capping.
    #[test]
    fn key_blocks_merge_to_the_single_pass() {
        let (shape @ (heads, kv_heads, hd), ctx) = ((6, 2, 64), 700);
        let mut rng = StdRng::seed_from_u64(7);
        let pool = crate::pool::Pool::new(4).unwrap();
        for kind in [KvType::F32, KvType::F16, KvType::Q8] {
            let cache = random_cache(kind, shape, ctx, ctx, &mut rng);
            let qkv: Vec<f32> = (0..heads * hd + 2 * kv_heads * hd)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            for window_softcap in [(None, None), (Some(300), Some(30.0))] {
                let job = job(&cache, shape, &qkv, (ctx - 1, 1), window_softcap);
                let mut scratch = vec![0.0; scratch_len(heads, kv_heads, hd, ctx, QUERY_BLOCK, heads)];
                let mut qq = vec![BlockQ8Act::default(); heads * hd / QK];
                let mut want = vec![0.0; heads * hd];
                job.heads(
                    0,
                    heads,
                    OutCols::new(&mut want, 1, heads * hd),
                    &mut scratch,
                    &mut qq,
                    1,
                );
                for threads in [1, 2, 16] {
                    let mut got = vec![0.0; heads * hd];
                    pool.install(|| {
                        job.decode(
                            OutCols::new(&mut got, 1, heads * hd),
                            &mut scratch,
                            &mut qq,
                            threads,
                        )
                    });
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(
                        worst < 1e-5,
                        "{kind:?} {window_softcap:?} threads {threads}: off by {worst}"
                    );
                }
            }
        }
    }
}
