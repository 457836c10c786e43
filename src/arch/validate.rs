//! The one check of a configuration, run by the converter before it plans and by the runtime
//! before it loads: every size in range, the parts consistent, the architecture's choices
//! ones the runtime implements.

use edgelm_kernels::layout::QK;

use crate::format::meta::{Architecture, ModelConfig, NormKind, Rope, RopeScaling};

/// A configuration the runtime cannot build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Checks that `c` describes a network the runtime can build.
pub fn validate(c: &ModelConfig) -> Result<(), ConfigError> {
    let fail = |m: String| Err(ConfigError(m));
    let dims = [
        ("vocabulary size", c.vocab_size, 1 << 22),
        ("hidden size", c.hidden_size, 1 << 20),
        ("intermediate size", c.intermediate_size, 1 << 20),
        ("layer count", c.num_layers, 4096),
        ("head count", c.num_heads, 4096),
        ("key/value head count", c.num_kv_heads, 4096),
        ("head dimension", c.head_dim, 4096),
        ("context length", c.max_context, 1 << 24),
    ];
    for (what, v, max) in dims {
        if v == 0 || v > max {
            return fail(format!("{what} {v} is out of range (1 to {max})"));
        }
    }
    if !c.num_heads.is_multiple_of(c.num_kv_heads) {
        return fail(format!(
            "{} heads cannot be shared by {} key/value heads",
            c.num_heads, c.num_kv_heads
        ));
    }
    for (what, v) in [
        ("hidden size", c.hidden_size),
        ("intermediate size", c.intermediate_size),
        ("heads × head dimension", c.num_heads * c.head_dim),
    ] {
        if !v.is_multiple_of(QK) {
            return fail(format!("{what} {v} is not a multiple of {QK}"));
        }
    }
    if !(c.norm_eps.is_finite() && c.norm_eps >= 0.0 && c.norm_eps < 1.0) {
        return fail(format!("normalization epsilon {} is out of range", c.norm_eps));
    }
    for rope in c.rope.iter().chain(&c.attention.local_rope) {
        check_rope(rope, c.head_dim)?;
    }
    let positive = |what: &str, v: Option<f32>| match v {
        Some(x) if !(x.is_finite() && x > 0.0) => fail(format!("{what} {x} is not positive")),
        _ => Ok(()),
    };
    positive("attention scale", c.attention.scale)?;
    positive("attention soft-capping", c.attention.softcap)?;
    positive("logit soft-capping", c.final_softcap)?;
    if c.attention.window == Some(0) {
        return fail("a sliding window of 0 positions".into());
    }
    let flags = c.attention.sliding_layers.len();
    if flags != 0 && flags != c.num_layers {
        return fail(format!(
            "{flags} sliding-window layer flags for {} layers",
            c.num_layers
        ));
    }
    if c.architecture.is_decoder() {
        if c.rope.is_none() {
            return fail(format!("{} needs rotary embeddings", c.architecture.name()));
        }
        if c.norm != NormKind::Rms {
            return fail(format!("{} decoders use RMSNorm", c.architecture.name()));
        }
    } else {
        if c.norm != NormKind::Layer || c.rope.is_some() {
            return fail(format!(
                "{} encoders use LayerNorm and learned positions",
                c.architecture.name()
            ));
        }
        if c.num_heads != c.num_kv_heads || c.num_heads * c.head_dim != c.hidden_size {
            return fail(format!(
                "{} heads of {} ({} key/value heads) do not make the hidden size {}",
                c.num_heads, c.head_dim, c.num_kv_heads, c.hidden_size
            ));
        }
        if c.type_vocab_size > 1 << 16 {
            return fail(format!("token type count {} is out of range", c.type_vocab_size));
        }
    }
    check_whisper(c)
}

/// A Whisper model has its audio configuration (and only a Whisper model), in range, with its
/// special tokens inside the vocabulary.
fn check_whisper(c: &ModelConfig) -> Result<(), ConfigError> {
    let fail = |m: String| Err(ConfigError(m));
    let is_whisper = c.architecture == Architecture::Whisper;
    let Some(w) = &c.whisper else {
        return if is_whisper {
            fail("a whisper model without its audio configuration".into())
        } else {
            Ok(())
        };
    };
    if !is_whisper {
        return fail(format!("{} has no audio configuration", c.architecture.name()));
    }
    if w.n_mels == 0 || w.n_mels > 512 {
        return fail(format!("mel bin count {} is out of range (1 to 512)", w.n_mels));
    }
    if w.audio_ctx == 0 || w.audio_ctx > 1 << 16 {
        return fail(format!(
            "audio context {} is out of range (1 to 65536)",
            w.audio_ctx
        ));
    }
    let t = &w.tokens;
    let ids = [
        t.sot,
        t.eot,
        t.transcribe,
        t.translate,
        t.sot_prev,
        t.no_speech,
        t.no_timestamps,
        t.timestamp_begin,
    ];
    let listed = w.languages.iter().map(|(_, id)| *id);
    let lists = w.suppress_tokens.iter().chain(&w.begin_suppress_tokens).copied();
    if let Some(bad) = ids
        .into_iter()
        .chain(listed)
        .chain(lists)
        .find(|&id| id as usize >= c.vocab_size)
    {
        return fail(format!(
            "token {bad} is outside the vocabulary of {}",
            c.vocab_size
        ));
    }
    if let Some(&(l, h)) = w
        .alignment_heads
        .iter()
        .find(|&&(l, h)| l as usize >= c.num_layers || h as usize >= c.num_heads)
    {
        return fail(format!("alignment head ({l}, {h}) is outside the decoder"));
    }
    Ok(())
}

fn check_rope(rope: &Rope, head_dim: usize) -> Result<(), ConfigError> {
    if rope.dims == 0 || rope.dims > head_dim || !rope.dims.is_multiple_of(2) {
        return Err(ConfigError(format!(
            "RoPE dimensions {} must be even and at most the head dimension {head_dim}",
            rope.dims
        )));
    }
    if !(rope.theta.is_finite() && rope.theta > 0.0) {
        return Err(ConfigError(format!("RoPE theta {} is not positive", rope.theta)));
    }
    // Infinite values would also be written as JSON `null`, and the file would not load.
    let factor = match rope.scaling {
        None => return Ok(()),
        Some(RopeScaling::Linear { factor }) => factor,
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor: low,
            high_freq_factor: high,
            original_max_position,
        }) => {
            if !(low.is_finite() && high.is_finite() && 0.0 < low && low < high) {
                return Err(ConfigError(format!(
                    "RoPE llama3 frequency factors low {low} and high {high}: need 0 < low < high"
                )));
            }
            if original_max_position == 0 {
                return Err(ConfigError("RoPE llama3 original context is 0".into()));
            }
            factor
        }
    };
    if !(factor.is_finite() && factor >= 1.0) {
        return Err(ConfigError(format!(
            "RoPE scaling factor {factor} is not a finite number of at least 1"
        )));
    }
    Ok(())
}
