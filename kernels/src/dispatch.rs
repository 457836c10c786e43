//! One table of kernel function pointers per instruction-set path, chosen once at run time.

use crate::layout::{
    BlockQ8_0, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K, TileQ8_0,
};
use crate::scalar;
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// An instruction-set path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable reference code.
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// AVX2 plus AVX-VNNI (Alder Lake and later client cores, Zen 5).
    AvxVnni,
    /// AVX2 plus AVX512-VNNI and AVX512VL, used on 256-bit registers (Ice Lake and later
    /// Xeons, Zen 4).
    Avx512Vnni,
    /// [`Isa::Avx512Vnni`] plus AVX512BW, on 512-bit registers where that pays (Ice Lake and
    /// later Xeons, Zen 4): the prompt's q8_0 products, the attention products and GELU.
    Avx512,
    /// aarch64 baseline NEON (Cortex-A72, Raspberry Pi 4).
    Neon,
    /// aarch64 NEON with SDOT (Cortex-A76 / Pi 5, Cortex-A78AE / Jetson Orin).
    NeonDotprod,
    /// aarch64 NEON with SDOT and SMMLA (Armv8.6+ cores).
    NeonI8mm,
}

impl Isa {
    /// Every path, in order of preference from slowest to fastest.
    pub const ALL: [Isa; 8] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::Avx512,
        Isa::Neon,
        Isa::NeonDotprod,
        Isa::NeonI8mm,
    ];

    /// The short name used by `EDGELM_ISA` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Avx512 => "avx512",
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
    /// See [`scalar::matmul_q5_0`].
    pub matmul_q5_0: MatmulQuantFn<TileQ5_0>,
    /// See [`scalar::matmul_q5_1`].
    pub matmul_q5_1: MatmulQuantFn<TileQ5_1>,
    /// See [`scalar::matmul_q4_k`].
    pub matmul_q4_k: MatmulQuantFn<TileQ4K>,
    /// See [`scalar::matmul_q5_k`].
    pub matmul_q5_k: MatmulQuantFn<TileQ5K>,
    /// See [`scalar::matmul_q6_k`].
    pub matmul_q6_k: MatmulQuantFn<TileQ6K>,
    /// See [`scalar::matmul_q3_k`].
    pub matmul_q3_k: MatmulQuantFn<TileQ3K>,
    /// See [`scalar::matmul_q2_k`].
    pub matmul_q2_k: MatmulQuantFn<TileQ2K>,
    /// See [`scalar::matmul_f16`].
    pub matmul_f16: MatmulFloatFn<u16>,
    /// See [`scalar::matmul_f32`].
    pub matmul_f32: MatmulFloatFn<f32>,
    /// See [`scalar::matmul_f32_t`].
    pub matmul_f32_t: MatmulFloatFn<f32>,
    /// See [`scalar::rms_norm`].
    pub rms_norm: fn(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]),
    /// See [`scalar::layer_norm`].
    pub layer_norm: LayerNormFn,
    /// See [`scalar::softmax`].
    pub softmax: fn(x: &mut [f32], scale: f32),
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
    matmul_q5_0: scalar::matmul_q5_0,
    matmul_q5_1: scalar::matmul_q5_1,
    matmul_q4_k: scalar::matmul_q4_k,
    matmul_q5_k: scalar::matmul_q5_k,
    matmul_q6_k: scalar::matmul_q6_k,
    matmul_q3_k: scalar::matmul_q3_k,
    matmul_q2_k: scalar::matmul_q2_k,
    matmul_f16: scalar::matmul_f16,
    matmul_f32: scalar::matmul_f32,
    matmul_f32_t: scalar::matmul_f32_t,
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

impl Isa {
    /// Whether this build contains the path (it is compiled for x86_64 or aarch64 only).
    pub const fn compiled(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni | Isa::Avx512 => cfg!(target_arch = "x86_64"),
            Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm => cfg!(target_arch = "aarch64"),
        }
    }

    /// Whether this build's target guarantees the path's CPU features at compile time
    /// (e.g. NEON on aarch64 Linux, or AVX2 under `-C target-cpu=haswell`).
    pub const fn enabled_at_compile_time(self) -> bool {
        let avx2 = cfg!(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ));
        let neon = cfg!(all(target_arch = "aarch64", target_feature = "neon"));
        let dotprod = neon && cfg!(target_feature = "dotprod");
        let avx512vnni = avx2
            && cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            ));
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2,
            Isa::AvxVnni => avx2 && cfg!(target_feature = "avxvnni"),
            Isa::Avx512Vnni => avx512vnni,
            Isa::Avx512 => avx512vnni && cfg!(target_feature = "avx512bw"),
            Isa::Neon => neon,
            Isa::NeonDotprod => dotprod,
            Isa::NeonI8mm => dotprod && cfg!(target_feature = "i8mm"),
        }
    }

    /// Whether the running CPU has the path's features (without `std`: whether the build
    /// target guarantees them, see [`Isa::enabled_at_compile_time`]).
    pub fn supported(self) -> bool {
        self.enabled_at_compile_time() || self.detected()
    }

    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    fn detected(self) -> bool {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512vnni = avx2 && has!("avx512f") && has!("avx512vl") && has!("avx512vnni");
        match self {
            Isa::Avx2 => avx2,
            Isa::AvxVnni => avx2 && has!("avxvnni"),
            Isa::Avx512Vnni => avx512vnni,
            Isa::Avx512 => avx512vnni && has!("avx512bw"),
            _ => false,
        }
    }

    #[cfg(all(feature = "std", target_arch = "aarch64"))]
    fn detected(self) -> bool {
        use std::arch::is_aarch64_feature_detected as has;
        match self {
            Isa::Neon => has!("neon"),
            Isa::NeonDotprod => has!("neon") && has!("dotprod"),
            Isa::NeonI8mm => has!("neon") && has!("dotprod") && has!("i8mm"),
            _ => false,
        }
    }

    #[cfg(not(all(feature = "std", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    fn detected(self) -> bool {
        false
    }
}

