//! [`Lanes`] for AVX2: eight f32 lanes in a `__m256`.

use core::arch::x86_64::*;

use crate::simd::lanes::{Lanes, lane_fns};

/// Eight f32 lanes. Made only inside `avx2,fma,f16c` functions (see [`Lanes`]).
#[derive(Clone, Copy)]
pub(crate) struct F32x8(__m256);

const SIGN: f32 = -0.0;

impl From<__m256> for F32x8 {
    /// Eight lanes from a register; called only inside functions compiled with the AVX2
    /// path's features (see the type).
    #[inline(always)]
    fn from(v: __m256) -> Self {
        Self(v)
    }
}

impl Lanes for F32x8 {
    const N: usize = 8;
    type Mask = __m256;

    lane_fns! {
        add(o) => _mm256_add_ps;
        sub(o) => _mm256_sub_ps;
        mul(o) => _mm256_mul_ps;
        div(o) => _mm256_div_ps;
        mul_add(b, c) => _mm256_fmadd_ps;
        min(o) => _mm256_min_ps;
        max(o) => _mm256_max_ps;
        abs() => |v| _mm256_andnot_ps(_mm256_set1_ps(SIGN), v);
        copysign(s) => |v, s| _mm256_or_ps(
            _mm256_andnot_ps(_mm256_set1_ps(SIGN), v),
            _mm256_and_ps(_mm256_set1_ps(SIGN), s)
        );
        trunc() => _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>;
        round_even() => _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>;
        pow2i() => |v| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(v),
            _mm256_set1_epi32(127)
        )));
        swap_pairs() => _mm256_permute_ps::<0b10_11_00_01>;
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: called only inside avx2 functions (see the type).
        Self(unsafe { _mm256_set1_ps(v) })
    }

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        let src = &src[..8];
        // SAFETY: `src` holds 8 f32; avx2 functions only (see the type).
        Self(unsafe { _mm256_loadu_ps(src.as_ptr()) })
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        let dst = &mut dst[..8];
        // SAFETY: `dst` holds 8 f32; avx2 functions only (see the type).
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), self.0) }
    }

    #[inline(always)]
    fn load_f16(src: &[u16]) -> Self {
        let src = &src[..8];
        // SAFETY: `src` holds 8 u16 (16 bytes); f16c functions only (see the type).
        Self(unsafe { _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().cast())) })
    }

    #[inline(always)]
    fn f16_to_f32(bits: u16) -> f32 {
        // SAFETY: f16c functions only (see the type).
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits)))) }
    }

    #[inline(always)]
    fn f32_to_f16(x: f32) -> u16 {
        // SAFETY: f16c functions only (see the type).
        unsafe { _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x))) as u16 }
    }

    #[inline(always)]
    fn store_f16(self, dst: &mut [u16]) {
        let dst = &mut dst[..8];
        // SAFETY: `dst` holds 8 u16 (16 bytes); f16c functions only (see the type).
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0);
            _mm_storeu_si128(dst.as_mut_ptr().cast(), h);
        }
    }

    #[inline(always)]
    fn load_i8(src: &[i8]) -> Self {
        let src = &src[..8];
        // SAFETY: `src` holds 8 bytes; avx2 functions only (see the type).
        Self(unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(src.as_ptr().cast()))) })
    }

    #[inline(always)]
    fn store_i8(self, dst: &mut [i8]) {
        let dst = &mut dst[..8];
        // SAFETY: `dst` holds 8 bytes; avx2 functions only (see the type). The lanes are
        // integers in i8 range, so the conversion and both saturating packs are exact.
        unsafe {
            let i = _mm256_cvtps_epi32(self.0);
            let w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256::<1>(i));
            _mm_storel_epi64(dst.as_mut_ptr().cast(), _mm_packs_epi16(w, w));
        }
    }

    #[inline(always)]
    fn load_dup_pairs(src: &[f32]) -> Self {
        let src = &src[..4];
        // SAFETY: `src` holds 4 f32; avx2 functions only (see the type).
        Self(unsafe {
            let v = _mm256_castps128_ps256(_mm_loadu_ps(src.as_ptr()));
            _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3))
        })
    }

    #[inline(always)]
    fn lt(self, o: Self) -> __m256 {
        // SAFETY: avx2 functions only (see the type).
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) }
    }

    #[inline(always)]
    fn ge(self, o: Self) -> __m256 {
        // SAFETY: avx2 functions only (see the type).
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(self.0, o.0) }
    }

    #[inline(always)]
    fn select(m: __m256, a: Self, b: Self) -> Self {
        // SAFETY: avx2 functions only (see the type).
        Self(unsafe { _mm256_blendv_ps(b.0, a.0, m) })
    }

    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        // SAFETY: avx2 functions only (see the type).
        unsafe {
            let v = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
            let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
            _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)))
        }
    }

    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: avx2 functions only (see the type).
        unsafe {
            let v = _mm_max_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
            let v = _mm_max_ps(v, _mm_movehl_ps(v, v));
            _mm_cvtss_f32(_mm_max_ss(v, _mm_movehdup_ps(v)))
        }
    }
}
