//! One table of kernel function pointers per instruction-set path, chosen once at run time.

use crate::layout::{BlockQ8_0, TileQ4_0, TileQ4_1, TileQ8_0};
use crate::scalar;
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// An instruction-set path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable reference code.
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// aarch64 baseline NEON (Cortex-A72, Raspberry Pi 4).
    Neon,
    /// aarch64 NEON with SDOT (Cortex-A76 / Pi 5, Cortex-A78AE / Jetson Orin).
    NeonDotprod,
    /// aarch64 NEON with SDOT and SMMLA (Armv8.6+ cores).
    NeonI8mm,
}

impl Isa {
    /// Every path, in order of preference from slowest to fastest.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::Neon, Isa::NeonDotprod, Isa::NeonI8mm];

    /// The short name used by `EDGELM_ISA` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "dotprod",
            Isa::NeonI8mm => "i8mm",
        }
    }

    /// Parses a short name (see [`Isa::name`]).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Quantized matrix product: `out[t][r] = Σ_k W[r][k] · x[t][k]`.
pub type MatmulQuantFn<T> = fn(w: Tiled<'_, T>, x: &[BlockQ8Act], out: OutCols<'_>);
/// Float matrix product; `w` is `out.width()` rows of `x.len() / out.n()` values.
pub type MatmulFloatFn<W> = fn(w: &[W], x: &[f32], out: OutCols<'_>);
/// Layer normalization with weight and bias: `(x, w, b, eps, out)`.
pub type LayerNormFn = fn(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]);

/// The kernels of one instruction-set path. Every entry has the semantics of the
/// function of the same name in [`crate::scalar`].
#[derive(Debug)]
pub struct Kernels {
    /// The path these kernels use.
    pub isa: Isa,
    /// See [`scalar::quantize_q8_act`].
    pub quantize_q8_act: fn(x: &[f32], out: &mut [BlockQ8Act]),
    /// See [`scalar::matmul_q8_0`].
    pub matmul_q8_0: MatmulQuantFn<TileQ8_0>,
    /// See [`scalar::matmul_q4_0`].
    pub matmul_q4_0: MatmulQuantFn<TileQ4_0>,
    /// See [`scalar::matmul_q4_1`].
    pub matmul_q4_1: MatmulQuantFn<TileQ4_1>,
    /// See [`scalar::matmul_f16`].
    pub matmul_f16: MatmulFloatFn<u16>,
    /// See [`scalar::matmul_f32`].
    pub matmul_f32: MatmulFloatFn<f32>,
    /// See [`scalar::rms_norm`].
    pub rms_norm: fn(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]),
    /// See [`scalar::layer_norm`].
    pub layer_norm: LayerNormFn,
    /// See [`scalar::softmax`].
    pub softmax: fn(x: &mut [f32]),
    /// See [`scalar::swiglu`].
    pub swiglu: fn(gate: &[f32], up: &[f32], out: &mut [f32]),
    /// See [`scalar::gelu_erf`].
    pub gelu_erf: fn(x: &mut [f32]),
    /// See [`scalar::gelu_tanh`].
    pub gelu_tanh: fn(x: &mut [f32]),
    /// See [`scalar::add`].
    pub add: fn(dst: &mut [f32], src: &[f32]),
    /// See [`scalar::mul`].
    pub mul: fn(dst: &mut [f32], src: &[f32]),
    /// See [`scalar::rope_neox`].
    pub rope_neox: fn(x: &mut [f32], cos: &[f32], sin: &[f32]),
    /// See [`scalar::rope_interleaved`].
    pub rope_interleaved: fn(x: &mut [f32], cos: &[f32], sin: &[f32]),
    /// See [`scalar::f32_to_f16`].
    pub f32_to_f16: fn(src: &[f32], dst: &mut [u16]),
    /// See [`scalar::attn_scores_f16`].
    pub attn_scores_f16: fn(q: &[f32], keys: &[u16], scale: f32, out: &mut [f32]),
    /// See [`scalar::attn_values_f16`].
    pub attn_values_f16: fn(p: &[f32], values: &[u16], out: &mut [f32]),
    /// See [`scalar::quantize_q8_kv`].
    pub quantize_q8_kv: fn(src: &[f32], dst: &mut [BlockQ8_0]),
    /// See [`scalar::attn_scores_q8`].
    pub attn_scores_q8: fn(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]),
    /// See [`scalar::attn_values_q8`].
    pub attn_values_q8: fn(p: &[f32], values: &[BlockQ8_0], out: &mut [f32]),
}

/// The scalar reference table.
pub static SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    quantize_q8_act: scalar::quantize_q8_act,
    matmul_q8_0: scalar::matmul_q8_0,
    matmul_q4_0: scalar::matmul_q4_0,
    matmul_q4_1: scalar::matmul_q4_1,
    matmul_f16: scalar::matmul_f16,
    matmul_f32: scalar::matmul_f32,
    rms_norm: scalar::rms_norm,
    layer_norm: scalar::layer_norm,
    softmax: scalar::softmax,
    swiglu: scalar::swiglu,
    gelu_erf: scalar::gelu_erf,
    gelu_tanh: scalar::gelu_tanh,
    add: scalar::add,
    mul: scalar::mul,
    rope_neox: scalar::rope_neox,
    rope_interleaved: scalar::rope_interleaved,
    f32_to_f16: scalar::f32_to_f16,
    attn_scores_f16: scalar::attn_scores_f16,
    attn_values_f16: scalar::attn_values_f16,
    quantize_q8_kv: scalar::quantize_q8_kv,
    attn_scores_q8: scalar::attn_scores_q8,
    attn_values_q8: scalar::attn_values_q8,
};

impl Kernels {
    /// The table for `isa`, or `None` if this CPU (or this build's target) cannot run it.
    #[cfg(feature = "std")]
    pub fn get(isa: Isa) -> Option<&'static Kernels> {
        match isa {
            Isa::Scalar => Some(&SCALAR),
            _ => None,
        }
    }

    /// The fastest table this CPU can run.
    #[cfg(feature = "std")]
    pub fn detect() -> &'static Kernels {
        Isa::ALL
            .into_iter()
            .rev()
            .find_map(Kernels::get)
            .unwrap_or(&SCALAR)
    }
}
