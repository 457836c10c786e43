//! The SMMLA path: NEON with Armv8.6 int8 matrix multiply (Cortex-A510/A710/X2 and later,
//! Neoverse V1/N2, Apple M2+). `smmla` multiplies a 2×8 block of weights (two rows, eight
//! columns) by a 2×8 block of activations (two tokens) into a 2×2 i32 tile: twice the
//! multiply-adds of an `sdot` per instruction, once there are two tokens to pair up.
//!
//! Prefill (`n >= 2`) runs token pairs through SMMLA; single tokens (decode, and the tail of
//! an odd count) go through the SDOT kernels. Everything else is the SDOT path's.

use core::arch::aarch64::*;
use core::arch::asm;

use super::dotprod::{DOTPROD_KERNELS, nibble_dots_sdot, q8_dots_sdot};
use super::neon::matmul::{
    Acc, Dots, GROUP, Nibbles, chunks, load_chunk, scale_q4_0, scale_q4_1, scale_q8_0,
};
use super::neon::tile_kernel;
use crate::dispatch::{Isa, Kernels};
use crate::layout::{TileQ4_0, TileQ4_1, TileQ8_0};
use crate::simd::entries;
use crate::simd::tiles::matmul;
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

/// Activation quants `8o..8o + 8` of two tokens, as the 2×8 `x` operand.
#[target_feature(enable = "neon")]
#[inline]
fn octet(pair: [&BlockQ8Act; 2], o: usize) -> int8x16_t {
    // SAFETY: `8o + 8 <= 32` for the octets 0..4 used here (checked by the slice).
    let [x0, x1] = pair.map(|a| unsafe { vld1_s8(a.qs[8 * o..8 * o + 8].as_ptr()) });
    vcombine_s8(x0, x1)
}

/// Dots of four tokens, as two pairs: `chunks(o)` gives the two chunks' registers that hold
/// columns `8o..8o + 8` of the eight rows, for octets `o` in 0..4.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn smmla_dots(chunks: impl Fn(usize) -> [[int8x16_t; 2]; 2], a: [&BlockQ8Act; GROUP]) -> [Dots; GROUP] {
    let pairs = [[a[0], a[1]], [a[2], a[3]]];
    let mut m = [[vdupq_n_s32(0); 4]; 2];
    for o in 0..4 {
        let [c0, c1] = chunks(o);
        let rows = row_pairs(c0, c1);
        for (mp, pair) in m.iter_mut().zip(pairs) {
            let x = octet(pair, o);
            for (acc, &w) in mp.iter_mut().zip(&rows) {
                *acc = smmla(*acc, w, x);
            }
        }
    }
    // m[p][k] = [r2k·t0, r2k·t1, r2k+1·t0, r2k+1·t1]: even lanes are token 0, odd token 1.
    let [m0, m1] = m;
    let token = |m: [int32x4_t; 4], odd: bool| {
        let uzp = |a, b| if odd { vuzp2q_s32(a, b) } else { vuzp1q_s32(a, b) };
        [uzp(m[0], m[1]), uzp(m[2], m[3])]
    };
    [
        token(m0, false),
        token(m0, true),
        token(m1, false),
        token(m1, true),
    ]
}

/// Q8 dots of four tokens: octet `o` is chunks `2o` and `2o + 1`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn q8_dots_smmla(t: &TileQ8_0, a: [&BlockQ8Act; GROUP]) -> [Dots; GROUP] {
    use zerocopy::IntoBytes;
    let ch = chunks(t.qs.as_bytes());
    let chunk = |c: usize| load_chunk(&ch[c]).map(|v| vreinterpretq_s8_u8(v));
    smmla_dots(|o| [chunk(2 * o), chunk(2 * o + 1)], a)
}

/// Q4 nibble dots of four tokens: octets 0 and 1 are the low nibbles of chunks (0, 1) and
/// (2, 3) (elements 0-15), octets 2 and 3 their high nibbles (elements 16-31).
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn nibble_dots_smmla(t: &impl Nibbles, a: [&BlockQ8Act; GROUP]) -> [Dots; GROUP] {
    let mask = vdupq_n_u8(0x0f);
    let raw: [[uint8x16_t; 2]; 4] = core::array::from_fn(|c| load_chunk(&chunks(t.nibbles())[c]));
    let lo = raw.map(|w| w.map(|v| vreinterpretq_s8_u8(vandq_u8(v, mask))));
    let hi = raw.map(|w| w.map(|v| vreinterpretq_s8_u8(vshrq_n_u8::<4>(v))));
    smmla_dots(
        |o| {
            let half = if o < 2 { &lo } else { &hi };
            [half[2 * (o % 2)], half[2 * (o % 2) + 1]]
        },
        a,
    )
}

entries! { "neon,dotprod,i8mm";
    fn matmul_q8_0_i8mm(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(q8_dots_smmla, q8_dots_sdot, scale_q8_0))
    }
    fn matmul_q4_0_i8mm(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(nibble_dots_smmla, nibble_dots_sdot, scale_q4_0))
    }
    fn matmul_q4_1_i8mm(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(nibble_dots_smmla, nibble_dots_sdot, scale_q4_1))
    }
}
