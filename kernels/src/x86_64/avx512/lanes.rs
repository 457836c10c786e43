//! [`Lanes`] for AVX-512: sixteen f32 lanes in a `__m512`.

use core::arch::x86_64::*;

use crate::simd::lanes::{Lanes, lane_fns};
use crate::x86_64::avx2::lanes::F32x8;

/// Sixteen f32 lanes. Made only inside functions compiled with the AVX-512 path's features
/// (a superset of the AVX2 path's; see [`Lanes`]).
#[derive(Clone, Copy)]
pub(crate) struct F32x16(__m512);

/// The sign bit of an f32.
const SIGN: i32 = i32::MIN;

/// The bits of `v` as integer lanes.
#[inline(always)]
fn bits(v: __m512) -> __m512i {
    // SAFETY: a reinterpretation, no instruction; avx512 functions only (see the type).
    unsafe { _mm512_castps_si512(v) }
}

impl Lanes for F32x16 {
    const N: usize = 16;
    type Mask = __mmask16;

    lane_fns! {
        add(o) => _mm512_add_ps;
        sub(o) => _mm512_sub_ps;
        mul(o) => _mm512_mul_ps;
        div(o) => _mm512_div_ps;
        mul_add(b, c) => _mm512_fmadd_ps;
        min(o) => _mm512_min_ps;
        max(o) => _mm512_max_ps;
        abs() => _mm512_abs_ps;
        copysign(s) => |v, s| _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_andnot_si512(_mm512_set1_epi32(SIGN), bits(v)),
            _mm512_and_si512(_mm512_set1_epi32(SIGN), bits(s))
        ));
        trunc() => _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>;
        round_even() => _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>;
        pow2i() => |v| _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(v),
            _mm512_set1_epi32(127)
        )));
        swap_pairs() => _mm512_permute_ps::<0b10_11_00_01>;
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: avx512 functions only (see the type).
        Self(unsafe { _mm512_set1_ps(v) })
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..16];
        // SAFETY: `src` holds 16 f32; avx512 functions only (see the type).
        Self(unsafe { _mm512_loadu_ps(src.as_ptr()) })
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..16];
        // SAFETY: `dst` holds 16 f32; avx512 functions only (see the type).
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), self.0) }
    }

    #[inline(always)]
    fn load_f16(src: &[u16]) -> Self {
        let src = &src[..16];
        // SAFETY: `src` holds 16 u16 (32 bytes); avx512 functions only (see the type).
        Self(unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(src.as_ptr().cast())) })
    }

    #[inline(always)]
    fn f16_to_f32(bits: u16) -> f32 {
        F32x8::f16_to_f32(bits)
    }

    #[inline(always)]
    fn f32_to_f16(x: f32) -> u16 {
        F32x8::f32_to_f16(x)
    }

    #[inline(always)]
    fn store_f16(self, dst: &mut [u16]) {
        let dst = &mut dst[..16];
        // SAFETY: `dst` holds 16 u16 (32 bytes); avx512 functions only (see the type).
        unsafe {
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0);
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), h);
        }
    }

    #[inline(always)]
    fn load_i8(src: &[i8]) -> Self {
        let src = &src[..16];
        // SAFETY: `src` holds 16 bytes; avx512 functions only (see the type).
        Self(unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(src.as_ptr().cast()))) })
    }

    #[inline(always)]
    fn store_i8(self, dst: &mut [i8]) {
        let dst = &mut dst[..16];
        // SAFETY: `dst` holds 16 bytes; avx512 functions only (see the type). The lanes are
        // integers in i8 range, so the conversion and the saturating narrowing are exact.
        unsafe {
            _mm_storeu_si128(
                dst.as_mut_ptr().cast(),
                _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(self.0)),
            )
        }
    }

    #[inline(always)]
    fn load_dup_pairs(src: &[f32]) -> Self {
        let src = &src[..8];
        // SAFETY: `src` holds 8 f32; avx512 functions only (see the type).
        Self(unsafe {
            let v = _mm512_castps256_ps512(_mm256_loadu_ps(src.as_ptr()));
            let idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            _mm512_permutexvar_ps(idx, v)
        })
    }

    #[inline(always)]
    fn lt(self, o: Self) -> __mmask16 {
        // SAFETY: avx512 functions only (see the type).
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) }
    }

    #[inline(always)]
    fn ge(self, o: Self) -> __mmask16 {
        // SAFETY: avx512 functions only (see the type).
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(self.0, o.0) }
    }

    #[inline(always)]
    fn select(m: __mmask16, a: Self, b: Self) -> Self {
        // SAFETY: avx512 functions only (see the type).
        Self(unsafe { _mm512_mask_blend_ps(m, b.0, a.0) })
    }

    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        let (lo, hi) = self.halves();
        lo.add(hi).reduce_sum()
    }

    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let (lo, hi) = self.halves();
        lo.max(hi).reduce_max()
    }
}

impl F32x16 {
    /// The low and the high eight lanes.
    #[inline(always)]
    fn halves(self) -> (F32x8, F32x8) {
        // SAFETY: avx512 functions only (see the type).
        unsafe {
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0));
            (
                F32x8::from(_mm512_castps512_ps256(self.0)),
                F32x8::from(_mm256_castpd_ps(hi)),
            )
        }
    }
}
