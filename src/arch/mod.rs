//! Architectures. Each module declares one network family once: its tensors (packed, GGUF and
//! Hugging Face names, shapes, roles, fused groups) and its block recipe. The converter's plan,
//! its Hugging Face name mapping and the runtime's loader all read these tables, and
//! [`validate`] is the one check of a configuration.
//!
//! Adding an architecture: a module here with an [`ArchDef`], a variant of
//! [`Architecture`](crate::format::meta::Architecture), and its configuration keys in the
//! converter's sources (`tools/src/source/`). `docs/ARCHITECTURE.md` walks through it.

mod bert;
mod gemma3;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;
mod spec;
mod validate;
mod whisper;

pub use spec::{ArchDef, Bias, Dim, Needed, Presence, Recipe, Role, Shape, TensorDef, WHISPER_FFT_BINS};
pub use validate::{ConfigError, validate};

use crate::format::meta::Architecture;

/// The definition of `arch`.
pub fn def(arch: Architecture) -> &'static ArchDef {
    match arch {
        Architecture::Llama => &llama::DEF,
        Architecture::Qwen2 => &qwen2::DEF,
        Architecture::Qwen3 => &qwen3::DEF,
        Architecture::Phi3 => &phi3::DEF,
        Architecture::Gemma3 => &gemma3::DEF,
        Architecture::Bert => &bert::DEF,
        Architecture::Whisper => &whisper::DEF,
    }
}

/// The architecture whose Hugging Face `model_type` is `model_type`.
pub fn from_hf_model_type(model_type: &str) -> Option<Architecture> {
    Architecture::ALL
        .into_iter()
        .find(|&a| def(a).hf_model_types.contains(&model_type))
}

/// The error text for an architecture edgelm does not run.
pub fn unsupported(name: &str) -> String {
    let names = Architecture::ALL.map(|a| a.name()).join(", ");
    format!("unsupported architecture {name:?} (edgelm supports: {names})")
}

#[cfg(test)]
mod tests;
