//! Bidirectional self-attention over a packed batch (BERT's sentences, Whisper's audio
//! frames): each sentence's tokens attend to all tokens of the same sentence and to no other (the block-diagonal form of a padding mask,
//! with no work spent on padding). Heads are split across threads.

use std::ops::Range;

use edgelm_kernels::{Kernels, OutCols};

use crate::pool::{Pieces, even_ranges};

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
}

impl HeadScratch {
    /// Room for sentences of up to `max_len` tokens.
    pub fn new(max_len: usize, head_dim: usize) -> Self {
        let v = |n| vec![0.0; n];
        let block = QUERY_BLOCK.min(max_len);
        HeadScratch {
            q: v(max_len * head_dim),
            kt: v(max_len * head_dim),
            v: v(max_len * head_dim),
            p: v(block * max_len),
            o: v(block * head_dim),
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
}

impl SelfAttention<'_> {
    /// Writes the attention output (`n × heads·head_dim`) into `out`, heads split into up
    /// to `chunks` parallel tasks (at most `scratch.len()`).
    pub fn run(&self, out: &mut [f32], scratch: &mut [HeadScratch], chunks: usize) {
        let width = self.heads * self.head_dim;
        let n = out.len() / width;
        let out = OutCols::new(out, n, width);
        let chunks = chunks.min(scratch.len()).min(self.heads).max(1);
        let task = |(hs, mut out, s): (Range<usize>, OutCols<'_>, &mut HeadScratch)| {
            for h in hs {
                let (mut mine, rest) = out.split_at(self.head_dim);
                self.head(h, &mut mine, s);
                out = rest;
            }
        };
        let mut tasks = Pieces::new(&task);
        let mut out = out;
        for (heads, s) in even_ranges(self.heads, chunks).zip(&mut scratch[..chunks]) {
            let (mine, rest) = out.split_at(heads.len() * self.head_dim);
            tasks.push((heads, mine, s));
            out = rest;
        }
        tasks.run();
    }

    /// Head `h` of every sentence; `out` is that head's `head_dim` columns.
    fn head(&self, h: usize, out: &mut OutCols<'_>, s: &mut HeadScratch) {
        let (k, hd) = (self.k, self.head_dim);
        let q_dim = self.heads * hd;
        let row_len = 3 * q_dim;
        let scale = 1.0 / (hd as f32).sqrt();
        for span in self.spans {
            let len = span.len();
            for (i, t) in span.clone().enumerate() {
                let row = &self.qkv[t * row_len..(t + 1) * row_len];
                let head = |part: usize| &row[part * q_dim + h * hd..part * q_dim + (h + 1) * hd];
                for (q, &x) in s.q[i * hd..(i + 1) * hd].iter_mut().zip(head(0)) {
                    *q = x * scale;
                }
                for (d, &x) in head(1).iter().enumerate() {
                    s.kt[d * len + i] = x;
                }
                s.v[i * hd..(i + 1) * hd].copy_from_slice(head(2));
            }
            let (kt, v) = (&s.kt[..hd * len], &s.v[..len * hd]);
            // Per block of queries: p[i][j] = q_i · k_j, softmax over j; o[i] = Σ_j p[i][j] v_j.
            for i0 in (0..len).step_by(QUERY_BLOCK) {
                let m = QUERY_BLOCK.min(len - i0);
                let p = &mut s.p[..m * len];
                (k.matmul_f32_t)(kt, &s.q[i0 * hd..(i0 + m) * hd], OutCols::new(p, m, len));
                p.chunks_exact_mut(len).for_each(|p| (k.softmax)(p, 1.0));
                let o = &mut s.o[..m * hd];
                (k.matmul_f32_t)(v, p, OutCols::new(o, m, hd));
                for (i, o) in o.chunks_exact(hd).enumerate() {
                    out.row(span.start + i0 + i).copy_from_slice(o);
                }
            }
        }
    }
}
