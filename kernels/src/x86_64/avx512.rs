//! The AVX-512 path: the AVX512-VNNI path plus kernels on 512-bit registers where they pay:
//! the prompt's q8_0 product ([`q8_0`]: 16 weight rows per register), the f32 product of
//! attention (`matmul_f32_t`: 16 output columns per register), and GELU and SwiGLU on 16 lanes
//! ([`lanes::F32x16`], the same polynomials as the 8-lane kernels). All give the AVX512-VNNI
//! path's results bit for bit; softmax stays the 8-lane kernel, whose sum a 16-lane one would
//! reorder (that flipped a beam-5 word of the Whisper WER set). Per instruction twice the work
//! of the 256-bit kernels, so half the loads, broadcasts and instructions per multiply-add; on
//! Zen 4, which runs a 512-bit operation as two 256-bit halves, that instruction count (not the
//! arithmetic) is the gain.

mod lanes;
mod q8_0;

use core::arch::x86_64::*;

use self::lanes::F32x16;
use super::vnni::avx512_vnni::AVX512_VNNI;
use crate::dispatch::{Isa, Kernels};
use crate::layout::TileQ8_0;
use crate::simd::{entries, ops};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// This path's table.
pub(crate) static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    matmul_q8_0: matmul_q8_0_avx512,
    matmul_f32_t: matmul_f32_t_avx512,
    gelu_erf: gelu_erf_avx512,
    gelu_tanh: gelu_tanh_avx512,
    swiglu: swiglu_avx512,
    ..AVX512_VNNI
};

entries! { "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni";
    fn matmul_q8_0_avx512(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        q8_0::matmul(w, x, out, AVX512_VNNI.matmul_q8_0)
    }
    fn matmul_f32_t_avx512(b: &[f32], x: &[f32], out: OutCols<'_>) {
        matmul_t(b, x, out)
    }
    fn gelu_erf_avx512(x: &mut [f32]) {
        ops::gelu_erf::<F32x16>(x)
    }
    fn gelu_tanh_avx512(x: &mut [f32]) {
        ops::gelu_tanh::<F32x16>(x)
    }
    fn swiglu_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) {
        ops::swiglu::<F32x16>(gate, up, out)
    }
}

/// Output columns per register.
const LANES: usize = 16;
/// Registers of columns per tile.
const TILE_VECS: usize = 4;
/// Input rows per tile: with [`TILE_VECS`], 16 accumulators, 4 registers of `b` and a
/// broadcast out of 32.
const TILE_ROWS: usize = 4;

/// See [`crate::scalar::matmul_f32_t`]. Column strips of [`TILE_VECS`] registers outside,
/// input rows inside, so a strip of `b` stays in cache for every row.
#[target_feature(enable = "avx512f")]
fn matmul_t(b: &[f32], x: &[f32], mut out: OutCols<'_>) {
    let (n, width) = (out.n(), out.width());
    let k = x.len() / n.max(1);
    assert_eq!(x.len(), n * k, "inputs are not n × k");
    assert_eq!(b.len(), k * width, "b is not k × width");
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
/// width), as outer products: per row of `b`, its registers are loaded once and each input
/// element is broadcast to all of them.
#[target_feature(enable = "avx512f")]
#[inline]
fn tile<const MR: usize>(b: &[f32], x: &[f32], out: &mut OutCols<'_>, t0: usize, c0: usize) {
    let (width, k) = (out.width(), x.len() / out.n());
    // Loops, not `from_fn`: its closures would carry this function's target features and could
    // stay calls (`targets/check-inlined.sh`).
    let mut masks: [__mmask16; TILE_VECS] = [0; TILE_VECS];
    for (v, m) in masks.iter_mut().enumerate() {
        let lanes = width.saturating_sub(c0 + v * LANES).min(LANES);
        *m = ((1u32 << lanes) - 1) as __mmask16;
    }
    let mut xs: [&[f32]; MR] = [&[]; MR];
    for (i, xs) in xs.iter_mut().enumerate() {
        *xs = &x[(t0 + i) * k..][..k];
    }
    let mut acc = [[_mm512_setzero_ps(); TILE_VECS]; MR];
    for (j, row) in b.chunks_exact(width).take(k).enumerate() {
        let mut bv = [_mm512_setzero_ps(); TILE_VECS];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: the mask enables only columns `c0 + v·16 + l < width`, inside `row`.
            *bv = unsafe { _mm512_maskz_loadu_ps(masks[v], row.as_ptr().wrapping_add(c0 + v * LANES)) };
        }
        for i in 0..MR {
            let xv = _mm512_set1_ps(xs[i][j]);
            for v in 0..TILE_VECS {
                acc[i][v] = _mm512_fmadd_ps(xv, bv[v], acc[i][v]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_math_is_within_its_stated_error() {
        if !Isa::Avx512.supported() {
            return std::eprintln!("skipped: no AVX-512 path on this CPU");
        }
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
        fn run() -> (f64, f64, f64) {
            crate::simd::math::tests::check::<F32x16>()
        }
        // SAFETY: the CPU has the features (checked above).
        let (exp_ulp, erf_abs, tanh_abs) = unsafe { run() };
        std::eprintln!("avx512: exp {exp_ulp} ulp, erf {erf_abs:e}, tanh {tanh_abs:e} (absolute)");
    }
}
