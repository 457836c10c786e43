//! The f32 vector the generic SIMD kernels are written against.

/// Most lanes any [`Lanes`] type has (AVX-512: 16). Sizes the stack buffers for partial vectors.
pub(crate) const MAX_LANES: usize = 16;

/// A vector of `N` f32 lanes and the operations the generic kernels of [`crate::simd`] use.
///
/// Every method is `#[inline(always)]` and wraps one or a few intrinsics of its instruction
/// set in an `unsafe` block. That is sound because of this module's rule: **a value of an
/// implementing type is only ever made inside a function compiled with that type's target
/// features** (the `#[target_feature]` entry points of its ISA module, which the dispatcher
/// hands out only on CPUs that have the features). The methods inline into those functions.
///
/// Slice arguments must hold at least `N` elements (checked); the methods touch only the first `N`.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    /// Result of a lane-wise comparison.
    type Mask: Copy;

    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// Loads `src[..N]`.
    fn load(src: &[f32]) -> Self;
    /// Stores into `dst[..N]`.
    fn store(self, dst: &mut [f32]);
    /// Loads `src[..N]`, f16 bits, widened to f32.
    fn load_f16(src: &[u16]) -> Self;
    /// Stores into `dst[..N]` as f16 bits, rounded to nearest even.
    fn store_f16(self, dst: &mut [u16]);
    /// One f16 (bits) widened to f32 by the vector unit (`half`'s conversion is the software
    /// one in this `no_std` crate: a score kernel doing it per block spent a quarter of its
    /// time there).
    fn f16_to_f32(bits: u16) -> f32;
    /// One f32 narrowed to f16 bits by the vector unit, rounded to nearest even (as `half`).
    fn f32_to_f16(x: f32) -> u16;
    /// Loads `src[..N]`, int8, converted to f32.
    fn load_i8(src: &[i8]) -> Self;
    /// Stores lanes holding integers in `-128..=127` into `dst[..N]`.
    fn store_i8(self, dst: &mut [i8]);
    /// Loads `src[..N / 2]` with every value twice: `[s0, s0, s1, s1, ...]`.
    fn load_dup_pairs(src: &[f32]) -> Self;
    /// Swaps neighbouring lanes: `[a1, a0, a3, a2, ...]`.
    fn swap_pairs(self) -> Self;

    /// `self + o`.
    fn add(self, o: Self) -> Self;
    /// `self - o`.
    fn sub(self, o: Self) -> Self;
    /// `self * o`.
    fn mul(self, o: Self) -> Self;
    /// `self / o`.
    fn div(self, o: Self) -> Self;
    /// `self * b + c`, fused (one rounding).
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, o: Self) -> Self;
    /// Lane-wise maximum.
    fn max(self, o: Self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// `|self|` with the sign of `sign`.
    fn copysign(self, sign: Self) -> Self;
    /// Rounds toward zero.
    fn trunc(self) -> Self;
    /// Rounds to the nearest integer, ties to even.
    fn round_even(self) -> Self;
    /// `2^self` for lanes holding integers in `-126..=127`.
    fn pow2i(self) -> Self;
    /// Lanes where `self < o`.
    fn lt(self, o: Self) -> Self::Mask;
    /// Lanes where `self >= o`.
    fn ge(self, o: Self) -> Self::Mask;
    /// `if m { a } else { b }` per lane.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// Sum of the lanes (in a fixed pairwise order).
    fn reduce_sum(self) -> f32;
    /// Largest lane.
    fn reduce_max(self) -> f32;

    /// All lanes zero.
    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }

    /// Rounds to the nearest integer, ties away from zero: exactly `libm::roundf`.
    #[inline(always)]
    fn round_half_away(self) -> Self {
        // `self - t` is exact (both share the exponent range), so the test is exact.
        let t = self.trunc();
        let frac = self.sub(t).abs();
        let step = Self::select(
            frac.ge(Self::splat(0.5)),
            Self::splat(1.0).copysign(self),
            Self::zero(),
        );
        t.add(step)
    }
}

/// Implements [`Lanes`] methods that apply one intrinsic (or a closure over intrinsics) to
/// the registers of `self` and the arguments, in a type `Self(register)`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! lane_fns {
    ($($name:ident($($arg:ident),*) => $intrinsic:expr;)*) => {$(
        #[inline(always)]
        fn $name(self, $($arg: Self),*) -> Self {
            // SAFETY: a value of this type exists only inside functions compiled with its
            // target features (see `Lanes`), into which this method inlines.
            Self(unsafe { $intrinsic(self.0, $($arg.0),*) })
        }
    )*};
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use lane_fns;
