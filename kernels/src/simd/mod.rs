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

/// Defines `mod generic` (table entries for every kernel written against [`lanes::Lanes`],
/// instantiated with `$lanes` under `$features`) and `const TABLE`, this path's [`Kernels`]
/// table: those entries plus the fields given (the ISA's own kernels).
///
/// [`Kernels`]: crate::Kernels
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! lanes_table {
    ($features:literal, $lanes:ident, $($field:ident: $value:expr),* $(,)?) => {
        /// This path's instances of the kernels written once in [`crate::simd`].
        mod generic {
            use $crate::layout::BlockQ8_0;
            use $crate::simd::{ops, quant};
            use $crate::view::{BlockQ8Act, OutCols};
            type L = super::$lanes;

            $crate::simd::entries! { $features;
                fn quantize_q8_act(x: &[f32], out: &mut [BlockQ8Act]) {
                    quant::quantize_q8_act::<L>(x, out)
                }
                fn matmul_f16(w: &[u16], x: &[f32], out: OutCols<'_>) {
                    ops::matmul_float::<L, u16>(w, x, out)
                }
                fn matmul_f32(w: &[f32], x: &[f32], out: OutCols<'_>) {
                    ops::matmul_float::<L, f32>(w, x, out)
                }
                fn matmul_f32_t(b: &[f32], x: &[f32], out: OutCols<'_>) {
                    ops::matmul_f32_t::<L>(b, x, out)
                }
                fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
                    ops::rms_norm::<L>(x, w, eps, out)
                }
                fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
                    ops::layer_norm::<L>(x, w, b, eps, out)
                }
                fn softmax(x: &mut [f32], scale: f32) {
                    ops::softmax::<L>(x, scale)
                }
                fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
                    ops::swiglu::<L>(gate, up, out)
                }
                fn gelu_erf(x: &mut [f32]) {
                    ops::gelu_erf::<L>(x)
                }
                fn gelu_tanh(x: &mut [f32]) {
                    ops::gelu_tanh::<L>(x)
                }
                fn add(dst: &mut [f32], src: &[f32]) {
                    ops::add::<L>(dst, src)
                }
                fn mul(dst: &mut [f32], src: &[f32]) {
                    ops::mul::<L>(dst, src)
                }
                fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
                    ops::rope_neox::<L>(x, cos, sin)
                }
                fn rope_interleaved(x: &mut [f32], cos: &[f32], sin: &[f32]) {
                    ops::rope_interleaved::<L>(x, cos, sin)
                }
                fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
                    ops::f32_to_f16::<L>(src, dst)
                }
                fn attn_scores_f16(q: &[f32], keys: &[u16], scale: f32, out: &mut [f32]) {
                    ops::attn_scores_f16::<L>(q, keys, scale, out)
                }
                fn attn_values_f16(p: &[f32], values: &[u16], out: &mut [f32]) {
                    ops::attn_values_f16::<L>(p, values, out)
                }
                fn quantize_q8_kv(src: &[f32], dst: &mut [BlockQ8_0]) {
                    quant::quantize_q8_kv::<L>(src, dst)
                }
                fn attn_values_q8(p: &[f32], values: &[BlockQ8_0], out: &mut [f32]) {
                    quant::attn_values_q8::<L>(p, values, out)
                }
            }
        }

        /// This path's table.
        pub(crate) const TABLE: $crate::Kernels = $crate::Kernels {
            $($field: $value,)*
            quantize_q8_act: generic::quantize_q8_act,
            matmul_f16: generic::matmul_f16,
            matmul_f32: generic::matmul_f32,
            matmul_f32_t: generic::matmul_f32_t,
            rms_norm: generic::rms_norm,
            layer_norm: generic::layer_norm,
            softmax: generic::softmax,
            swiglu: generic::swiglu,
            gelu_erf: generic::gelu_erf,
            gelu_tanh: generic::gelu_tanh,
            add: generic::add,
            mul: generic::mul,
            rope_neox: generic::rope_neox,
            rope_interleaved: generic::rope_interleaved,
            f32_to_f16: generic::f32_to_f16,
            attn_scores_f16: generic::attn_scores_f16,
            attn_values_f16: generic::attn_values_f16,
            quantize_q8_kv: generic::quantize_q8_kv,
            attn_values_q8: generic::attn_values_q8,
        };
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use lanes_table;
