//! NEON tile kernels of the 5-bit and K-quant types, shared by the NEON and SDOT paths: each
//! sub-block of 32 values is unpacked into unsigned byte registers (the q4 nibbles with the
//! extra bits OR-ed in, see `layout::kquant`), and a path's *half dot* multiplies four chunk
//! registers with one half (16 values) of an activation block. The NEON path passes widening
//! multiplies ([`half_dots_neon`]), the SDOT path `sdot` by element.

use core::arch::aarch64::*;

use super::matmul::{
    Acc, Dots, chunks, group4, halves_f16, load_chunk, nibble_chunks, rows4, scale_f32_into,
};
use crate::layout::{SUB_BLOCKS, TileQ2K, TileQ3K, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K};
use crate::view::BlockQ8Act;

/// Four chunks of a sub-block as byte registers: `w[c][h]` is chunk `c`, rows `4h..4h + 4`.
pub(crate) type Chunks = [[int8x16_t; 2]; 4];

/// Per token, the eight rows' integer dots of `w` (unsigned bytes) with activation groups
/// `first..first + 4` (`first` 0: values 0-15; 4: values 16-31), widening in i16.
///
/// Range: an i16 lane sums four products of at most 63·127 = 8001 (6-bit weights): <= 32004.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn half_dots_neon<const NT: usize>(w: &Chunks, first: usize, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    let mut s16 = [[vdupq_n_s16(0); 4]; NT];
    for (c, wc) in w.iter().enumerate() {
        for (s, at) in s16.iter_mut().zip(a) {
            let g = group4(&at.qs, first + c);
            for h in 0..2 {
                s[2 * h] = vmlal_s8(s[2 * h], vget_low_s8(wc[h]), vget_low_s8(g));
                s[2 * h + 1] = vmlal_high_s8(s[2 * h + 1], wc[h], g);
            }
        }
    }
    s16.map(|s| [rows4(s[0], s[1]), rows4(s[2], s[3])])
}

/// Byte `p` is `value` where bit `p` of `word` is set, else 0: a fifth-bit word (see
/// `layout::kquant`) lined up with a chunk's two registers.
#[target_feature(enable = "neon")]
#[inline]
fn word_bits(word: u32, value: u8) -> [uint8x16_t; 2] {
    const INDEX: [[u8; 16]; 2] = [
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
    ];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let bytes = vreinterpretq_u8_u32(vdupq_n_u32(word));
    // SAFETY: 16-byte arrays.
    let bits = unsafe { vld1q_u8(BITS.as_ptr()) };
    INDEX.map(|index| {
        // SAFETY: a 16-byte array.
        let index = unsafe { vld1q_u8(index.as_ptr()) };
        vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, index), bits), vdupq_n_u8(value))
    })
}

