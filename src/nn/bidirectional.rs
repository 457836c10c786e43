//! Bidirectional self-attention over a packed batch (BERT's sentences, Whisper's audio
//! frames): each sentence's tokens attend to all tokens of the same sentence and to no other (the block-diagonal form of a padding mask,
//! with no work spent on padding). Heads are split across threads.

use std::ops::Range;

use edgelm_kernels::{Bf16Kernels, Kernels, OutCols};

/// Queries per block: a block's scores (`QUERY_BLOCK × len`) stay in cache from the score
/// product through the softmax to the value product, instead of a `len × len` matrix going
/// through memory.
const QUERY_BLOCK: usize = 32;

/// Buffers of one attention task (one head of one sentence at a time).
pub struct HeadScratch {
    /// Scaled queries, `len × head_dim`.
    q: Vec<f32>,
    /// Keys transposed, `head_dim × len`.
    kt: Vec<f32>,
    /// Values, `len × head_dim`.
    v: Vec<f32>,
    /// Scores, then probabilities, of a block of queries: `QUERY_BLOCK × len`.
    p: Vec<f32>,
    /// The block's output, `QUERY_BLOCK × head_dim`.
    o: Vec<f32>,
    /// The value product's operands on the bfloat16 path, in pairs along the summed
    /// dimension (tokens): values (`len/2 × head_dim`) and the block's probabilities
    /// (`QUERY_BLOCK × len/2`).
    v2: Vec<u32>,
    p2: Vec<u32>,
    /// Two tokens' values interleaved, on their way to pairs.
    row: Vec<f32>,
}

impl HeadScratch {
    /// Room for sentences of up to `max_len` tokens.
    pub fn new(max_len: usize, head_dim: usize) -> Self {
        let v = |n| vec![0.0; n];
        let pairs = |n| vec![0; n];
        let block = QUERY_BLOCK.min(max_len);
        let len2 = max_len.div_ceil(2);
        HeadScratch {
            q: v(max_len * head_dim),
            kt: v(max_len * head_dim),
            v: v(max_len * head_dim),
            p: v(block * max_len),
            o: v(block * head_dim),
            v2: pairs(len2 * head_dim),
            p2: pairs(block * len2),
            row: v(2 * head_dim),
        }
    }
}

/// One layer's attention: `qkv` holds per token the q, k and v rows of every head.
pub struct SelfAttention<'a> {
    /// The kernels.
    pub k: &'a Kernels,
    /// `n × 3·heads·head_dim` projections.
    pub qkv: &'a [f32],
    /// Token ranges of the sentences.
    pub spans: &'a [Range<usize>],
    /// Heads.
    pub heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Bfloat16 kernels for the product of the probabilities and the values (both rounded to
    /// bfloat16, sums in f32), or `None` for f32 throughout. The scores stay f32: bfloat16
    /// queries and keys changed a Whisper beam-search transcript.
    pub bf16: Option<&'static Bf16Kernels>,
}

