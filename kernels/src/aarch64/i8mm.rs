//! The SMMLA path: NEON with Armv8.6 int8 matrix multiply (Cortex-A510/A710/X2 and later,
//! Neoverse V1/N2, Apple M2+). `smmla` multiplies a 2×8 block of weights (two rows, eight
//! columns) by a 2×8 block of activations (two tokens) into a 2×2 i32 tile: twice the
//! multiply-adds of an `sdot` per instruction, once there are two tokens to pair up.
//!
//! Prefill runs passes of two quads of tokens against half tiles ([`super::quads`]:
//! activations interleaved in token pairs, SMMLA's operand order) through SMMLA; the weights'
//! row pairs come from the tile layout by one `zip` per register (Q4: before the nibbles are
//! split, so half as many), shared by the pass's four token pairs. Single tokens (decode, and
//! the tokens past the last pass) go through the SDOT kernels. Everything else is the SDOT
//! path's.

use core::arch::aarch64::*;
use core::arch::asm;

use super::dotprod::{DOTPROD_KERNELS, nibble_dots_sdot, q8_dots_sdot};
use super::neon::matmul::{Acc, GROUP, Nibbles, chunks, scale_q4_0, scale_q4_1, scale_q8_0, split_nibbles};
use super::neon::tile_kernel;
use super::quads::{self, HALF, Half, PassAcc, QUAD, Quad, finish_halves, pass_kernel};
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

/// Half a tile as SMMLA's weight operands: `[o][k]` is the half's row pair `k` over elements
/// `8o..8o + 8`.
type HalfRowPairs = [[int8x16_t; 2]; 4];

/// The half's two row pairs, eight columns each, from its registers of two consecutive
/// four-column chunks: zipping their 4-byte groups gives each row's 8 bytes.
#[target_feature(enable = "neon")]
#[inline]
fn row_pairs(c0: uint8x16_t, c1: uint8x16_t) -> [uint8x16_t; 2] {
    let (a, b) = (vreinterpretq_u32_u8(c0), vreinterpretq_u32_u8(c1));
    [vzip1q_u32(a, b), vzip2q_u32(a, b)].map(|v| vreinterpretq_u8_u32(v))
}

/// Half `h` of a Q8 tile's row pairs: octet `o` is chunks `2o` and `2o + 1`.
#[target_feature(enable = "neon")]
#[inline]
fn q8_half_row_pairs(t: &TileQ8_0, h: Half) -> HalfRowPairs {
    use zerocopy::IntoBytes;
    let ch = chunks(t.qs.as_bytes());
    let mut w = [[vdupq_n_s8(0); 2]; 4];
    for (o, w) in w.iter_mut().enumerate() {
        let [r0, r1] = row_pairs(h.load(&ch[2 * o]), h.load(&ch[2 * o + 1]));
        *w = [vreinterpretq_s8_u8(r0), vreinterpretq_s8_u8(r1)];
    }
    w
}

/// Half `h` of a Q4 tile's row pairs: chunks (0, 1) and (2, 3) are zipped before the nibbles
/// are split; their low nibbles are octets 0 and 1, their high nibbles octets 2 and 3.
#[target_feature(enable = "neon")]
#[inline]
fn nibble_half_row_pairs(t: &impl Nibbles, h: Half) -> HalfRowPairs {
    let ch = chunks(t.nibbles());
    let mut w = [[vdupq_n_s8(0); 2]; 4];
    for j in 0..2 {
        let pairs = row_pairs(h.load(&ch[2 * j]), h.load(&ch[2 * j + 1]));
        for (k, v) in pairs.into_iter().enumerate() {
            let [lo, hi] = split_nibbles(v);
            (w[j][k], w[j + 2][k]) = (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi));
        }
    }
    w
}

/// Lanes `(r, r, r + 1, r + 1)` of the half's four row values `v` for its row pair `k`.
#[target_feature(enable = "neon")]
#[inline]
fn row_pair_lanes(v: float32x4_t) -> [float32x4_t; 2] {
    [vzip1q_f32(v, v), vzip2q_f32(v, v)]
}