/// A set of instruction-set paths; displays as a comma-separated list of names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IsaSet(u8);

impl IsaSet {
    fn bit(isa: Isa) -> u8 {
        1 << Isa::ALL.iter().position(|&i| i == isa).unwrap_or(0)
    }

    /// Adds `isa`.
    pub fn insert(&mut self, isa: Isa) {
        self.0 |= Self::bit(isa);
    }

    /// Whether `isa` is in the set.
    pub fn contains(self, isa: Isa) -> bool {
        self.0 & Self::bit(isa) != 0
    }

    /// The members, slowest first (the order of [`Isa::ALL`]).
    pub fn iter(self) -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(move |&isa| self.contains(isa))
    }
}

impl FromIterator<Isa> for IsaSet {
    fn from_iter<I: IntoIterator<Item = Isa>>(iter: I) -> Self {
        let mut set = IsaSet::default();
        iter.into_iter().for_each(|isa| set.insert(isa));
        set
    }
}

impl core::fmt::Display for IsaSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, isa) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(isa.name())?;
        }
        Ok(())
    }
}

/// Why [`Kernels::select`] refused a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectError {
    requested: Requested,
    available: IsaSet,
}

/// Longest requested name an error repeats.
const NAME_MAX: usize = 24;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requested {
    /// No path has this name (its first bytes, cut at a character boundary).
    Unknown {
        name: [u8; NAME_MAX],
        len: usize,
        cut: bool,
    },
    /// A known path this CPU or build cannot run.
    Unavailable(Isa),
}

impl SelectError {
    fn unknown(name: &str, available: IsaSet) -> Self {
        let len = name.floor_char_boundary(NAME_MAX);
        let mut buf = [0; NAME_MAX];
        buf[..len].copy_from_slice(&name.as_bytes()[..len]);
        let requested = Requested::Unknown {
            name: buf,
            len,
            cut: len < name.len(),
        };
        SelectError { requested, available }
    }

    /// The known path that was asked for, if the name was a path's.
    pub fn isa(&self) -> Option<Isa> {
        match self.requested {
            Requested::Unavailable(isa) => Some(isa),
            Requested::Unknown { .. } => None,
        }
    }

    /// The paths this CPU and build can run.
    pub fn available(&self) -> IsaSet {
        self.available
    }
}

impl core::fmt::Display for SelectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.requested {
            Requested::Unknown { name, len, cut } => {
                let name = core::str::from_utf8(&name[..*len]).unwrap_or("?");
                let known: IsaSet = Isa::ALL.into_iter().collect();
                let dots = if *cut { "…" } else { "" };
                write!(
                    f,
                    "unknown instruction-set path \"{name}{dots}\" (known: {known}, or auto)"
                )?;
            }
            Requested::Unavailable(isa) => {
                write!(
                    f,
                    "instruction-set path {isa} is not supported by this CPU or build"
                )?;
            }
        }
        write!(f, "; available here: {}", self.available)
    }
}

impl core::error::Error for SelectError {}

impl Kernels {
    /// The table for `isa`, or `None` if this CPU (or this build's target) cannot run it.
    pub fn get(isa: Isa) -> Option<&'static Kernels> {
        // SAFETY: `supported` checked the CPU (or the build target) for the path's features.
        isa.supported()
            .then(|| unsafe { Kernels::get_unchecked(isa) })
            .flatten()
    }

    /// The table for `isa` if this build contains it, without checking the CPU.
    ///
    /// # Safety
    /// The CPU must have the path's features (see [`Isa`]): its kernels execute those
    /// instructions, which is undefined behaviour (usually `SIGILL`) on a CPU without them.
    pub unsafe fn get_unchecked(isa: Isa) -> Option<&'static Kernels> {
        match isa {
            Isa::Scalar => Some(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(&crate::x86_64::avx2::AVX2),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => Some(&crate::x86_64::vnni::avx_vnni::AVX_VNNI),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Some(&crate::x86_64::vnni::avx512_vnni::AVX512_VNNI),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(&crate::x86_64::avx512::AVX512),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Some(&crate::aarch64::neon::NEON),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => Some(&crate::aarch64::dotprod::DOTPROD),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonI8mm => Some(&crate::aarch64::i8mm::I8MM),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The paths this CPU and build can run.
    pub fn available() -> IsaSet {
        Isa::ALL
            .into_iter()
            .filter(|&isa| Kernels::get(isa).is_some())
            .collect()
    }

    /// The fastest table this CPU can run.
    pub fn detect() -> &'static Kernels {
        Isa::ALL
            .into_iter()
            .rev()
            .find_map(Kernels::get)
            .unwrap_or(&SCALAR)
    }

    /// The table named `name` (an [`Isa::name`]; `None`, `""` or `"auto"` mean
    /// [`Kernels::detect`]), as for an `EDGELM_ISA` override. A path this CPU or build
    /// cannot run is an error naming it and the available ones, never an illegal instruction.
    pub fn select(name: Option<&str>) -> Result<&'static Kernels, SelectError> {
        let name = name.map(str::trim).unwrap_or("");
        if name.is_empty() || name == "auto" {
            return Ok(Kernels::detect());
        }
        let isa = Isa::from_name(name).ok_or_else(|| SelectError::unknown(name, Kernels::available()))?;
        Kernels::get(isa).ok_or(SelectError {
            requested: Requested::Unavailable(isa),
            available: Kernels::available(),
        })
    }
}
