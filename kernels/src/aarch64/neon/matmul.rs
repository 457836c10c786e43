//! NEON pieces of the quantized matmuls, shared by all three aarch64 paths: tile loads,
//! per-block scaling (one accumulator is two `float32x4_t`: rows 0-3 and rows 4-7) and the
//! baseline integer dots with widening multiplies (no SDOT on a Cortex-A72 / Pi 4).
//!
//! A 32-byte tile chunk loads as two registers whose 32-bit lane `r` holds four quants of
//! row `r` (rows 0-3, rows 4-7). The activation quants are assumed in `-127..=127`, as
//! [`crate::scalar::quantize_q8_act`] makes them.

use core::arch::aarch64::*;

use zerocopy::IntoBytes;

use crate::layout::{TILE_ROWS, TileQ4_0, TileQ4_1, TileQ8_0};
use crate::view::BlockQ8Act;

/// One token's eight row sums: rows 0-3 and rows 4-7.
pub(crate) type Acc = [float32x4_t; 2];
/// One token's eight integer row dots, split like [`Acc`].
pub(crate) type Dots = [int32x4_t; 2];
/// Tokens per group in the NEON and SDOT matmuls.
pub(crate) const GROUP: usize = 4;

/// A 32-byte tile chunk as rows 0-3 and rows 4-7.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn load_chunk(chunk: &[u8; 32]) -> [uint8x16_t; 2] {
    // SAFETY: `chunk` is 32 readable bytes.
    unsafe { [vld1q_u8(chunk.as_ptr()), vld1q_u8(chunk.as_ptr().add(16))] }
}

/// How far ahead of the tile being multiplied to prefetch weights (the distance that served
/// best on x86_64; not yet tuned on the boards).
const PREFETCH_BYTES: usize = 2048;

/// Prefetches the cache lines `PREFETCH_BYTES` past `tile` (the tiles are read in order), so
/// that decode streams weights with more lines in flight than out-of-order execution alone
/// keeps.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn prefetch_ahead<T>(tile: &T) {
    let ahead = (tile as *const T).cast::<u8>().wrapping_add(PREFETCH_BYTES);
    for line in (0..size_of::<T>()).step_by(64) {
        // SAFETY: `prfm` is a hint: it never faults and changes no register or memory.
        unsafe {
            core::arch::asm!(
                "prfm pldl1keep, [{p}]",
                p = in(reg) ahead.wrapping_add(line),
                options(nostack, preserves_flags, readonly)
            )
        };
    }
}

/// The 32-byte chunks of a tile's quants.
#[inline(always)]
pub(crate) fn chunks(qs: &[u8]) -> &[[u8; 32]] {
    qs.as_chunks::<32>().0
}

/// The two halves of a block's activation quants: elements 0-15 and 16-31.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn load_act(a: &BlockQ8Act) -> [int8x16_t; 2] {
    // SAFETY: `qs` is 32 readable bytes.
    unsafe { [vld1q_s8(a.qs.as_ptr()), vld1q_s8(a.qs.as_ptr().add(16))] }
}

/// Activation quants `4g..4g + 4` repeated in every 32-bit lane.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn group4(qs: &[i8; 32], g: usize) -> int8x16_t {
    let word = i32::from_le_bytes(core::array::from_fn(|j| qs[4 * g + j] as u8));
    vreinterpretq_s8_s32(vdupq_n_s32(word))
}

/// Eight f16 values (tile scales or minimums) as f32, split like [`Acc`].
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn halves_f16(d: &[u16; TILE_ROWS]) -> [float32x4_t; 2] {
    // SAFETY: `d` is 8 readable u16.
    let (lo, hi) = unsafe { (vld1_u16(d.as_ptr()), vld1_u16(d.as_ptr().add(4))) };
    [
        vcvt_f32_f16(vreinterpret_f16_u16(lo)),
        vcvt_f32_f16(vreinterpret_f16_u16(hi)),
    ]
}

/// Rows `(a, a+1)` and `(a+2, a+3)`, as pairwise i16 partials, into one i32 per row.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn rows4(a: int16x8_t, b: int16x8_t) -> int32x4_t {
    vpaddq_s32(vpaddlq_s16(a), vpaddlq_s16(b))
}

