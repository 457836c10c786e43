//! The AVX2 path (with FMA and F16C): x86_64 CPUs since Haswell (2013) and Zen.
//!
//! Quantized matmuls use the tile layout directly (lane = row, see [`matmul`]); everything
//! else is the generic code of [`crate::simd`] instantiated with eight-lane vectors.

mod lanes;
mod matmul;

use core::arch::x86_64::*;

use half::f16;
use lanes::F32x8;
use matmul::{GROUP, block_dot_q8, block_q4_0, block_q4_1, block_q8_0, finish};

use crate::dispatch::{Isa, Kernels};
use crate::layout::{BlockQ8_0, TileQ4_0, TileQ4_1, TileQ8_0};
use crate::simd::lanes::Lanes;
use crate::simd::tiles::{TileKernel, matmul};
use crate::simd::{entries, ops, quant};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// The AVX2 table.
pub(crate) static AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    quantize_q8_act: quantize_q8_act_avx2,
    matmul_q8_0: matmul_q8_0_avx2,
    matmul_q4_0: matmul_q4_0_avx2,
    matmul_q4_1: matmul_q4_1_avx2,
    matmul_f16: matmul_f16_avx2,
    matmul_f32: matmul_f32_avx2,
    rms_norm: rms_norm_avx2,
    layer_norm: layer_norm_avx2,
    softmax: softmax_avx2,
    swiglu: swiglu_avx2,
    gelu_erf: gelu_erf_avx2,
    gelu_tanh: gelu_tanh_avx2,
    add: add_avx2,
    mul: mul_avx2,
    rope_neox: rope_neox_avx2,
    rope_interleaved: rope_interleaved_avx2,
    f32_to_f16: f32_to_f16_avx2,
    attn_scores_f16: attn_scores_f16_avx2,
    attn_values_f16: attn_values_f16_avx2,
    quantize_q8_kv: quantize_q8_kv_avx2,
    attn_scores_q8: attn_scores_q8_avx2,
    attn_values_q8: attn_values_q8_avx2,
};

/// The matmul loop nest with this path's tile kernel `$block`.
macro_rules! tile_kernel {
    ($block:ident) => {
        TileKernel {
            zero: _mm256_setzero_ps(),
            group: |t: &_, a: [&BlockQ8Act; GROUP], acc: &mut [__m256; GROUP]| $block(t, a, acc),
            single: |t: &_, a: [&BlockQ8Act; 1], acc: &mut [__m256; 1]| $block(t, a, acc),
            finish: |acc| finish(acc),
        }
    };
}

entries! { "avx2,fma,f16c";
    fn matmul_q8_0_avx2(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(block_q8_0))
    }
    fn matmul_q4_0_avx2(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(block_q4_0))
    }
    fn matmul_q4_1_avx2(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, tile_kernel!(block_q4_1))
    }
    fn quantize_q8_act_avx2(x: &[f32], out: &mut [BlockQ8Act]) {
        quant::quantize_q8_act::<F32x8>(x, out)
    }
    fn matmul_f16_avx2(w: &[u16], x: &[f32], out: OutCols<'_>) {
        ops::matmul_float::<F32x8, u16>(w, x, out)
    }
    fn matmul_f32_avx2(w: &[f32], x: &[f32], out: OutCols<'_>) {
        ops::matmul_float::<F32x8, f32>(w, x, out)
    }
    fn rms_norm_avx2(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        ops::rms_norm::<F32x8>(x, w, eps, out)
    }
    fn layer_norm_avx2(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
        ops::layer_norm::<F32x8>(x, w, b, eps, out)
    }
    fn softmax_avx2(x: &mut [f32]) {
        ops::softmax::<F32x8>(x)
    }
    fn swiglu_avx2(gate: &[f32], up: &[f32], out: &mut [f32]) {
        ops::swiglu::<F32x8>(gate, up, out)
    }
    fn gelu_erf_avx2(x: &mut [f32]) {
        ops::gelu_erf::<F32x8>(x)
    }
    fn gelu_tanh_avx2(x: &mut [f32]) {
        ops::gelu_tanh::<F32x8>(x)
    }
    fn add_avx2(dst: &mut [f32], src: &[f32]) {
        ops::add::<F32x8>(dst, src)
    }
    fn mul_avx2(dst: &mut [f32], src: &[f32]) {
        ops::mul::<F32x8>(dst, src)
    }
    fn rope_neox_avx2(x: &mut [f32], cos: &[f32], sin: &[f32]) {
        ops::rope_neox::<F32x8>(x, cos, sin)
    }
    fn rope_interleaved_avx2(x: &mut [f32], cos: &[f32], sin: &[f32]) {
        ops::rope_interleaved::<F32x8>(x, cos, sin)
    }
    fn f32_to_f16_avx2(src: &[f32], dst: &mut [u16]) {
        ops::f32_to_f16::<F32x8>(src, dst)
    }
    fn attn_scores_f16_avx2(q: &[f32], keys: &[u16], scale: f32, out: &mut [f32]) {
        ops::attn_scores_f16::<F32x8>(q, keys, scale, out)
    }
    fn attn_values_f16_avx2(p: &[f32], values: &[u16], out: &mut [f32]) {
        ops::attn_values_f16::<F32x8>(p, values, out)
    }
    fn quantize_q8_kv_avx2(src: &[f32], dst: &mut [BlockQ8_0]) {
        quant::quantize_q8_kv::<F32x8>(src, dst)
    }
    fn attn_scores_q8_avx2(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]) {
        let block = |acc, kb: &BlockQ8_0, qb: &BlockQ8Act| {
            let d = _mm256_set1_ps(f16::from_bits(kb.d).to_f32() * qb.d);
            _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(block_dot_q8(&kb.qs, &qb.qs)), acc)
        };
        quant::attn_scores_q8(q, keys, scale, out, _mm256_setzero_ps(), block, |acc| {
            F32x8::from_raw(acc).reduce_sum()
        })
    }
    fn attn_values_q8_avx2(p: &[f32], values: &[BlockQ8_0], out: &mut [f32]) {
        quant::attn_values_q8::<F32x8>(p, values, out)
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
