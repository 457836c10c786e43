//! Bidirectional self-attention over a packed batch (BERT's sentences, Whisper's audio
//! frames): each sentence's tokens attend to all tokens of the same sentence and to no other (the block-diagonal form of a padding mask,
//! with no work spent on padding). Heads are split across threads.

use std::ops::Range;

use edgelm_kernels::{Kernels, OutCols};

/// Buffers of one attention task (one head of one sentence at a time).
pub struct HeadScratch {
    /// Scaled queries, `len × head_dim`.
    q: Vec<f32>,
    /// Keys, `len × head_dim`.
    k: Vec<f32>,
    /// Values transposed, `head_dim × len`.
    vt: Vec<f32>,
    /// Scores, then probabilities, `len × len`.
    p: Vec<f32>,
    /// The head's output, `len × head_dim`.
    o: Vec<f32>,
}

impl HeadScratch {
    /// Room for sentences of up to `max_len` tokens.
    pub fn new(max_len: usize, head_dim: usize) -> Self {
        let v = |n| vec![0.0; n];
        HeadScratch {
            q: v(max_len * head_dim),
            k: v(max_len * head_dim),
            vt: v(max_len * head_dim),
            p: v(max_len * max_len),
            o: v(max_len * head_dim),
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
                s.k[i * hd..(i + 1) * hd].copy_from_slice(head(1));
                for (d, &v) in head(2).iter().enumerate() {
                    s.vt[d * len + i] = v;
                }
            }
            // p[i][j] = k_j · q_i, softmax over j; o[i] = Σ_j p[i][j] v_j.
            let p = &mut s.p[..len * len];
            (k.matmul_f32)(&s.k[..len * hd], &s.q[..len * hd], OutCols::new(p, len, len));
            p.chunks_exact_mut(len).for_each(k.softmax);
            let o = &mut s.o[..len * hd];
            (k.matmul_f32)(&s.vt[..hd * len], p, OutCols::new(o, len, hd));
            for (i, t) in span.clone().enumerate() {
                out.row(t).copy_from_slice(&o[i * hd..(i + 1) * hd]);
            }
        }
    }
}