/// Per token, eight rows' dots of the 5-bit quants of a sub-block (`qs` q4 bytes, `qh` its
/// eight fifth-bit words) with the block.
#[target_feature(enable = "neon")]
#[inline]
fn q5_dots<const NT: usize>(
    qs: &[u8; 128],
    qh: &[u32],
    a: [&BlockQ8Act; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) -> [Dots; NT] {
    let [lo, hi] = nibble_chunks(qs);
    let with = |n: [[uint8x16_t; 2]; 4], words: usize| -> Chunks {
        core::array::from_fn(|c| {
            let bits = word_bits(qh[words + c], 0x10);
            [0, 1].map(|h| vreinterpretq_s8_u8(vorrq_u8(n[c][h], bits[h])))
        })
    };
    let (dl, dh) = (half(&with(lo, 0), 0, a), half(&with(hi, 4), 4, a));
    core::array::from_fn(|t| [0, 1].map(|h| vaddq_s32(dl[t][h], dh[t][h])))
}

/// Q4 dots of a sub-block's nibbles (the Q4_K case of [`q5_dots`]).
#[target_feature(enable = "neon")]
#[inline]
fn q4_dots<const NT: usize>(
    qs: &[u8; 128],
    a: [&BlockQ8Act; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) -> [Dots; NT] {
    let [lo, hi] = nibble_chunks(qs);
    let signed = |n: [[uint8x16_t; 2]; 4]| n.map(|w| w.map(|v| vreinterpretq_s8_u8(v)));
    let (dl, dh) = (half(&signed(lo), 0, a), half(&signed(hi), 4, a));
    core::array::from_fn(|t| [0, 1].map(|h| vaddq_s32(dl[t][h], dh[t][h])))
}

/// `acc[t] += d_w·d_t·(dots[t] − offset·sum_t)` for f16 scales `d` (Q5_0: offset 16).
#[target_feature(enable = "neon")]
#[inline]
fn scale_offset<const NT: usize>(
    d: &[u16; 8],
    offset: i32,
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    let fixed = core::array::from_fn(|i| dots[i].map(|v| vsubq_s32(v, vdupq_n_s32(offset * a[i].sum))));
    scale_f32_into(halves_f16(d), a, fixed, acc);
}

/// `acc[t] += m·d_t·sum_t` for f16 minimums `m`.
#[target_feature(enable = "neon")]
#[inline]
fn add_minimum<const NT: usize>(m: [float32x4_t; 2], a: [&BlockQ8Act; NT], acc: &mut [Acc; NT]) {
    for (acc, at) in acc.iter_mut().zip(a) {
        for h in 0..2 {
            acc[h] = vfmaq_n_f32(acc[h], m[h], at.d * at.sum as f32);
        }
    }
}

/// One Q5_0 tile (`d·(q − 16)`) times `NT` tokens.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q5_0<const NT: usize>(
    t: &TileQ5_0,
    a: [&BlockQ8Act; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    scale_offset(&t.d, 16, a, q5_dots(&t.qs, &t.qh, a, half), acc);
}

/// One Q5_1 tile (`d·q + m`) times `NT` tokens.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q5_1<const NT: usize>(
    t: &TileQ5_1,
    a: [&BlockQ8Act; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    scale_offset(&t.d, 0, a, q5_dots(&t.qs, &t.qh, a, half), acc);
    add_minimum(halves_f16(&t.m), a, acc);
}

/// Eight bytes as f32, split like [`Acc`].
#[target_feature(enable = "neon")]
#[inline]
fn u8x8(v: &[u8; 8]) -> [float32x4_t; 2] {
    // SAFETY: `v` is 8 readable bytes.
    let w = vmovl_u8(unsafe { vld1_u8(v.as_ptr()) });
    [
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(w))),
        vcvtq_f32_u32(vmovl_high_u16(w)),
    ]
}

/// `acc[t] +=` sub-block `j` of a Q4_K / Q5_K tile times token `t`:
/// `(d·sc_j)·d_t·dots − (dmin·m_j)·d_t·sum_t`.
#[target_feature(enable = "neon")]
#[inline]
fn scale_k4_sub<const NT: usize>(
    (d, dmin): ([float32x4_t; 2], [float32x4_t; 2]),
    (sc, m): (&[u8; 8], &[u8; 8]),
    a: [&BlockQ8Act; NT],
    dots: [Dots; NT],
    acc: &mut [Acc; NT],
) {
    let (sc, m) = (u8x8(sc), u8x8(m));
    scale_f32_into([0, 1].map(|h| vmulq_f32(d[h], sc[h])), a, dots, acc);
    let mins = [0, 1].map(|h| vmulq_f32(dmin[h], m[h]));
    for (acc, at) in acc.iter_mut().zip(a) {
        for h in 0..2 {
            acc[h] = vfmsq_n_f32(acc[h], mins[h], at.d * at.sum as f32);
        }
    }
}

/// One Q4_K tile times `NT` tokens' super-blocks.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q4_k<const NT: usize>(
    t: &TileQ4K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    let ds = (halves_f16(&t.d), halves_f16(&t.dmin));
    let (sc, m) = (t.sc.as_chunks::<8>().0, t.m.as_chunks::<8>().0);
    for (j, qs) in t.qs.as_chunks::<128>().0.iter().enumerate() {
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, q4_dots(qs, aj, &half), acc);
    }
}

/// One Q5_K tile times `NT` tokens' super-blocks.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q5_k<const NT: usize>(
    t: &TileQ5K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    let ds = (halves_f16(&t.d), halves_f16(&t.dmin));
    let (sc, m, qh) = (
        t.sc.as_chunks::<8>().0,
        t.m.as_chunks::<8>().0,
        t.qh.as_chunks::<8>().0,
    );
    for (j, qs) in t.qs.as_chunks::<128>().0.iter().enumerate() {
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, q5_dots(qs, &qh[j], aj, &half), acc);
    }
}