impl SelfAttention<'_> {
    /// Writes the attention output (`n × heads·head_dim`) into `out`, heads split into up
    /// to `chunks` parallel tasks (at most `scratch.len()`).
    pub fn run(&self, out: &mut [f32], scratch: &mut [HeadScratch], chunks: usize) {
        let width = self.heads * self.head_dim;
        let n = out.len() / width;
        let out = OutCols::new(out, n, width);
        self.split(0, self.heads, out, scratch, chunks.min(scratch.len()).max(1));
    }

    /// Heads `[h0, h1)`; `out` covers their columns.
    fn split(&self, h0: usize, h1: usize, mut out: OutCols<'_>, scratch: &mut [HeadScratch], chunks: usize) {
        if chunks <= 1 || h1 - h0 <= 1 {
            for h in h0..h1 {
                let (mut mine, rest) = out.split_at(self.head_dim);
                self.head(h, &mut mine, &mut scratch[0]);
                out = rest;
            }
            return;
        }
        let left = chunks / 2;
        let mid = (h0 + (h1 - h0) * left / chunks).clamp(h0 + 1, h1 - 1);
        let (oa, ob) = out.split_at((mid - h0) * self.head_dim);
        let (sa, sb) = scratch.split_at_mut(left);
        rayon::join(
            || self.split(h0, mid, oa, sa, left),
            || self.split(mid, h1, ob, sb, chunks - left),
        );
    }

    /// Head `h`'s q, k and v rows of token `t`.
    fn rows(&self, h: usize, t: usize) -> [&[f32]; 3] {
        let (hd, q_dim) = (self.head_dim, self.heads * self.head_dim);
        let row = &self.qkv[t * 3 * q_dim..(t + 1) * 3 * q_dim];
        core::array::from_fn(|part| &row[part * q_dim + h * hd..][..hd])
    }

    /// Head `h` of every sentence; `out` is that head's `head_dim` columns.
    fn head(&self, h: usize, out: &mut OutCols<'_>, s: &mut HeadScratch) {
        let (k, hd) = (self.k, self.head_dim);
        let scale = 1.0 / (hd as f32).sqrt();
        for span in self.spans {
            let (len, len2) = (span.len(), span.len().div_ceil(2));
            for (i, t) in span.clone().enumerate() {
                let [q, key, v] = self.rows(h, t);
                for (qs, &x) in s.q[i * hd..(i + 1) * hd].iter_mut().zip(q) {
                    *qs = x * scale;
                }
                for (d, &x) in key.iter().enumerate() {
                    s.kt[d * len + i] = x;
                }
                if self.bf16.is_none() {
                    s.v[i * hd..(i + 1) * hd].copy_from_slice(v);
                }
            }
            if let Some(bf) = self.bf16 {
                self.value_pairs(bf, h, span, s);
            }
            let kt = &s.kt[..hd * len];
            // Per block of queries: p[i][j] = q_i · k_j, softmax over j; o[i] = Σ_j p[i][j] v_j.
            for i0 in (0..len).step_by(QUERY_BLOCK) {
                let m = QUERY_BLOCK.min(len - i0);
                let p = &mut s.p[..m * len];
                (k.matmul_f32_t)(kt, &s.q[i0 * hd..(i0 + m) * hd], OutCols::new(p, m, len));
                let o = &mut s.o[..m * hd];
                match self.bf16 {
                    None => {
                        p.chunks_exact_mut(len).for_each(k.softmax);
                        (k.matmul_f32_t)(&s.v[..len * hd], p, OutCols::new(o, m, hd));
                    }
                    Some(bf) => {
                        let p2 = &mut s.p2[..m * len2];
                        for (p, p2) in p.chunks_exact_mut(len).zip(p2.chunks_exact_mut(len2)) {
                            (bf.softmax)(p, p2);
                        }
                        (bf.matmul_t)(&s.v2[..len2 * hd], p2, OutCols::new(o, m, hd));
                    }
                }
                for (i, o) in o.chunks_exact(hd).enumerate() {
                    out.row(span.start + i0 + i).copy_from_slice(o);
                }
            }
        }
    }

    /// Head `h`'s values of the tokens of `span` as bfloat16 pairs into `s.v2`: pair row `j`
    /// holds tokens `2j` and `2j + 1` interleaved (zero past the end).
    fn value_pairs(&self, bf: &Bf16Kernels, h: usize, span: &Range<usize>, s: &mut HeadScratch) {
        let hd = self.head_dim;
        for (j, v2) in s.v2[..span.len().div_ceil(2) * hd].chunks_exact_mut(hd).enumerate() {
            let t = span.start + 2 * j;
            let lo = self.rows(h, t)[2];
            let hi = (t + 1 < span.end).then(|| self.rows(h, t + 1)[2]);
            for (c, r) in s.row.chunks_exact_mut(2).enumerate() {
                r[0] = lo[c];
                r[1] = hi.map_or(0.0, |v| v[c]);
            }
            (bf.pairs)(&s.row, v2);
        }
    }
}