/// The low and high nibbles (0..=15) of the bytes of `v`. `#[inline(always)]` (no
/// `#[target_feature]` of its own: NEON is part of every aarch64 target), so that every kernel
/// splitting nibbles compiles as if the two instructions were written in place.
#[inline(always)]
pub(crate) fn split_nibbles(v: uint8x16_t) -> [uint8x16_t; 2] {
    // SAFETY: NEON is part of every aarch64 target.
    unsafe { [vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(v)] }
}

/// The 128 nibble bytes of a Q4 tile (or K-quant sub-block) as chunk registers (see
/// [`load_chunk`]), split by [`split_nibbles`]: `[0][c]` the low nibbles of chunk `c`, `[1][c]`
/// the high ones.
///
/// Plain loops: the nested `map`s this was once written with stayed calls of
/// `core::array::try_map` in several kernels.
#[inline(always)]
pub(crate) fn nibble_chunks(qs: &[u8; TILE_ROWS * 16]) -> [[[uint8x16_t; 2]; 4]; 2] {
    // SAFETY: NEON is part of every aarch64 target.
    let mut out = [[[unsafe { vdupq_n_u8(0) }; 2]; 4]; 2];
    for (c, chunk) in chunks(qs).iter().enumerate() {
        // SAFETY: as above.
        for (h, v) in unsafe { load_chunk(chunk) }.into_iter().enumerate() {
            let [lo, hi] = split_nibbles(v);
            (out[0][c][h], out[1][c][h]) = (lo, hi);
        }
    }
    out
}

/// The Q4 tiles' nibbles.
pub(crate) trait Nibbles {
    /// The interleaved nibbles.
    fn nibbles(&self) -> &[u8; TILE_ROWS * 16];
}

impl Nibbles for TileQ4_0 {
    #[inline(always)]
    fn nibbles(&self) -> &[u8; TILE_ROWS * 16] {
        &self.qs
    }
}

impl Nibbles for TileQ4_1 {
    #[inline(always)]
    fn nibbles(&self) -> &[u8; TILE_ROWS * 16] {
        &self.qs
    }
}

/// `acc[t] += (d_w · d_t) · dots[t]` for the tile's eight scales `d`: the per-block scaling.
#[target_feature(enable = "neon")]
#[inline]
fn scale_into<const NT: usize>(
    d: &[u16; TILE_ROWS],
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    scale_f32_into(halves_f16(d), a, dots, acc);
}

/// [`scale_into`] with the eight row scales as f32, split like [`Acc`].
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn scale_f32_into<const NT: usize>(
    dw: [float32x4_t; 2],
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    for ((acc, at), dt) in acc.iter_mut().zip(a).zip(dots) {
        for h in 0..2 {
            acc[h] = vfmaq_f32(acc[h], vmulq_n_f32(dw[h], at.d), vcvtq_f32_s32(dt[h]));
        }
    }
}

/// Q8_0: the scaled dots.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn scale_q8_0<const NT: usize>(
    t: &TileQ8_0,
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    scale_into(&t.d, a, dots, acc);
}

/// Q4_0 (`d·(q − 8)`) from unsigned-nibble dots: the −8 folds in as `−8·sum(a)`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn scale_q4_0<const NT: usize>(
    t: &TileQ4_0,
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    let fixed = core::array::from_fn(|i| dots[i].map(|d| vsubq_s32(d, vdupq_n_s32(8 * a[i].sum))));
    scale_into(&t.d, a, fixed, acc);
}

/// Q4_1 (`d·q + m`): the scaled nibble dots plus `m · d_a · sum(a)`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn scale_q4_1<const NT: usize>(
    t: &TileQ4_1,
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    scale_into(&t.d, a, dots, acc);
    let m = halves_f16(&t.m);
    for (acc, at) in acc.iter_mut().zip(a) {
        for h in 0..2 {
            acc[h] = vfmaq_n_f32(acc[h], m[h], at.d * at.sum as f32);
        }
    }
}

/// The zero accumulator.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn zero() -> Acc {
    [vdupq_n_f32(0.0); 2]
}