/// Sums of a block's activation quants 0..16 and 16..32.
#[target_feature(enable = "neon")]
#[inline]
fn half_sums(a: &BlockQ8Act) -> [i32; 2] {
    // SAFETY: `qs` is 32 readable bytes.
    let low = i32::from(vaddlvq_s8(unsafe { vld1q_s8(a.qs.as_ptr()) }));
    [low, a.sum - low]
}

/// Eight i8 lanes widened to i32, split like [`Dots`].
#[target_feature(enable = "neon")]
#[inline]
fn widen(v: int8x8_t) -> [int32x4_t; 2] {
    let w = vmovl_s8(v);
    [vmovl_s16(vget_low_s16(w)), vmovl_high_s16(w)]
}

/// Per token, `Σ_h s_h·(dot_h − offset·Σ_h a)` for one sub-block, exact in i32 (|Σ| < 2^24):
/// the dots of its two halves `dots[h]` and each row's scale of each half `s[h]`.
#[target_feature(enable = "neon")]
#[inline]
fn scaled_halves<const NT: usize>(
    dots: [[Dots; NT]; 2],
    s: [[int32x4_t; 2]; 2],
    offset: i32,
    a: [&BlockQ8Act; NT],
) -> [Dots; NT] {
    core::array::from_fn(|t| {
        let sums = half_sums(a[t]).map(|v| vdupq_n_s32(offset * v));
        [0, 1].map(|r| {
            let v = vmulq_s32(s[0][r], vsubq_s32(dots[0][t][r], sums[0]));
            vmlaq_s32(v, s[1][r], vsubq_s32(dots[1][t][r], sums[1]))
        })
    })
}

/// One Q6_K tile times `NT` tokens' super-blocks: per sub-block, each half's dots of the
/// 6-bit quants, `Σ_h sc_h·(dot_h − 32·sum_h)` in i32 (exact: |Σ| < 2^24), then `d·d_t·` that.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q6_k<const NT: usize>(
    t: &TileQ6K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    let d = halves_f16(&t.d);
    let mask = vdupq_n_u8(0x30);
    let (ql, qh, sc) = (
        t.ql.as_chunks::<128>().0,
        t.qh.as_chunks::<64>().0,
        t.sc.as_chunks::<16>().0,
    );
    for j in 0..SUB_BLOCKS {
        let aj = a.map(|x| &x[j]);
        // SAFETY: a 16-byte array; vld2 deinterleaves it into the low and high halves' scales.
        let s = unsafe { vld2_s8(sc[j].as_ptr()) };
        let high = chunks(&qh[j]);
        let high = [load_chunk(&high[0]), load_chunk(&high[1])];
        let [lo, hi] = nibble_chunks(&ql[j]);
        let bits = |c: usize, upper: bool| -> [uint8x16_t; 2] {
            high[c / 2].map(|h| {
                let v = match (c % 2, upper) {
                    (0, false) => vshlq_n_u8::<4>(h),
                    (0, true) => vshlq_n_u8::<2>(h),
                    (_, false) => h,
                    (_, true) => vshrq_n_u8::<2>(h),
                };
                vandq_u8(v, mask)
            })
        };
        let six = |n: [[uint8x16_t; 2]; 4], upper: bool| -> Chunks {
            core::array::from_fn(|c| {
                let b = bits(c, upper);
                [0, 1].map(|h| vreinterpretq_s8_u8(vorrq_u8(n[c][h], b[h])))
            })
        };
        let dots = [half(&six(lo, false), 0, aj), half(&six(hi, true), 4, aj)];
        let isum = scaled_halves(dots, [widen(s.0), widen(s.1)], 32, aj);
        scale_f32_into(d, aj, isum, acc);
    }
}

