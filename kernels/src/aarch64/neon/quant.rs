//! q8 activation quantization on NEON, for all three aarch64 paths: a block of 32 values is
//! eight registers, rounded by `fcvtas` (to nearest, ties away from zero, as `libm::roundf`)
//! and narrowed to bytes by saturating moves (as Rust's `as i8`), about a third of the
//! instructions of the generic [`crate::simd::quant`] kernel (float rounding, a store per four
//! values). Bit-exact with [`crate::scalar::quantize_q8_act`], NaN and overflow included.

use core::arch::aarch64::*;

use crate::layout::QK;
use crate::view::BlockQ8Act;

/// See [`crate::scalar::quantize_q8_act`].
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn quantize_q8_act(x: &[f32], out: &mut [BlockQ8Act]) {
    assert_eq!(x.len(), out.len() * QK, "activation length is not blocks × QK");
    for (chunk, block) in x.as_chunks::<QK>().0.iter().zip(out.iter_mut()) {
        // SAFETY: `chunk` is 32 readable f32, 16 at each offset used.
        let (a, b) = unsafe { (vld1q_f32_x4(chunk.as_ptr()), vld1q_f32_x4(chunk.as_ptr().add(16))) };
        let v = [a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3];
        // `maxnm` skips NaN, as the scalar fold's `f32::max` does.
        let amax = v
            .iter()
            .fold(vdupq_n_f32(0.0), |m, &v| vmaxnmq_f32(m, vabsq_f32(v)));
        let d = vmaxnmvq_f32(amax) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        // NaN converts to 0 and large values saturate, as `roundf(v * id) as i8`.
        let q = v.map(|v| vcvtaq_s32_f32(vmulq_n_f32(v, id)));
        let h: [int16x8_t; 4] = core::array::from_fn(|i| vqmovn_high_s32(vqmovn_s32(q[2 * i]), q[2 * i + 1]));
        let qs: [int8x16_t; 2] =
            core::array::from_fn(|i| vqmovn_high_s16(vqmovn_s16(h[2 * i]), h[2 * i + 1]));
        // SAFETY: `block.qs` is 32 writable bytes, 16 at each offset used.
        unsafe {
            vst1q_s8(block.qs.as_mut_ptr(), qs[0]);
            vst1q_s8(block.qs.as_mut_ptr().add(16), qs[1]);
        }
        block.sum = i32::from(vaddlvq_s8(qs[0])) + i32::from(vaddlvq_s8(qs[1]));
        block.d = d;
    }
}
