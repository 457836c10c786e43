//! Vectorised `exp`, `erf` and `tanh` (no libm in SIMD code), with their error against libm.
//!
//! The stated error bounds are asserted by [`tests::check`], run on every SIMD path.

use super::lanes::Lanes;

/// Below this `e^x` is under half the smallest subnormal: `exp` returns 0.
const EXP_LO: f32 = -104.0;
/// Above this `e^x` overflows to +∞ (`ln(f32::MAX)` is 88.7228).
const EXP_HI: f32 = 88.73;

/// `e^x`, within 2 ulp of `libm::expf` for normal results (1 ulp measured); subnormal results within one
/// subnormal step; +∞ above 88.7228 and 0 below -104 (and for -∞).
///
/// Cody–Waite: `x = n ln2 + r` with `n = round(x / ln2)`, `|r| <= ln2 / 2`, `ln2` split in
/// two parts so `r` is exact; `e^r` by the degree-6 polynomial of Cephes' `expf`
/// (relative error ≈ 1e-7 on that range); times `2^n` as `2^(n/2) · 2^(n - n/2)`, two
/// normal factors, so that overflow and subnormal results round once, as libm's do.
#[inline(always)]
pub(crate) fn exp<L: Lanes>(x: L) -> L {
    let (n, er) = exp_reduced(x.min(L::splat(EXP_HI)).max(L::splat(EXP_LO)));
    // n is in [-150, 128], so both halves are in [-75, 64]: normal powers of two.
    let n1 = n.mul(L::splat(0.5)).trunc();
    let scaled = er.mul(n1.pow2i()).mul(n.sub(n1).pow2i());
    L::select(x.lt(L::splat(EXP_LO)), L::zero(), scaled)
}

/// The shared core of [`exp`] and [`exp_nonpositive`] for an argument already clamped to
/// their range: `(n, e^r)` with `x = n ln2 + r` (see [`exp`]), so `e^x = e^r · 2^n`.
#[inline(always)]
fn exp_reduced<L: Lanes>(x: L) -> (L, L) {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let n = x.mul(L::splat(core::f32::consts::LOG2_E)).round_even();
    let r = n.mul_add(L::splat(-LN2_HI), x);
    let r = n.mul_add(L::splat(-LN2_LO), r);
    let mut p = L::splat(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = p.mul_add(r, L::splat(c));
    }
    (n, p.mul_add(r.mul(r), r).add(L::splat(1.0)))
}

/// `e^x` for arguments of at most 0 (softmax after the max, erf's `e^{-x²}`): [`exp`]'s value
/// wherever that is a normal number (`x >= -87.33`: the same polynomial times one power of
/// two, exact there); 0 below, where [`exp`] gives a subnormal (under 1.2e-38) or 0. About a
/// third fewer instructions than [`exp`]: no split scaling. Arguments above 0 are not
/// supported.
#[inline(always)]
pub(crate) fn exp_nonpositive<L: Lanes>(x: L) -> L {
    let (n, er) = exp_reduced(x.max(L::splat(EXP_NORMAL_LO)));
    // n is in [-126, 0]: one normal power of two.
    L::select(x.lt(L::splat(EXP_NORMAL_LO)), L::zero(), er.mul(n.pow2i()))
}

/// The least argument of [`exp_nonpositive`]: `e^x` is normal from here up (`n = -126` and
/// `r > 0` in the reduction).
const EXP_NORMAL_LO: f32 = -87.33;

/// `erf(x)`, absolute error below 6e-7 (4.8e-7 measured: Abramowitz & Stegun 7.1.26, whose
/// own error is 1.5e-7, plus f32 rounding in the polynomial): `erf(|x|) = 1 - t·P(t)·e^{-x²}`, `t = 1 / (1 + p|x|)`.
#[inline(always)]
pub(crate) fn erf<L: Lanes>(x: L) -> L {
    let ax = x.abs();
    let t = L::splat(1.0).div(L::splat(0.327_591_1).mul_add(ax, L::splat(1.0)));
    let mut p = L::splat(1.061_405_4);
    for c in [-1.453_152_1, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
        p = p.mul_add(t, L::splat(c));
    }
    let e = exp_nonpositive(ax.mul(ax).mul(L::splat(-1.0)));
    let y = L::splat(1.0).sub(p.mul(t).mul(e));
    y.copysign(x)
}