/// The eight row sums of an accumulator.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn finish(acc: Acc) -> [f32; TILE_ROWS] {
    let mut out = [0.0; TILE_ROWS];
    // SAFETY: `out` holds 8 f32.
    unsafe {
        vst1q_f32(out.as_mut_ptr(), acc[0]);
        vst1q_f32(out.as_mut_ptr().add(4), acc[1]);
    }
    out
}

/// Q4 nibble dots (unsigned 0..=15) per token, with `vmlal` into i16 lanes.
///
/// Range: an i16 lane sums eight products (four chunks, low and high nibbles) of magnitude
/// <= 15·128 = 1920, so <= 15360 < 32767.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn nibble_dots<const NT: usize>(t: &impl Nibbles, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    let mut s16 = [[vdupq_n_s16(0); 4]; NT];
    for (c, chunk) in chunks(t.nibbles()).iter().enumerate() {
        let [w0, w1] = load_chunk(chunk).map(|v| split_nibbles(v).map(|n| vreinterpretq_s8_u8(n)));
        let (lo, hi) = ([w0[0], w1[0]], [w0[1], w1[1]]);
        for (s, at) in s16.iter_mut().zip(a) {
            let (al, ah) = (group4(&at.qs, c), group4(&at.qs, 4 + c));
            for h in 0..2 {
                s[2 * h] = vmlal_s8(s[2 * h], vget_low_s8(lo[h]), vget_low_s8(al));
                s[2 * h] = vmlal_s8(s[2 * h], vget_low_s8(hi[h]), vget_low_s8(ah));
                s[2 * h + 1] = vmlal_high_s8(s[2 * h + 1], lo[h], al);
                s[2 * h + 1] = vmlal_high_s8(s[2 * h + 1], hi[h], ah);
            }
        }
    }
    s16.map(|s| [rows4(s[0], s[1]), rows4(s[2], s[3])])
}

/// Q8 dots per token: two chunks' products summed in i16 (`vmull` + `vmlal`), then
/// pairwise-accumulated into i32 (`vpadal`).
///
/// Range: an i16 lane is `w·a + w'·a'` with |w| <= 128, |a| <= 127: <= 32512 < 32767.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn q8_dots<const NT: usize>(t: &TileQ8_0, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    let mut s32 = [[vdupq_n_s32(0); 4]; NT];
    for (p, pair) in chunks(t.qs.as_bytes()).chunks_exact(2).enumerate() {
        let [w0, w1] = [0, 1].map(|i| load_chunk(&pair[i]).map(|v| vreinterpretq_s8_u8(v)));
        for (s, at) in s32.iter_mut().zip(a) {
            let (a0, a1) = (group4(&at.qs, 2 * p), group4(&at.qs, 2 * p + 1));
            for h in 0..2 {
                let lo = vmull_s8(vget_low_s8(w0[h]), vget_low_s8(a0));
                let lo = vmlal_s8(lo, vget_low_s8(w1[h]), vget_low_s8(a1));
                let hi = vmlal_high_s8(vmull_high_s8(w0[h], a0), w1[h], a1);
                s[2 * h] = vpadalq_s16(s[2 * h], lo);
                s[2 * h + 1] = vpadalq_s16(s[2 * h + 1], hi);
            }
        }
    }
    s32.map(|s| [vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3])])
}

/// `Σ k·q` of two q8 blocks as four i32 partial sums (keys in `-127..=127`, as
/// [`crate::scalar::quantize_q8_kv`] makes them; each i16 holds one product).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_dot_q8(k: &[i8; 32], q: &[i8; 32]) -> int32x4_t {
    // SAFETY: both arrays are 32 readable bytes.
    let (k, q) = unsafe {
        (
            [vld1q_s8(k.as_ptr()), vld1q_s8(k.as_ptr().add(16))],
            [vld1q_s8(q.as_ptr()), vld1q_s8(q.as_ptr().add(16))],
        )
    };
    let mut acc = vdupq_n_s32(0);
    for h in 0..2 {
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(k[h]), vget_low_s8(q[h])));
        acc = vpadalq_s16(acc, vmull_high_s8(k[h], q[h]));
    }
    acc
}
