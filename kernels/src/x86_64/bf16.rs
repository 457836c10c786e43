//! The AVX512-BF16 path: the AVX512-VNNI path plus bfloat16 products (`vdpbf16ps`: per f32
//! lane, two bfloat16 products added into the accumulator, so twice the multiply-adds of an
//! f32 FMA per instruction). Operands are bfloat16 pairs along the summed dimension (see
//! [`crate::Bf16Kernels`]); the products run on 512-bit registers, 16 output columns each.

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
    bf16: Some(&BF16),
    ..AVX512_VNNI
};

static BF16: Bf16Kernels = Bf16Kernels {
    matmul_t: matmul_bf16_t,
    softmax: softmax_bf16,
    pairs: bf16_pairs,
};

/// Output columns per register.
const LANES: usize = 16;
/// Registers of columns per tile.
const TILE_VECS: usize = 4;
/// Input rows per tile: with [`TILE_VECS`], 16 accumulators, 4 registers of `b` and a
/// broadcast out of 32.
const TILE_ROWS: usize = 4;

entries! { "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni,avx512bf16";
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

/// See [`scalar::matmul_bf16_t`]. Column strips of [`TILE_VECS`] registers outside, input rows
/// inside, so a strip of `b` stays in cache for every row.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn matmul_t(b: &[u32], x: &[u32], mut out: OutCols<'_>) {
    let (n, width) = (out.n(), out.width());
    let k = x.len() / n.max(1);
    assert_eq!(x.len(), n * k, "inputs are not n × k pairs");
    assert_eq!(b.len(), k * width, "b is not k × width pairs");
    for c0 in (0..width).step_by(TILE_VECS * LANES) {
        let mut t = 0;
        while n - t >= TILE_ROWS {
            tile::<TILE_ROWS>(b, x, &mut out, t, c0);
            t += TILE_ROWS;
        }
        for t in t..n {
            tile::<1>(b, x, &mut out, t, c0);
        }
    }
}

/// Rows `t0..t0 + MR` times the [`TILE_VECS`] registers of columns from `c0` (masked past the
/// width), as outer products: per pair row of `b`, its registers are loaded once and each
/// input pair is broadcast to all of them.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn tile<const MR: usize>(b: &[u32], x: &[u32], out: &mut OutCols<'_>, t0: usize, c0: usize) {
    let (width, k) = (out.width(), x.len() / out.n());
    let masks: [__mmask16; TILE_VECS] = core::array::from_fn(|v| {
        let lanes = width.saturating_sub(c0 + v * LANES).min(LANES);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let xs: [&[u32]; MR] = core::array::from_fn(|i| &x[(t0 + i) * k..][..k]);
    let mut acc = [[_mm512_setzero_ps(); TILE_VECS]; MR];
    for (j, row) in b.chunks_exact(width).take(k).enumerate() {
        let bv: [__m512bh; TILE_VECS] = core::array::from_fn(|v| {
            let at = row.as_ptr().wrapping_add(c0 + v * LANES).cast::<i32>();
            // SAFETY: the mask enables only lanes `c0 + v·16 + l < width`, inside `row`;
            // masked-off lanes are not read. The cast reinterprets 16 pairs of bfloat16.
            unsafe { core::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi32(masks[v], at)) }
        });
        for i in 0..MR {
            // SAFETY: as above, the same 64 bits reinterpreted.
            let xv = unsafe { core::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(xs[i][j] as i32)) };
            for v in 0..TILE_VECS {
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], xv, bv[v]);
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
