//! Whisper's audio encoder: two 1-D convolutions (kernel 3; the second of stride 2) as
//! im2col rows times the kernel matrix, so they run on the same matrix kernels (int8, f16)
//! as every other product; sinusoidal positions; pre-LayerNorm blocks with bidirectional
//! attention over all frames; then each decoder block's cross-attention keys and values.

use edgelm_kernels::{BlockQ8Act, Kernels};

use super::EncoderScratch;
use crate::format::meta::ModelConfig;
use crate::kv_cache::KvCache;
use crate::model::{LayerNorm, WhisperWeights};
use crate::nn::bidirectional::SelfAttention;
use crate::nn::norm;
use crate::nn::par_rows;

/// Writes the im2col rows of a kernel-3 convolution with padding 1: output row `t` holds, for
/// each input channel `c`, the inputs at times `stride·t − 1`, `stride·t`, `stride·t + 1`
/// (zero outside) at columns `3c`, `3c + 1`, `3c + 2`, as PyTorch's `[out, in, 3]` kernel
/// flattened. `at(c, time)` reads the input.
fn im2col(
    cols: &mut [f32],
    rows: usize,
    channels: usize,
    len: usize,
    stride: usize,
    at: impl Fn(usize, usize) -> f32,
) {
    for (t, row) in cols.chunks_exact_mut(3 * channels).take(rows).enumerate() {
        for (c, taps) in row.chunks_exact_mut(3).enumerate() {
            for (j, v) in taps.iter_mut().enumerate() {
                let time = (stride * t + j).checked_sub(1).filter(|&x| x < len);
                *v = time.map_or(0.0, |x| at(c, x));
            }
        }
    }
}

/// LayerNorm of the rows of `x` into `out`, split across threads.
fn layer_norm(k: &Kernels, x: &mut [f32], n: LayerNorm<'_>, eps: f32, out: &mut [f32], chunks: usize) {
    let h = n.weight.len();
    par_rows(x, h, out, h, chunks, &|x, o| norm::layer_rows(k, x, n, eps, o));
}

/// Runs the encoder over the first `2·positions` frames of `mel` (`n_mels × 2·audio_ctx`),
/// leaving its output (`positions` rows) in `s.x`.
pub(super) fn forward(
    k: &Kernels,
    c: &ModelConfig,
    w: &WhisperWeights<'_>,
    mel: &[f32],
    positions: usize,
    s: &mut EncoderScratch,
    xq: &mut [BlockQ8Act],
) {
    let chunks = crate::pool::threads();
    let audio = c.whisper.as_ref().expect("whisper config");
    let (h, ff, eps) = (c.hidden_size, c.intermediate_size, c.norm_eps);
    let (a, frames, mels) = (positions, 2 * positions, audio.n_mels);
    let stride = 2 * audio.audio_ctx;
    let (ah, q_dim) = (a * h, c.num_heads * c.head_dim);
    let gelu =
        |rows: &mut [f32], width: usize| par_rows(rows, width, (), 0, chunks, &|r, ()| (k.gelu_erf)(r));

    // Stem: conv1 over the mel frames, conv2 at stride 2, GELU after each, plus positions.
    im2col(&mut s.cols, frames, mels, frames, 1, |ch, t| mel[ch * stride + t]);
    w.conv1
        .apply(k, &s.cols[..frames * 3 * mels], xq, frames, &mut s.conv, chunks);
    gelu(&mut s.conv[..frames * h], h);
    let conv = &s.conv;
    im2col(&mut s.cols, a, h, frames, 2, |ch, t| conv[t * h + ch]);
    w.conv2.apply(k, &s.cols[..a * 3 * h], xq, a, &mut s.x, chunks);
    gelu(&mut s.x[..ah], h);
    (k.add)(&mut s.x[..ah], &w.enc_pos[..ah]);

    // One sequence: every frame sees every frame.
    let frames_range = 0..a;
    let span = std::slice::from_ref(&frames_range);
    for layer in &w.encoder {
        layer_norm(k, &mut s.x[..ah], layer.attn_norm, eps, &mut s.xn[..ah], chunks);
        layer.qkv.apply(k, &s.xn[..ah], xq, a, &mut s.qkv, chunks);
        let job = SelfAttention {
            k,
            qkv: &s.qkv[..a * 3 * q_dim],
            spans: span,
            heads: c.num_heads,
            head_dim: c.head_dim,
        };
        job.run(&mut s.attn[..a * q_dim], &mut s.heads, chunks);
        layer
            .attn_out
            .apply(k, &s.attn[..a * q_dim], xq, a, &mut s.xn, chunks);
        norm::add_rows_par(k, &mut s.x[..ah], &s.xn[..ah], h, chunks);
        layer_norm(k, &mut s.x[..ah], layer.ffn_norm, eps, &mut s.xn[..ah], chunks);
        layer.up.apply(k, &s.xn[..ah], xq, a, &mut s.ffn, chunks);
        gelu(&mut s.ffn[..a * ff], ff);
        layer.down.apply(k, &s.ffn[..a * ff], xq, a, &mut s.xn, chunks);
        norm::add_rows_par(k, &mut s.x[..ah], &s.xn[..ah], h, chunks);
    }
    layer_norm(k, &mut s.x[..ah], w.enc_norm, eps, &mut s.xn[..ah], chunks);
    s.x[..ah].copy_from_slice(&s.xn[..ah]);
}

/// Projects the encoder output `x` (`positions` rows) into every decoder block's
/// cross-attention keys and values, `positions` per head (through `kv`, `positions × 2·hidden`
/// of scratch).
#[allow(clippy::too_many_arguments)]
pub(super) fn fill_cross(
    k: &Kernels,
    c: &ModelConfig,
    w: &WhisperWeights<'_>,
    x: &[f32],
    a: usize,
    kv: &mut [f32],
    xq: &mut [BlockQ8Act],
    cache: &mut KvCache,
) {
    let chunks = crate::pool::threads();
    let (h, hd) = (c.hidden_size, c.head_dim);
    for (l, layer) in w.decoder.iter().enumerate() {
        layer.cross_kv.apply(k, &x[..a * h], xq, a, kv, chunks);
        let store = cache.layer_mut(l);
        for (pos, row) in kv[..a * 2 * h].chunks_exact(2 * h).enumerate() {
            for g in 0..c.num_heads {
                let (key, value) = (&row[g * hd..(g + 1) * hd], &row[h + g * hd..h + (g + 1) * hd]);
                store.write(k, (g * a + pos) * hd, key, value);
            }
        }
    }
}
