//! The SMMLA path: NEON with Armv8.6 int8 matrix multiply (Cortex-A510/A710/X2 and later,
//! Neoverse V1/N2, Apple M2+). `smmla` multiplies a 2×8 block of weights (two rows, eight
//! columns) by a 2×8 block of activations (two tokens) into a 2×2 i32 tile: twice the
//! multiply-adds of an `sdot` per instruction, once there are two tokens to pair up.
//!
//! Prefill runs quads of tokens ([`super::quads`]: activations interleaved in token pairs,
//! SMMLA's operand order) through SMMLA; the weights' row pairs come from the tile layout by
//! one `zip` per register (Q4: before the nibbles are split, so half as many), shared by both
//! token pairs. Single tokens (decode, and the tokens past the last quad) go through the SDOT
//! kernels. Everything else is the SDOT path's.

use core::arch::aarch64::*;
use core::arch::asm;

use super::dotprod::{DOTPROD_KERNELS, nibble_dots_sdot, q4_0_offsets, q8_dots_sdot};
use super::neon::matmul::{
    Acc, GROUP, Nibbles, chunks, finish, halves_f16, load_chunk, scale_q4_0, scale_q4_1, scale_q8_0,
    split_nibbles,
};
use super::neon::tile_kernel;
use super::quads::{self, QUAD, Quad, QuadAcc, quad_kernel};
use crate::dispatch::{Isa, Kernels};
use crate::layout::{TileQ4_0, TileQ4_1, TileQ8_0};
use crate::simd::entries;
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// The SMMLA table.
pub(crate) static I8MM: Kernels = Kernels {
    isa: Isa::NeonI8mm,
    matmul_q8_0: matmul_q8_0_i8mm,
    matmul_q4_0: matmul_q4_0_i8mm,
    matmul_q4_1: matmul_q4_1_i8mm,
    ..DOTPROD_KERNELS
};

/// `acc += w · xᵀ`: `w` is two rows of eight i8, `x` two tokens of eight i8, `acc` the
/// 2×2 result `[w0·x0, w0·x1, w1·x0, w1·x1]`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn smmla(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: smmla is enabled for this function; the asm only reads and writes registers.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Row pairs (0,1), (2,3), (4,5), (6,7), eight columns each, from the registers of two
/// consecutive four-column chunks: zipping their 4-byte groups gives each row's 8 bytes.
#[target_feature(enable = "neon")]
#[inline]
fn row_pairs(c0: [int8x16_t; 2], c1: [int8x16_t; 2]) -> [int8x16_t; 4] {
    let zip = |a: int8x16_t, b: int8x16_t, hi: bool| {
        let (a, b) = (vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b));
        vreinterpretq_s8_s32(if hi { vzip2q_s32(a, b) } else { vzip1q_s32(a, b) })
    };
    [
        zip(c0[0], c1[0], false),
        zip(c0[0], c1[0], true),
        zip(c0[1], c1[1], false),
        zip(c0[1], c1[1], true),
    ]
}

/// A tile as SMMLA's weight operands: `[o][k]` is row pair `k` (rows `2k`, `2k + 1`) over
/// elements `8o..8o + 8`.
type RowPairs = [[int8x16_t; 4]; 4];

/// A Q8 tile's row pairs: octet `o` is chunks `2o` and `2o + 1`.
#[target_feature(enable = "neon")]
#[inline]
fn q8_row_pairs(t: &TileQ8_0) -> RowPairs {
    use zerocopy::IntoBytes;
    let ch = chunks(t.qs.as_bytes());
    let chunk = |c: usize| load_chunk(&ch[c]).map(|v| vreinterpretq_s8_u8(v));
    core::array::from_fn(|o| row_pairs(chunk(2 * o), chunk(2 * o + 1)))
}

/// A Q4 tile's row pairs: chunks (0, 1) and (2, 3) are zipped before the nibbles are split,
/// their low nibbles are octets 0 and 1, their high nibbles octets 2 and 3.
#[target_feature(enable = "neon")]
#[inline]
fn nibble_row_pairs(t: &impl Nibbles) -> RowPairs {
    let raw: [[int8x16_t; 2]; 4] =
        core::array::from_fn(|c| load_chunk(&chunks(t.nibbles())[c]).map(|v| vreinterpretq_s8_u8(v)));
    let zipped = [row_pairs(raw[0], raw[1]), row_pairs(raw[2], raw[3])];
    core::array::from_fn(|o| {
        zipped[o % 2].map(|v| vreinterpretq_s8_u8(split_nibbles(vreinterpretq_u8_s8(v))[o / 2]))
    })
}

/// Lanes `(2P, 2P + 1, 2P, 2P + 1)` of `v`: a token pair's values in SMMLA's result order.
#[target_feature(enable = "neon")]
#[inline]
fn pair_lanes<const P: i32>(v: float32x4_t) -> float32x4_t {
    vreinterpretq_f32_f64(vdupq_laneq_f64::<P>(vreinterpretq_f64_f32(v)))
}

