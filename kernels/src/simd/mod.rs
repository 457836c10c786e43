//! Code shared by the SIMD paths: the [`lanes::Lanes`] vector abstraction, vector math
//! (exp, erf, tanh), the kernels written once against it (norms, activations, rotary
//! embedding, f16 and attention loops, q8 quantization), and the loop nest of the quantized
//! matmuls ([`tiles`]). Each ISA module instantiates these inside its own
//! `#[target_feature]` functions and adds the integer dot products, which differ per ISA.

pub(crate) mod lanes;
pub(crate) mod math;
pub(crate) mod ops;
pub(crate) mod quant;
pub(crate) mod tiles;

/// Defines table entries: safe `fn`s whose bodies run with `$features` enabled.
///
/// Each `fn name(args) body` becomes `pub(crate) fn name(args)` calling a nested
/// `#[target_feature(enable = $features)]` function with that body.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! entries {
    ($features:literal; $( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block )*) => {$(
        $(#[$meta])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[target_feature(enable = $features)]
            fn with_features($($arg: $ty),*) $body
            // SAFETY: entries are reachable only through their ISA's `Kernels` table, which
            // `Kernels::get` hands out only when the CPU has `$features` (and whose
            // `Kernels::get_unchecked` makes the caller promise them).
            unsafe { with_features($($arg),*) }
        }
    )*};
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use entries;
