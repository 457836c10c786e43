//! The AVX2 path (with FMA and F16C): x86_64 CPUs since Haswell (2013) and Zen.
//!
//! Quantized matmuls use the tile layout directly (lane = row, see [`matmul`]); everything
//! else is the generic code of [`crate::simd`] instantiated with eight-lane vectors.

pub(crate) mod groups;
pub(crate) mod kquant;
pub(crate) mod lanes;
pub(crate) mod matmul;

use core::arch::x86_64::*;

use groups::{Group, GroupKernel};
use kquant::{
    block_q2_k, block_q3_k, block_q4_k, block_q5_0, block_q5_1, block_q5_k, block_q6_k, group_offset,
    group_q2_k, group_q4_k, group_q5_0, group_q5_1, q2_k_sub, q3_chunks, q4_k_sub, q5_quants, q6_chunks,
    scaled_half_dots,
};
use lanes::F32x8;
use matmul::{
    GROUP, block_dot_q8, block_q4_0, block_q4_1, block_q8_0, finish, group_q4_0, group_q4_1, group_q8_0,
    nibble_dots_of, nibble_quants, prefetch_ahead,
};

use crate::dispatch::{Isa, Kernels};
use crate::layout::{
    BlockQ8_0, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K, TileQ8_0,
};
use crate::simd::lanes::Lanes;
use crate::simd::tiles::{TileKernel, matmul, super_blocks};
use crate::simd::{entries, lanes_table, quant};
use crate::view::{BlockQ8Act, OutCols, Tiled};

lanes_table! { "avx2,fma,f16c", F32x8,
    isa: Isa::Avx2,
    matmul_q8_0: matmul_q8_0_avx2,
    matmul_q4_0: matmul_q4_0_avx2,
    matmul_q4_1: matmul_q4_1_avx2,
    matmul_q5_0: matmul_q5_0_avx2,
    matmul_q5_1: matmul_q5_1_avx2,
    matmul_q4_k: matmul_q4_k_avx2,
    matmul_q5_k: matmul_q5_k_avx2,
    matmul_q6_k: matmul_q6_k_avx2,
    matmul_q3_k: matmul_q3_k_avx2,
    matmul_q2_k: matmul_q2_k_avx2,
    attn_scores_q8: attn_scores_q8_avx2,
}

/// The AVX2 kernels, as a constant the VNNI tables start from.
pub(crate) const AVX2_KERNELS: Kernels = TABLE;

/// The AVX2 table.
pub(crate) static AVX2: Kernels = AVX2_KERNELS;

/// The matmul loop nest with the tile kernel `$block` (for single tokens, the memory-bound
/// decode case, with weight prefetch); `$block` and the names used here must be in scope.
macro_rules! tile_kernel {
    ($block:ident) => {
        TileKernel {
            zero: _mm256_setzero_ps(),
            group: |t: &_, a: [&_; GROUP], acc: &mut [__m256; GROUP]| $block(t, a, acc),
            single: |t: &_, a: [&_; 1], acc: &mut [__m256; 1]| {
                prefetch_ahead(t);
                $block(t, a, acc)
            },
            finish: |acc| finish(acc),
        }
    };
}

pub(crate) use tile_kernel;

entries! { "avx2,fma,f16c";
    fn matmul_q8_0_avx2(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 0.0,
            unpack: |_: &_, _| (),
            tile: |t: &_, [()]: &[(); 1], [g]: &[Group; 1], acc: &mut _| group_q8_0(t, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q8_0), |x| x)) }
    }
    fn matmul_q4_0_avx2(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: -8.0,
            unpack: |t: &TileQ4_0, _| nibble_quants(&t.qs),
            tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q4_0(t, q, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_0), |x| x)) }
    }
    fn matmul_q4_1_avx2(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 1.0,
            unpack: |t: &TileQ4_1, _| nibble_quants(&t.qs),
            tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q4_1(t, q, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_1), |x| x)) }
    }
    fn matmul_q5_0_avx2(w: Tiled<'_, TileQ5_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: -16.0,
            unpack: |t: &TileQ5_0, _| q5_quants(&t.qs, &t.qh),
            tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q5_0(t, q, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q5_0), |x| x)) }
    }
    fn matmul_q5_1_avx2(w: Tiled<'_, TileQ5_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 1.0,
            unpack: |t: &TileQ5_1, _| q5_quants(&t.qs, &t.qh),
            tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q5_1(t, q, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q5_1), |x| x)) }
    }
    fn matmul_q4_k_avx2(w: Tiled<'_, TileQ4K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: -1.0,
            unpack: |t: &TileQ4K, j| q4_k_sub(t, j),
            tile: |_: &_, q: &_, g: &_, acc: &mut _| group_q4_k(q, g, acc, |q, a| nibble_dots_of(q, a)),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_k), super_blocks)) }
    }
    fn matmul_q5_k_avx2(w: Tiled<'_, TileQ5K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, tile_kernel!(block_q5_k))
    }
    fn matmul_q6_k_avx2(w: Tiled<'_, TileQ6K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 0.0,
            unpack: |t: &TileQ6K, j| q6_chunks(t, j),
            tile: |t: &TileQ6K, q: &_, g: &_, acc: &mut _| {
                group_offset::<5>((&t.d, &t.sc), q, g, acc, |q, s, a| scaled_half_dots::<2, GROUP>(q, s, a))
            },
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q6_k), super_blocks)) }
    }
    fn matmul_q3_k_avx2(w: Tiled<'_, TileQ3K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 0.0,
            unpack: |t: &TileQ3K, j| q3_chunks(t, j),
            tile: |t: &TileQ3K, q: &_, g: &_, acc: &mut _| {
                group_offset::<2>((&t.d, &t.sc), q, g, acc, |q, s, a| scaled_half_dots::<4, GROUP>(q, s, a))
            },
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q3_k), super_blocks)) }
    }
    fn matmul_q2_k_avx2(w: Tiled<'_, TileQ2K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let group = GroupKernel {
            k: 1.0,
            unpack: |t: &TileQ2K, j| q2_k_sub(t, j),
            tile: |t: &TileQ2K, q: &_, g: &_, acc: &mut _| group_q2_k(t, q, g, acc),
        };
        // SAFETY: this entry runs with AVX2 enabled.
        unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q2_k), super_blocks)) }
    }
    fn attn_scores_q8_avx2(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]) {
        let block = |acc, kb: &BlockQ8_0, qb: &BlockQ8Act| {
            let d = _mm256_set1_ps(F32x8::f16_to_f32(kb.d) * qb.d);
            _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(block_dot_q8(&kb.qs, &qb.qs)), acc)
        };
        quant::attn_scores_q8(q, keys, scale, out, _mm256_setzero_ps(), block, |[a, b, c, d]| {
            // Pairwise sums of four vectors: lanes 0-3 and 4-7 of `abcd` hold halves of the
            // four totals.
            let abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
            let sums = _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps::<1>(abcd));
            let mut out = [0.0; 4];
            // SAFETY: `out` holds 4 f32.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_math_is_within_its_stated_error() {
        if !Isa::Avx2.supported() {
            return std::eprintln!("skipped: no AVX2 on this CPU");
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        fn run() -> (f64, f64, f64) {
            crate::simd::math::tests::check::<F32x8>()
        }
        // SAFETY: the CPU has the features (checked above).
        let (exp_ulp, erf_abs, tanh_abs) = unsafe { run() };
        std::eprintln!("avx2: exp {exp_ulp} ulp, erf {erf_abs:e}, tanh {tanh_abs:e} (absolute)");
    }
}