/// Lanes `(r, r, r + 1, r + 1)` of the eight row values `v` for row pair `k` (`r = 2k`).
#[target_feature(enable = "neon")]
#[inline]
fn row_pair_lanes(v: [float32x4_t; 2]) -> [float32x4_t; 4] {
    [
        vzip1q_f32(v[0], v[0]),
        vzip2q_f32(v[0], v[0]),
        vzip1q_f32(v[1], v[1]),
        vzip2q_f32(v[1], v[1]),
    ]
}

/// One tile times a quad: `acc[4p + k]` is row pair `k` times token pair `p` (lanes
/// `[r·t, r·t', r'·t, r'·t']`), the integer dots start at `init[p]` and are scaled by the
/// eight row scales `d`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn quad_smmla(w: &RowPairs, d: &[u16; 8], q: &Quad, init: [int32x4_t; 2], acc: &mut QuadAcc) {
    let a = q.regs();
    let mut m = init.map(|i| [i; 4]);
    for (o, rows) in w.iter().enumerate() {
        for (p, mp) in m.iter_mut().enumerate() {
            for (acc, &rows) in mp.iter_mut().zip(rows) {
                *acc = smmla(*acc, rows, a[2 * o + p]);
            }
        }
    }
    let dw = row_pair_lanes(halves_f16(d));
    let da = q.scales();
    let da = [pair_lanes::<0>(da), pair_lanes::<1>(da)];
    for (p, mp) in m.iter().enumerate() {
        for (k, &dots) in mp.iter().enumerate() {
            acc[4 * p + k] = vfmaq_f32(acc[4 * p + k], vmulq_f32(dw[k], da[p]), vcvtq_f32_s32(dots));
        }
    }
}

/// Two token pairs' values from one vector of four tokens (for `init`).
#[target_feature(enable = "neon")]
#[inline]
fn int_pairs(v: int32x4_t) -> [int32x4_t; 2] {
    let v = vreinterpretq_f32_s32(v);
    [pair_lanes::<0>(v), pair_lanes::<1>(v)].map(|p| vreinterpretq_s32_f32(p))
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn quad_q8_0_smmla(t: &TileQ8_0, q: &Quad, acc: &mut QuadAcc) {
    quad_smmla(&q8_row_pairs(t), &t.d, q, [vdupq_n_s32(0); 2], acc);
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn quad_q4_0_smmla(t: &TileQ4_0, q: &Quad, acc: &mut QuadAcc) {
    quad_smmla(&nibble_row_pairs(t), &t.d, q, int_pairs(q4_0_offsets(q)), acc);
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn quad_q4_1_smmla(t: &TileQ4_1, q: &Quad, acc: &mut QuadAcc) {
    quad_smmla(&nibble_row_pairs(t), &t.d, q, [vdupq_n_s32(0); 2], acc);
    // The minimums: `acc += m · d_t · sum_t`.
    let m = row_pair_lanes(halves_f16(&t.m));
    let ds = vmulq_f32(q.scales(), vcvtq_f32_s32(q.sums()));
    let ds = [pair_lanes::<0>(ds), pair_lanes::<1>(ds)];
    for p in 0..2 {
        for k in 0..4 {
            acc[4 * p + k] = vfmaq_f32(acc[4 * p + k], m[k], ds[p]);
        }
    }
}

/// The four tokens' row sums of an SMMLA quad accumulator: even lanes are the first token of
/// a pair, odd lanes the second.
#[target_feature(enable = "neon")]
#[inline]
fn finish_smmla(acc: QuadAcc) -> [[f32; 8]; QUAD] {
    core::array::from_fn(|t| {
        let (p, odd) = (t / 2, t % 2 == 1);
        let uzp = |a, b| if odd { vuzp2q_f32(a, b) } else { vuzp1q_f32(a, b) };
        finish([
            uzp(acc[4 * p], acc[4 * p + 1]),
            uzp(acc[4 * p + 2], acc[4 * p + 3]),
        ])
    })
}

entries! { "neon,dotprod,i8mm";
    fn matmul_q8_0_i8mm(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(q8_dots_sdot, q8_dots_sdot, scale_q8_0);
        quads::matmul(w, x, out, quad_kernel!(quad_q8_0_smmla, finish_smmla), tail)
    }
    fn matmul_q4_0_i8mm(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_0);
        quads::matmul(w, x, out, quad_kernel!(quad_q4_0_smmla, finish_smmla), tail)
    }
    fn matmul_q4_1_i8mm(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_1);
        quads::matmul(w, x, out, quad_kernel!(quad_q4_1_smmla, finish_smmla), tail)
    }
}
