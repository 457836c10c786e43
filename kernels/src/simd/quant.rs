//! q8 quantization (activations and KV cache) and the q8 value loop, for every [`Lanes`]
//! type. Quantization is bit-exact with [`crate::scalar`]: the same scale, the same products
//! and the same rounding (half away from zero).

use core::ops::Range;

use super::lanes::Lanes;
use super::ops::weighted_rows;
use crate::layout::{BlockQ8_0, QK};
use crate::view::BlockQ8Act;

/// `max |x|` over one block.
#[inline(always)]
fn abs_max<L: Lanes>(x: &[f32]) -> f32 {
    x.chunks_exact(L::N)
        .fold(L::zero(), |m, c| m.max(L::load(c).abs()))
        .reduce_max()
}

/// Writes `round(x * id)`, clamped to `[lo, hi]`, into `qs`, and returns their sum.
#[inline(always)]
fn round_block<L: Lanes>(x: &[f32], id: f32, (lo, hi): (f32, f32), qs: &mut [i8; QK]) -> i32 {
    let (id, lo, hi) = (L::splat(id), L::splat(lo), L::splat(hi));
    let mut sum = L::zero();
    for (c, q) in x.chunks_exact(L::N).zip(qs.chunks_exact_mut(L::N)) {
        let v = L::load(c).mul(id).round_half_away().max(lo).min(hi);
        v.store_i8(q);
        sum = sum.add(v);
    }
    // At most 32 integers of magnitude <= 127: the f32 sum is exact.
    sum.reduce_sum() as i32
}

/// Blocks whose scales [`quantize_q8_act`] computes before their quants.
const SCALES_AHEAD: usize = 8;

/// See [`crate::scalar::quantize_q8_act`].
#[inline(always)]
pub(crate) fn quantize_q8_act<L: Lanes>(x: &[f32], out: &mut [BlockQ8Act]) {
    assert_eq!(x.len(), out.len() * QK, "activation length is not blocks × QK");
    // The scales of `SCALES_AHEAD` blocks first, then their quants: each scale is a chain of
    // maxima, a horizontal reduction and two divisions, and with one block at a time the
    // rounding waited on it (about 85 cycles a block, the chain's latency).
    for (x, out) in x.chunks(SCALES_AHEAD * QK).zip(out.chunks_mut(SCALES_AHEAD)) {
        let mut ids = [0.0; SCALES_AHEAD];
        for ((chunk, block), id) in x.chunks_exact(QK).zip(out.iter_mut()).zip(&mut ids) {
            block.d = abs_max::<L>(chunk) / 127.0;
            *id = if block.d > 0.0 { 1.0 / block.d } else { 0.0 };
        }
        for ((chunk, block), id) in x.chunks_exact(QK).zip(out.iter_mut()).zip(ids) {
            // |x · id| <= 127 up to rounding, so the clamp only guards -128 against NaN inputs.
            block.sum = round_block::<L>(chunk, id, (-127.0, 127.0), &mut block.qs);
        }
    }
}

/// See [`crate::scalar::quantize_q8_kv`].
#[inline(always)]
pub(crate) fn quantize_q8_kv<L: Lanes>(src: &[f32], dst: &mut [BlockQ8_0]) {
    assert_eq!(src.len(), dst.len() * QK, "cache row length is not blocks × QK");
    for (chunk, block) in src.chunks_exact(QK).zip(dst.iter_mut()) {
        block.d = L::f32_to_f16(abs_max::<L>(chunk) / 127.0);
        let d = L::f16_to_f32(block.d);
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        round_block::<L>(chunk, id, (-127.0, 127.0), &mut block.qs);
    }
}

/// See [`crate::scalar::attn_values_q8`].
#[inline(always)]
pub(crate) fn attn_values_q8<L: Lanes>(p: &[f32], values: &[BlockQ8_0], out: &mut [f32]) {
    let nb = out.len() / QK;
    assert_eq!(out.len(), nb * QK, "head_dim is not a multiple of QK");
    assert_eq!(values.len(), p.len() * nb, "values are not p.len() × blocks");
    weighted_rows::<L>(
        p.len(),
        out,
        QK,
        #[inline(always)]
        |t, c| p[t] * L::f16_to_f32(values[t * nb + c / QK].d),
        #[inline(always)]
        |t, cols: Range<usize>| L::load_i8(&values[t * nb + cols.start / QK].qs[cols.start % QK..]),
    );
}

/// See [`crate::scalar::attn_scores_q8`]. `block(acc, key, query)` adds one block's
/// `d_k · d_q · Σ k·q` into a vector accumulator; `finish` sums the lanes of four
/// accumulators at once (one score each).
#[inline(always)]
pub(crate) fn attn_scores_q8<A: Copy>(
    q: &[BlockQ8Act],
    keys: &[BlockQ8_0],
    scale: f32,
    out: &mut [f32],
    zero: A,
    block: impl Fn(A, &BlockQ8_0, &BlockQ8Act) -> A,
    finish: impl Fn([A; SCORE_KEYS]) -> [f32; SCORE_KEYS],
) {
    let nb = q.len();
    assert_eq!(keys.len(), out.len() * nb, "keys are not out.len() × blocks");
    if nb == 0 {
        return out.fill(0.0);
    }
    // Four keys per step: four accumulator chains, and one horizontal reduction for four.
    let mut tiles = out.chunks_mut(SCORE_KEYS);
    for (o, k) in (&mut tiles).zip(keys.chunks(SCORE_KEYS * nb)) {
        let mut acc = [zero; SCORE_KEYS];
        for (a, key) in acc.iter_mut().zip(k.chunks_exact(nb)) {
            *a = key.iter().zip(q).fold(*a, |a, (kb, qb)| block(a, kb, qb));
        }
        o.iter_mut().zip(finish(acc)).for_each(|(o, s)| *o = scale * s);
    }
}

/// Keys per step of [`attn_scores_q8`].
pub(crate) const SCORE_KEYS: usize = 4;
