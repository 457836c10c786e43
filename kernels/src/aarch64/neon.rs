//! The baseline NEON path: every aarch64 CPU (Cortex-A53/A72: Raspberry Pi 3 and 4).
//!
//! Quantized matmuls use widening multiplies on the tile layout (see [`matmul`]), activation
//! quantization and SwiGLU have NEON kernels of their own ([`quant`], [`act`]); the rest is
//! the generic code of [`crate::simd`] with four-lane vectors. The SDOT and SMMLA paths
//! reuse everything here except the integer dots.

pub(crate) mod act;
pub(crate) mod kquant;
pub(crate) mod lanes;
pub(crate) mod matmul;
pub(crate) mod quant;

use core::arch::aarch64::*;

use lanes::F32x4;
use matmul::{Acc, GROUP, block_dot_q8, nibble_dots, q8_dots, scale_q4_0, scale_q4_1, scale_q8_0};

use crate::dispatch::{Isa, Kernels};
use crate::layout::{
    BlockQ8_0, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K, TileQ8_0,
};
use crate::simd::tiles::{matmul, super_blocks};
use crate::simd::{entries, lanes_table};
use crate::view::{BlockQ8Act, OutCols, Tiled};

lanes_table! { "neon", F32x4,
    isa: Isa::Neon,
    matmul_q8_0: matmul_q8_0_neon,
    matmul_q4_0: matmul_q4_0_neon,
    matmul_q4_1: matmul_q4_1_neon,
    matmul_q5_0: matmul_q5_0_neon,
    matmul_q5_1: matmul_q5_1_neon,
    matmul_q4_k: matmul_q4_k_neon,
    matmul_q5_k: matmul_q5_k_neon,
    matmul_q6_k: matmul_q6_k_neon,
    matmul_q3_k: matmul_q3_k_neon,
    matmul_q2_k: matmul_q2_k_neon,
    attn_scores_q8: attn_scores_q8_neon,
}

/// The NEON kernels, as a constant the SDOT and SMMLA tables start from: the generic table
/// with NEON's own activation quantization and SwiGLU.
pub(crate) const NEON_KERNELS: Kernels = Kernels {
    quantize_q8_act: quantize_q8_act_neon,
    swiglu: swiglu_neon,
    ..TABLE
};

/// The NEON table.
pub(crate) static NEON: Kernels = NEON_KERNELS;

/// The matmul loop nest on aarch64: integer dots `$group` (for `GROUP` tokens) and `$single`
/// (for one, with weight prefetch: the memory-bound decode case), then the tile type's
/// per-block scaling `$scale`.
macro_rules! tile_kernel {
    ($group:path, $single:path, $scale:path) => {
        $crate::simd::tiles::TileKernel {
            zero: $crate::aarch64::neon::matmul::zero(),
            group: |t: &_, a: [&BlockQ8Act; GROUP], acc: &mut [Acc; GROUP]| $scale(t, a, $group(t, a), acc),
            single: |t: &_, a: [&BlockQ8Act; 1], acc: &mut [Acc; 1]| {
                $crate::aarch64::neon::matmul::prefetch_ahead(t);
                $scale(t, a, $single(t, a), acc)
            },
            finish: |acc| $crate::aarch64::neon::matmul::finish(acc),
        }
    };
}
pub(crate) use tile_kernel;

/// The matmul loop nest for the 5-bit and K-quant tiles: `$block` (see [`kquant`]) with the
/// path's half dots `$half`.
macro_rules! kquant_kernel {
    ($block:path, $half:path) => {
        $crate::simd::tiles::TileKernel {
            zero: $crate::aarch64::neon::matmul::zero(),
            group: |t: &_, a: [&_; GROUP], acc: &mut [Acc; GROUP]| {
                $block(t, a, acc, |w, f, a| $half(w, f, a))
            },
            single: |t: &_, a: [&_; 1], acc: &mut [Acc; 1]| {
                $crate::aarch64::neon::matmul::prefetch_ahead(t);
                $block(t, a, acc, |w, f, a| $half(w, f, a))
            },
            finish: |acc| $crate::aarch64::neon::matmul::finish(acc),
        }
    };
}
pub(crate) use kquant_kernel;

/// [`crate::scalar::attn_scores_q8`] with a block dot `$dot(&k.qs, &q.qs) -> int32x4_t`.
macro_rules! attn_scores_q8_with {
    ($dot:path, $q:expr, $keys:expr, $scale:expr, $out:expr) => {
        $crate::simd::quant::attn_scores_q8(
            $q,
            $keys,
            $scale,
            $out,
            vdupq_n_f32(0.0),
            |acc, kb: &BlockQ8_0, qb: &BlockQ8Act| {
                let d = <$crate::aarch64::neon::lanes::F32x4 as $crate::simd::lanes::Lanes>::f16_to_f32(kb.d)
                    * qb.d;
                vfmaq_n_f32(acc, vcvtq_f32_s32($dot(&kb.qs, &qb.qs)), d)
            },
            |[a, b, c, d]: [float32x4_t; 4]| {
                let mut out = [0.0; 4];
                // SAFETY: `out` holds 4 f32.
                unsafe { vst1q_f32(out.as_mut_ptr(), vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d))) };
                out
            },
        )
    };
}
pub(crate) use attn_scores_q8_with;

entries! { "neon";
    fn quantize_q8_act_neon(x: &[f32], out: &mut [BlockQ8Act]) {
        quant::quantize_q8_act(x, out)
    }
    fn swiglu_neon(gate: &[f32], up: &[f32], out: &mut [f32]) {
        act::swiglu(gate, up, out)
    }
    fn matmul_q8_0_neon(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(q8_dots, q8_dots, scale_q8_0))
    }
    fn matmul_q4_0_neon(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(nibble_dots, nibble_dots, scale_q4_0))
    }
    fn matmul_q4_1_neon(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(nibble_dots, nibble_dots, scale_q4_1))
    }
    fn matmul_q5_0_neon(w: Tiled<'_, TileQ5_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, kquant_kernel!(kquant::block_q5_0, kquant::half_dots_neon))
    }
    fn matmul_q5_1_neon(w: Tiled<'_, TileQ5_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, kquant_kernel!(kquant::block_q5_1, kquant::half_dots_neon))
    }
    fn matmul_q4_k_neon(w: Tiled<'_, TileQ4K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q4_k, kquant::half_dots_neon))
    }
    fn matmul_q5_k_neon(w: Tiled<'_, TileQ5K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q5_k, kquant::half_dots_neon))
    }
    fn matmul_q6_k_neon(w: Tiled<'_, TileQ6K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q6_k, kquant::half_dots_neon))
    }
    fn matmul_q3_k_neon(w: Tiled<'_, TileQ3K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q3_k, kquant::half_dots_neon))
    }
    fn matmul_q2_k_neon(w: Tiled<'_, TileQ2K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q2_k, kquant::half_dots_neon))
    }
    fn attn_scores_q8_neon(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]) {
        attn_scores_q8_with!(block_dot_q8, q, keys, scale, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_math_is_within_its_stated_error() {
        #[target_feature(enable = "neon")]
        fn run() -> (f64, f64, f64) {
            crate::simd::math::tests::check::<F32x4>()
        }
        // SAFETY: NEON is part of every aarch64 target this crate builds for.
        let (exp_ulp, erf_abs, tanh_abs) = unsafe { run() };
        std::eprintln!("neon: exp {exp_ulp} ulp, erf {erf_abs:e}, tanh {tanh_abs:e} (absolute)");
    }
}