/// Half a tile (row pairs `w`, row scales `dw`) times a pass: `acc[4i + 2p + k]` is row pair
/// `k` times token pair `p` of quad `i` (lanes `[r·t, r·t', r'·t, r'·t']`). Its integer dots
/// start at [`Quad::start_pairs`].
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn pass_smmla(w: &HalfRowPairs, dw: float32x4_t, quads: &[Quad; 2], acc: &mut PassAcc) {
    let dw = row_pair_lanes(dw);
    for (q, acc) in quads.iter().zip(acc.as_chunks_mut::<QUAD>().0) {
        let a = q.regs();
        let mut m = q.start_pairs();
        for (o, rows) in w.iter().enumerate() {
            for (p, mp) in m.iter_mut().enumerate() {
                for (acc, &rows) in mp.iter_mut().zip(rows) {
                    *acc = smmla(*acc, rows, a[2 * o + p]);
                }
            }
        }
        let da = q.scale_pairs();
        for (p, mp) in m.iter().enumerate() {
            for (k, &dots) in mp.iter().enumerate() {
                acc[2 * p + k] = vfmaq_f32(acc[2 * p + k], vmulq_f32(dw[k], da[p]), vcvtq_f32_s32(dots));
            }
        }
    }
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn pass_q8_0_smmla(t: &TileQ8_0, part: usize, quads: &[Quad; 2], acc: &mut PassAcc) {
    let h = Half::of(part);
    pass_smmla(&q8_half_row_pairs(t, h), h.f16s(&t.d), quads, acc);
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn pass_q4_0_smmla(t: &TileQ4_0, part: usize, quads: &[Quad; 2], acc: &mut PassAcc) {
    let h = Half::of(part);
    pass_smmla(&nibble_half_row_pairs(t, h), h.f16s(&t.d), quads, acc);
}

#[target_feature(enable = "neon,i8mm")]
#[inline]
fn pass_q4_1_smmla(t: &TileQ4_1, part: usize, quads: &[Quad; 2], acc: &mut PassAcc) {
    let h = Half::of(part);
    pass_smmla(&nibble_half_row_pairs(t, h), h.f16s(&t.d), quads, acc);
    // The minimums: `acc += m · d_t · sum_t`.
    let m = row_pair_lanes(h.f16s(&t.m));
    for (q, acc) in quads.iter().zip(acc.as_chunks_mut::<QUAD>().0) {
        let ds = q.scaled_sum_pairs();
        for p in 0..2 {
            for k in 0..2 {
                acc[2 * p + k] = vfmaq_f32(acc[2 * p + k], m[k], ds[p]);
            }
        }
    }
}

/// The eight tokens' row sums of an SMMLA pass: per quad `i` and token pair `p`, even lanes
/// of `acc[4i + 2p..][..2]` are the pair's first token, odd lanes its second.
#[target_feature(enable = "neon")]
#[inline]
fn finish_smmla(acc: PassAcc) -> [[f32; HALF]; 8] {
    let mut tokens = acc;
    for (o, pair) in tokens
        .as_chunks_mut::<2>()
        .0
        .iter_mut()
        .zip(acc.as_chunks::<2>().0)
    {
        *o = [vuzp1q_f32(pair[0], pair[1]), vuzp2q_f32(pair[0], pair[1])];
    }
    finish_halves(tokens)
}

entries! { "neon,dotprod,i8mm";
    fn matmul_q8_0_i8mm(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(q8_dots_sdot, q8_dots_sdot, scale_q8_0);
        quads::matmul(w, x, out, pass_kernel!(2, 0, Smmla, pass_q8_0_smmla, finish_smmla), tail)
    }
    fn matmul_q4_0_i8mm(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_0);
        quads::matmul(w, x, out, pass_kernel!(2, -8, Smmla, pass_q4_0_smmla, finish_smmla), tail)
    }
    fn matmul_q4_1_i8mm(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_1);
        quads::matmul(w, x, out, pass_kernel!(2, 0, Smmla, pass_q4_1_smmla, finish_smmla), tail)
    }
}
