//! [`Lanes`] for NEON: four f32 lanes in a `float32x4_t`.

use core::arch::aarch64::*;

use crate::simd::lanes::{Lanes, lane_fns};

/// Four f32 lanes. Made only inside `neon` functions (see [`Lanes`]).
#[derive(Clone, Copy)]
pub(crate) struct F32x4(float32x4_t);

impl Lanes for F32x4 {
    const N: usize = 4;
    type Mask = uint32x4_t;

    lane_fns! {
        add(o) => vaddq_f32;
        sub(o) => vsubq_f32;
        mul(o) => vmulq_f32;
        div(o) => vdivq_f32;
        mul_add(b, c) => |a, b, c| vfmaq_f32(c, a, b);
        min(o) => vminq_f32;
        max(o) => vmaxq_f32;
        abs() => vabsq_f32;
        copysign(s) => |v, s| vbslq_f32(vdupq_n_u32(0x8000_0000), s, v);
        trunc() => vrndq_f32;
        round_even() => vrndnq_f32;
        pow2i() => |v| vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(v), vdupq_n_s32(127))));
        swap_pairs() => vrev64q_f32;
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: neon functions only (see the type).
        Self(unsafe { vdupq_n_f32(v) })
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..4];
        // SAFETY: `src` holds 4 f32; neon functions only (see the type).
        Self(unsafe { vld1q_f32(src.as_ptr()) })
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..4];
        // SAFETY: `dst` holds 4 f32; neon functions only (see the type).
        unsafe { vst1q_f32(dst.as_mut_ptr(), self.0) }
    }

    #[inline(always)]
    fn load_f16(src: &[u16]) -> Self {
        let src = &src[..4];
        // SAFETY: `src` holds 4 u16; neon functions only (see the type). The f16 -> f32
        // conversion needs only NEON (no FEAT_FP16, which a Cortex-A72 lacks).
        Self(unsafe { vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src.as_ptr()))) })
    }

    #[inline(always)]
    fn f16_to_f32(bits: u16) -> f32 {
        // SAFETY: neon functions only (see the type); as in `load_f16`, no FEAT_FP16 needed.
        unsafe { vgetq_lane_f32::<0>(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits)))) }
    }

    #[inline(always)]
    fn f32_to_f16(x: f32) -> u16 {
        // SAFETY: neon functions only (see the type); rounds to nearest even, as `store_f16`.
        unsafe { vget_lane_u16::<0>(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(x)))) }
    }

    #[inline(always)]
    fn store_f16(self, dst: &mut [u16]) {
        let dst = &mut dst[..4];
        // SAFETY: `dst` holds 4 u16; neon functions only (see the type). Rounds to nearest
        // even, the default FPCR mode.
        unsafe { vst1_u16(dst.as_mut_ptr(), vreinterpret_u16_f16(vcvt_f16_f32(self.0))) }
    }

    #[inline(always)]
    fn load_i8(src: &[i8]) -> Self {
        let bytes: [i8; 4] = src[..4].try_into().expect("4 bytes");
        let word = u32::from_le_bytes(bytes.map(|b| b as u8));
        // SAFETY: neon functions only (see the type).
        Self(unsafe {
            let wide = vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(word)))));
            vcvtq_f32_s32(wide)
        })
    }

    #[inline(always)]
    fn store_i8(self, dst: &mut [i8]) {
        // SAFETY: neon functions only (see the type). The lanes are integers in i8 range, so
        // the conversion and both narrowings are exact.
        let word = unsafe {
            let h = vmovn_s32(vcvtq_s32_f32(self.0));
            vget_lane_u32::<0>(vreinterpret_u32_s8(vmovn_s16(vcombine_s16(h, h))))
        };
        dst[..4].copy_from_slice(&word.to_le_bytes().map(|b| b as i8));
    }

    #[inline(always)]
    fn load_dup_pairs(src: &[f32]) -> Self {
        let src = &src[..2];
        // SAFETY: `src` holds 2 f32; neon functions only (see the type).
        Self(unsafe {
            let v = vld1_f32(src.as_ptr());
            let q = vcombine_f32(v, v);
            vzip1q_f32(q, q)
        })
    }

    #[inline(always)]
    fn lt(self, o: Self) -> uint32x4_t {
        // SAFETY: neon functions only (see the type).
        unsafe { vcltq_f32(self.0, o.0) }
    }

    #[inline(always)]
    fn ge(self, o: Self) -> uint32x4_t {
        // SAFETY: neon functions only (see the type).
        unsafe { vcgeq_f32(self.0, o.0) }
    }

    #[inline(always)]
    fn select(m: uint32x4_t, a: Self, b: Self) -> Self {
        // SAFETY: neon functions only (see the type).
        Self(unsafe { vbslq_f32(m, a.0, b.0) })
    }

    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        // SAFETY: neon functions only (see the type).
        unsafe { vaddvq_f32(self.0) }
    }

    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: neon functions only (see the type).
        unsafe { vmaxvq_f32(self.0) }
    }
}