/// A sub-block's 2-bit plane (see `layout::kquant`) as the chunks of values 0..=3 of its low
/// (`false`) or high (`true`) half, with `extra(c, h)` OR-ed into chunk `c`'s register `h`.
#[target_feature(enable = "neon")]
#[inline]
fn plane_half(plane: &[u8; 64], upper: bool, extra: impl Fn(usize, usize) -> uint8x16_t) -> Chunks {
    let mask = vdupq_n_u8(3);
    let p = chunks(plane);
    let p = [load_chunk(&p[0]), load_chunk(&p[1])];
    core::array::from_fn(|c| {
        [0, 1].map(|h| {
            let v = p[c / 2][h];
            let v = match (c % 2, upper) {
                (0, false) => v,
                (0, true) => vshrq_n_u8::<2>(v),
                (_, false) => vshrq_n_u8::<4>(v),
                (_, true) => vshrq_n_u8::<6>(v),
            };
            vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, mask), extra(c, h)))
        })
    })
}

/// One Q3_K tile times `NT` tokens' super-blocks: the 3-bit quants (0..=7) are the plane's two
/// bits with the third OR-ed in; then as [`block_q6_k`] with −4 for −32.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q3_k<const NT: usize>(
    t: &TileQ3K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    let d = halves_f16(&t.d);
    let (qs, qh, sc) = (
        t.qs.as_chunks::<64>().0,
        t.qh.as_chunks::<8>().0,
        t.sc.as_chunks::<16>().0,
    );
    for j in 0..SUB_BLOCKS {
        let aj = a.map(|x| &x[j]);
        // SAFETY: a 16-byte array; vld2 deinterleaves it into the low and high halves' scales.
        let s = unsafe { vld2_s8(sc[j].as_ptr()) };
        let third = |words: usize| {
            let bits: [[uint8x16_t; 2]; 4] = core::array::from_fn(|c| word_bits(qh[j][words + c], 4));
            move |c: usize, h: usize| bits[c][h]
        };
        let lo = plane_half(&qs[j], false, third(0));
        let hi = plane_half(&qs[j], true, third(4));
        let dots = [half(&lo, 0, aj), half(&hi, 4, aj)];
        let isum = scaled_halves(dots, [widen(s.0), widen(s.1)], 4, aj);
        scale_f32_into(d, aj, isum, acc);
    }
}

/// One Q2_K tile times `NT` tokens' super-blocks: per sub-block, `d·d_t·Σ_h sc_h·dot_h` less
/// `dmin·d_t·Σ_h m_h·sum_h`, both sums exact in i32.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn block_q2_k<const NT: usize>(
    t: &TileQ2K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [Acc; NT],
    half: impl Fn(&Chunks, usize, [&BlockQ8Act; NT]) -> [Dots; NT],
) {
    let (d, dmin) = (halves_f16(&t.d), halves_f16(&t.dmin));
    let (qs, sc) = (t.qs.as_chunks::<64>().0, t.sc.as_chunks::<16>().0);
    let none = |_: usize, _: usize| vdupq_n_u8(0);
    for j in 0..SUB_BLOCKS {
        let aj = a.map(|x| &x[j]);
        // SAFETY: a 16-byte array; vld2 deinterleaves it into the low and high halves' bytes.
        let s = unsafe { vld2_u8(sc[j].as_ptr()) };
        let nib = |v: uint8x8_t, shift: bool| {
            let v = if shift {
                vshr_n_u8::<4>(v)
            } else {
                vand_u8(v, vdup_n_u8(15))
            };
            widen(vreinterpret_s8_u8(v))
        };
        let dots = [
            half(&plane_half(&qs[j], false, none), 0, aj),
            half(&plane_half(&qs[j], true, none), 4, aj),
        ];
        let isum = scaled_halves(dots, [nib(s.0, false), nib(s.1, false)], 0, aj);
        scale_f32_into(d, aj, isum, acc);
        let mins = [nib(s.0, true), nib(s.1, true)];
        for (acc, at) in acc.iter_mut().zip(aj) {
            let sums = half_sums(at).map(|v| vdupq_n_s32(v));
            for r in 0..2 {
                let m = vmlaq_s32(vmulq_s32(mins[0][r], sums[0]), mins[1][r], sums[1]);
                acc[r] = vfmsq_f32(acc[r], vmulq_n_f32(dmin[r], at.d), vcvtq_f32_s32(m));
            }
        }
    }
}