/// `tanh(x)` with absolute error below 3e-7 (1.2e-7 measured; relative error is larger near 0, so use it
/// only where it is added to 1, as GELU does): `1 - 2 / (e^{2|x|} + 1)` with the sign of `x`.
#[inline(always)]
pub(crate) fn tanh_abs<L: Lanes>(x: L) -> L {
    let e = exp(x.abs().add(x.abs()));
    let y = L::splat(1.0).sub(L::splat(2.0).div(e.add(L::splat(1.0))));
    y.copysign(x)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::lanes::MAX_LANES;
    use super::*;

    /// `f` over `xs`, `L::N` lanes at a time (a last partial vector padded with zeros).
    fn eval<L: Lanes>(xs: &[f32], f: impl Fn(L) -> L) -> std::vec::Vec<f32> {
        let mut out = std::vec::Vec::with_capacity(xs.len());
        for x in xs.chunks(L::N) {
            let mut lanes = [0.0; MAX_LANES];
            lanes[..x.len()].copy_from_slice(x);
            f(L::load(&lanes)).store(&mut lanes);
            out.extend_from_slice(&lanes[..x.len()]);
        }
        out
    }

    /// `count` points evenly over `[lo, hi]`.
    fn sweep(lo: f32, hi: f32, count: usize) -> std::vec::Vec<f32> {
        (0..count)
            .map(|i| lo + (hi - lo) * i as f32 / (count - 1) as f32)
            .collect()
    }

    /// Checks the stated error bounds of `exp`, `erf` and `tanh_abs` against libm; call it
    /// inside a function with `L`'s target features. Returns the worst errors seen
    /// (exp in ulp, erf and tanh absolute).
    pub(crate) fn check<L: Lanes>() -> (f64, f64, f64) {
        let xs = sweep(-87.3, 88.72, 400_000);
        let got = eval::<L>(&xs, exp);
        let mut exp_ulp = 0.0f64;
        for (&x, &g) in xs.iter().zip(&got) {
            let want = libm::expf(x);
            let ulp = f64::from(f32::from_bits(want.to_bits() + 1) - want);
            exp_ulp = exp_ulp.max((f64::from(g) - f64::from(want)).abs() / ulp);
        }
        assert!(exp_ulp <= 2.0, "exp: {exp_ulp} ulp");
        let tiny = sweep(-103.9, -87.4, 8_000);
        for (&x, &g) in tiny.iter().zip(&eval::<L>(&tiny, exp)) {
            assert!(
                (g - libm::expf(x)).abs() <= 1.5e-45,
                "exp({x}) = {g}, libm {}",
                libm::expf(x)
            );
        }
        let edges = [
            f32::NEG_INFINITY,
            -1e6,
            -104.5,
            88.8,
            1e6,
            f32::INFINITY,
            0.0,
            -0.0,
        ];
        assert_eq!(
            eval::<L>(&edges, exp),
            [
                0.0,
                0.0,
                0.0,
                f32::INFINITY,
                f32::INFINITY,
                f32::INFINITY,
                1.0,
                1.0
            ]
        );

        // exp_nonpositive: exp's very value where that is normal, 0 below.
        let xs = sweep(-87.33, 0.0, 200_000);
        assert_eq!(eval::<L>(&xs, exp_nonpositive), eval::<L>(&xs, exp));
        let below = [
            -87.34,
            -100.0,
            -1e6,
            f32::NEG_INFINITY,
            -87.5,
            -90.0,
            -120.0,
            -200.0,
        ];
        assert_eq!(eval::<L>(&below, exp_nonpositive), [0.0; 8]);

        let xs = sweep(-6.0, 6.0, 400_000);
        let worst = |f: fn(L) -> L, reference: fn(f32) -> f32| {
            let got = eval::<L>(&xs, f);
            xs.iter()
                .zip(&got)
                .map(|(&x, &g)| f64::from((g - reference(x)).abs()))
                .fold(0.0, f64::max)
        };
        let (erf_abs, tanh_abs) = (worst(erf, libm::erff), worst(tanh_abs, libm::tanhf));
        assert!(erf_abs <= 6e-7, "erf: absolute error {erf_abs:e}");
        assert!(tanh_abs <= 3e-7, "tanh: absolute error {tanh_abs:e}");
        (exp_ulp, erf_abs, tanh_abs)
    }
}
