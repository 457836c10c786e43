//! The AVX512-BF16 path: the AVX512-VNNI path plus products on 512-bit registers, 16 output
//! columns each: the f32 product of attention (`matmul_f32_t`; per instruction twice the
//! columns of the AVX2 one, so half the loads and broadcasts per multiply-add) and the
//! bfloat16 kernels (`vdpbf16ps`: per f32 lane, two bfloat16 products added into the
//! accumulator, so twice the multiply-adds of an f32 FMA). Bfloat16 operands are pairs along
//! the summed dimension (see [`crate::Bf16Kernels`]).

use core::arch::x86_64::*;

use super::avx2::lanes::F32x8;
use super::vnni::avx512_vnni::AVX512_VNNI;
use crate::dispatch::{Bf16Kernels, Isa, Kernels};
use crate::scalar;
use crate::simd::{entries, ops};
use crate::view::OutCols;

/// This path's table.
pub(crate) static AVX512_BF16: Kernels = Kernels {
    isa: Isa::Avx512Bf16,
    matmul_f32_t: matmul_f32_t_avx512,
    bf16: Some(&BF16),
    ..AVX512_VNNI
};

static BF16: Bf16Kernels = Bf16Kernels {
    matmul_t: matmul_bf16_t,
    softmax: softmax_bf16,
    pairs: bf16_pairs,
};

entries! { "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni,avx512bf16";
    fn matmul_f32_t_avx512(b: &[f32], x: &[f32], out: OutCols<'_>) {
        matmul_t(b, x, out)
    }
    fn matmul_bf16_t(b: &[u32], x: &[u32], out: OutCols<'_>) {
        matmul_t(b, x, out)
    }
    fn softmax_bf16(x: &mut [f32], out: &mut [u32]) {
        softmax(x, out)
    }
    fn bf16_pairs(src: &[f32], dst: &mut [u32]) {
        pairs(src, dst)
    }
}

/// An element of the products' operands, 16 to a register: an f32, or a pair of bfloat16.
trait Element: Copy {
    /// A register of 16 elements.
    type V: Copy;
    /// The lanes of `mask` from `at`, zero elsewhere.
    ///
    /// # Safety
    /// The elements at `at` of the lanes `mask` enables must be readable.
    unsafe fn load(mask: __mmask16, at: *const Self) -> Self::V;
    /// `x` in every lane.
    fn splat(x: Self) -> Self::V;
    /// `acc + x·b` per f32 lane.
    fn mul_add(acc: __m512, x: Self::V, b: Self::V) -> __m512;
}

impl Element for f32 {
    type V = __m512;
    #[inline(always)]
    unsafe fn load(mask: __mmask16, at: *const f32) -> __m512 {
        // SAFETY: the caller promises the enabled lanes; the others are not read.
        unsafe { _mm512_maskz_loadu_ps(mask, at) }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m512 {
        // SAFETY: only reached from kernels compiled with AVX512F (see `entries`).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn mul_add(acc: __m512, x: __m512, b: __m512) -> __m512 {
        // SAFETY: as for `splat`.
        unsafe { _mm512_fmadd_ps(x, b, acc) }
    }
}

impl Element for u32 {
    type V = __m512bh;
    #[inline(always)]
    unsafe fn load(mask: __mmask16, at: *const u32) -> __m512bh {
        // SAFETY: the caller promises the enabled lanes; the others are not read. The
        // transmute reinterprets 16 pairs of bfloat16.
        unsafe { core::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi32(mask, at.cast())) }
    }
    #[inline(always)]
    fn splat(x: u32) -> __m512bh {
        // SAFETY: only reached from kernels compiled with AVX512F (see `entries`); the same
        // 512 bits reinterpreted.
        unsafe { core::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(x as i32)) }
    }
    #[inline(always)]
    fn mul_add(acc: __m512, x: __m512bh, b: __m512bh) -> __m512 {
        // SAFETY: only reached from kernels compiled with AVX512-BF16 (see `entries`).
        unsafe { _mm512_dpbf16_ps(acc, x, b) }
    }
}

