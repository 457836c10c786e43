//! SwiGLU on NEON, for all three aarch64 paths: bit-exact with the generic kernel
//! ([`crate::simd::ops::swiglu`] over [`crate::simd::math::exp`]) for every input, in about
//! two thirds of its instructions. The same Cody–Waite reduction and polynomial, rewritten:
//!
//! - worked on `g` instead of `x = -g` (`n = -m` with `m = round(g log2 e)`, `r = -s`; every
//!   step negates exactly, so Horner's `fma(p, r, c)` becomes `fms(c, p, s)`, no negation);
//! - `m` by the shifter constant `1.5 · 2^23` (ties to even, as `frintn`), whose low bits
//!   give `2^(n-1)` by a shift and an integer subtraction, instead of `exp`'s two powers of
//!   two (conversions, `trunc`, a halving) and the select of its underflow;
//! - `1 + e^-g` as `fma(er · 2^(n-1), 2, 1)`: the one rounding of `exp`'s exact product
//!   `er · 2^n`, overflow (to ∞, as `exp`) included. The clamps of `g` keep `n - 1` in
//!   `-126..=127`; below `x = -86.6` `e^x < 2^-124`, so `1 + e^x` rounds to 1 either way.

use core::arch::aarch64::*;

/// Values per loop step (four registers).
const STEP: usize = 16;

/// See [`crate::scalar::swiglu`].
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == out.len() && up.len() == out.len(),
        "operand lengths differ"
    );
    let (outs, out_tail) = out.as_chunks_mut::<STEP>();
    let (gs, g_tail) = gate.as_chunks::<STEP>();
    let (us, u_tail) = up.as_chunks::<STEP>();
    for ((o, g), u) in outs.iter_mut().zip(gs).zip(us) {
        silu_mul(g, u, o);
    }
    if !out_tail.is_empty() {
        let n = out_tail.len();
        let (mut g, mut u, mut o) = ([0.0; STEP], [0.0; STEP], [0.0; STEP]);
        g[..n].copy_from_slice(g_tail);
        u[..n].copy_from_slice(u_tail);
        silu_mul(&g, &u, &mut o);
        out_tail.copy_from_slice(&o[..n]);
    }
}

/// `o = g / (1 + e^-g) · u` for one step.
#[inline(always)]
fn silu_mul(g: &[f32; STEP], u: &[f32; STEP], o: &mut [f32; STEP]) {
    // SAFETY: each array holds 16 f32, the four registers of an x4 load or store; NEON is
    // enabled in the caller, into which this inlines.
    unsafe {
        let (g, u) = (vld1q_f32_x4(g.as_ptr()), vld1q_f32_x4(u.as_ptr()));
        let o4 = float32x4x4_t(
            silu_mul4(g.0, u.0),
            silu_mul4(g.1, u.1),
            silu_mul4(g.2, u.2),
            silu_mul4(g.3, u.3),
        );
        vst1q_f32_x4(o.as_mut_ptr(), o4);
    }
}

/// `g / (1 + e^-g) · u` on four lanes (see the module).
#[inline(always)]
fn silu_mul4(g: float32x4_t, u: float32x4_t) -> float32x4_t {
    const SHIFTER: f32 = 12_582_912.0; // 1.5 · 2^23
    // SAFETY: register arithmetic only; NEON is enabled in the caller.
    unsafe {
        // x = -g clamped to exp's upper bound 88.73 (n <= 128) and to -86.6 (n >= -125).
        let gc = vminq_f32(vmaxq_f32(g, vdupq_n_f32(-88.73)), vdupq_n_f32(86.6));
        let z = vaddq_f32(vmulq_n_f32(gc, core::f32::consts::LOG2_E), vdupq_n_f32(SHIFTER));
        let m = vsubq_f32(z, vdupq_n_f32(SHIFTER));
        // 2^(n-1) = 2^(-m-1): biased exponent 126 - m; z's low bits are m (mod 2^9).
        let k = vsubq_u32(
            vdupq_n_u32(126 << 23),
            vshlq_n_u32::<23>(vreinterpretq_u32_f32(z)),
        );
        let s = vfmsq_f32(gc, m, vdupq_n_f32(0.693_359_4));
        let s = vfmsq_f32(s, m, vdupq_n_f32(-2.121_944_4e-4));
        let mut p = vdupq_n_f32(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = vfmsq_f32(vdupq_n_f32(c), p, s);
        }
        // e^r = 1 + (p r² + r) = 1 - (s - p s²).
        let er = vsubq_f32(vdupq_n_f32(1.0), vfmsq_f32(s, p, vmulq_f32(s, s)));
        let half_e = vmulq_f32(er, vreinterpretq_f32_u32(k));
        let denom = vfmaq_n_f32(vdupq_n_f32(1.0), half_e, 2.0);
        vmulq_f32(vdivq_f32(g, denom), u)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lanes::F32x4;
    use crate::simd::ops;

    /// Every gate the generic kernel distinguishes: a fine sweep over exp's whole range, the
    /// clamps and overflow, both infinities, NaN, and lengths with a partial last step.
    #[test]
    fn swiglu_is_bit_exact_with_the_generic_kernel() {
        let mut g: std::vec::Vec<f32> = (-2_000_000..=2_000_000).map(|i| i as f32 * 5e-5).collect();
        g.extend([
            -88.73,
            -88.7228,
            -88.72,
            -88.376,
            -88.3,
            86.6,
            86.59,
            86.99,
            87.33,
            103.9,
            104.5,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
            1e-40,
            -1e-40,
        ]);
        let u: std::vec::Vec<f32> = (0..g.len()).map(|i| [1.5, -0.75, 1.0, 3.0][i % 4]).collect();
        #[target_feature(enable = "neon")]
        fn both(g: &[f32], u: &[f32]) -> (std::vec::Vec<f32>, std::vec::Vec<f32>) {
            let (mut want, mut got) = (std::vec![0.0; g.len()], std::vec![0.0; g.len()]);
            ops::swiglu::<F32x4>(g, u, &mut want);
            super::swiglu(g, u, &mut got);
            (want, got)
        }
        for len in [g.len(), g.len() - 1, 21, 16, 5, 0] {
            let (g, u) = (&g[g.len() - len..], &u[..len]);
            // SAFETY: NEON is part of every aarch64 target this crate builds for.
            let (want, got) = unsafe { both(g, u) };
            for (i, (w, o)) in want.iter().zip(&got).enumerate() {
                let same = w.to_bits() == o.to_bits() || (w.is_nan() && o.is_nan());
                assert!(same, "swiglu({}) · {}: {o}, generic {w}", g[i], u[i]);
            }
        }
    }
}