/// Output columns per register.
const LANES: usize = 16;
/// Registers of columns per tile.
const TILE_VECS: usize = 4;
/// Input rows per tile: with [`TILE_VECS`], 16 accumulators, 4 registers of `b` and a
/// broadcast out of 32.
const TILE_ROWS: usize = 4;

/// See [`scalar::matmul_f32_t`] and [`scalar::matmul_bf16_t`]. Column strips of [`TILE_VECS`]
/// registers outside, input rows inside, so a strip of `b` stays in cache for every row.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn matmul_t<E: Element>(b: &[E], x: &[E], mut out: OutCols<'_>) {
    let (n, width) = (out.n(), out.width());
    let k = x.len() / n.max(1);
    assert_eq!(x.len(), n * k, "inputs are not n × k");
    assert_eq!(b.len(), k * width, "b is not k × width");
    for c0 in (0..width).step_by(TILE_VECS * LANES) {
        let mut t = 0;
        while n - t >= TILE_ROWS {
            tile::<E, TILE_ROWS>(b, x, &mut out, t, c0);
            t += TILE_ROWS;
        }
        for t in t..n {
            tile::<E, 1>(b, x, &mut out, t, c0);
        }
    }
}

/// Rows `t0..t0 + MR` times the [`TILE_VECS`] registers of columns from `c0` (masked past the
/// width), as outer products: per row of `b`, its registers are loaded once and each input
/// element is broadcast to all of them.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn tile<E: Element, const MR: usize>(b: &[E], x: &[E], out: &mut OutCols<'_>, t0: usize, c0: usize) {
    let (width, k) = (out.width(), x.len() / out.n());
    let masks: [__mmask16; TILE_VECS] = core::array::from_fn(|v| {
        let lanes = width.saturating_sub(c0 + v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let xs: [&[E]; MR] = core::array::from_fn(|i| &x[(t0 + i) * k..][..k]);
    let mut acc = [[_mm512_setzero_ps(); TILE_VECS]; MR];
    for (j, row) in b.chunks_exact(width).take(k).enumerate() {
        let bv: [E::V; TILE_VECS] = core::array::from_fn(|v| {
            // SAFETY: the mask enables only columns `c0 + v·16 + l < width`, inside `row`.
            unsafe { E::load(masks[v], row.as_ptr().wrapping_add(c0 + v * LANES)) }
        });
        for i in 0..MR {
            let xv = E::splat(xs[i][j]);
            for v in 0..TILE_VECS {
                acc[i][v] = E::mul_add(acc[i][v], xv, bv[v]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let row = out.row(t0 + i);
        for v in 0..TILE_VECS {
            let at = row.as_mut_ptr().wrapping_add(c0 + v * LANES);
            // SAFETY: the mask enables only columns below the width, inside `row`.
            unsafe { _mm512_mask_storeu_ps(at, masks[v], acc[v]) };
        }
    }
}

/// See [`scalar::softmax_bf16`]: the f32 softmax of the other paths, then [`pairs`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512bf16")]
fn softmax(x: &mut [f32], out: &mut [u32]) {
    ops::softmax::<F32x8>(x);
    pairs(x, out);
}

/// See [`scalar::bf16_pairs`]: 32 values per `vcvtne2ps2bf16`, the tail in scalar code (the same
/// rounding).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn pairs(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2), "dst is not src.len() / 2 pairs");
    let full = src.len() / (2 * LANES);
    let (x, x_tail) = src.split_at(full * 2 * LANES);
    let (out, out_tail) = dst.split_at_mut(full * LANES);
    for (s, d) in x.chunks_exact(2 * LANES).zip(out.chunks_exact_mut(LANES)) {
        // SAFETY: `s` holds 32 f32 and `d` 16 u32, the widths loaded and stored.
        unsafe {
            let lo = _mm512_loadu_ps(s.as_ptr());
            let hi = _mm512_loadu_ps(s.as_ptr().add(LANES));
            let pairs = core::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(d.as_mut_ptr().cast(), pairs);
        }
    }
    scalar::bf16_pairs(x_tail, out_tail);
}
