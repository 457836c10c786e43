//! A Hugging Face `config.json` as a [`ModelConfig`]: both the transformers 5 style
//! (`rope_parameters`) and the older one (top-level `rope_theta`, `rope_scaling`).

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{
    Activation, Architecture, AttentionConfig, ModelConfig, NormKind, Rope, RopeLayout, RopeScaling,
};
use serde_json::Value;

/// Typed access to the fields of a JSON object, with errors naming the key.
struct Fields<'a>(&'a Value, &'a str);

impl Fields<'_> {
    /// The value of `key`, treating `null` as absent.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, want: &str) -> anyhow::Error {
        anyhow::anyhow!("{} {key:?} is not {want}: {}", self.1, self.0[key])
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or_else(|| self.bad(key, "a non-negative integer"))
            })
            .transpose()
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .with_context(|| format!("{} lacks {key:?}", self.1))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(key, "a number")))
            .transpose()
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false")))
            .transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string")))
            .transpose()
    }
}

/// Reads `config.json` text. Returns the configuration and notes for the report.
pub fn parse(text: &[u8]) -> Result<(ModelConfig, Vec<String>)> {
    let v: Value = serde_json::from_slice(text).context("config.json is not valid JSON")?;
    ensure!(v.is_object(), "config.json is not a JSON object");
    let f = Fields(&v, "config.json");
    let model_type = f
        .opt_str("model_type")?
        .context("config.json lacks \"model_type\"")?;
    let Some(arch) = edgelm::arch::from_hf_model_type(model_type) else {
        return Err(super::unsupported(model_type));
    };
    let config = match arch {
        Architecture::Bert => bert(&f)?,
        Architecture::Whisper => whisper(&f)?,
        _ => return decoder(&f, arch),
    };
    Ok((config, Vec::new()))
}

fn head_dim(f: &Fields, hidden: usize, heads: usize) -> Result<usize> {
    match f.opt_usize("head_dim")? {
        Some(d) => Ok(d),
        None => {
            ensure!(
                heads > 0 && hidden.is_multiple_of(heads),
                "hidden size {hidden} is not divisible by {heads} heads"
            );
            Ok(hidden / heads)
        }
    }
}

fn activation(f: &Fields, arch: Architecture) -> Result<Activation> {
    let name = match f.opt_str("hidden_activation")? {
        Some(a) => a,
        None => f.opt_str("hidden_act")?.unwrap_or("silu"),
    };
    Ok(match name {
        "silu" | "swish" => Activation::Silu,
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Activation::GeluTanh,
        "gelu" => Activation::GeluErf,
        other => bail!(
            "activation {other:?} is not supported for {} (silu, gelu and gelu_pytorch_tanh are)",
            arch.name()
        ),
    })
}

fn decoder(f: &Fields, arch: Architecture) -> Result<(ModelConfig, Vec<String>)> {
    let hidden = f.usize("hidden_size")?;
    let heads = f.usize("num_attention_heads")?;
    let head_dim = head_dim(f, hidden, heads)?;
    let num_layers = f.usize("num_hidden_layers")?;
    let qwen2 = arch == Architecture::Qwen2;
    let attention_bias = f.opt_bool("attention_bias")?.unwrap_or(false);
    let (rope, local_rope) = ropes(f, head_dim)?;
    let mut attention = AttentionConfig {
        scale: f
            .opt_f64("query_pre_attn_scalar")?
            .map(|s| (1.0 / s.sqrt()) as f32),
        softcap: f.opt_f64("attn_logit_softcapping")?.map(|v| v as f32),
        local_rope,
        ..AttentionConfig::default()
    };
    let disabled = qwen2 && f.opt_bool("use_sliding_window")? != Some(true);
    if let Some(window) = f.opt_usize("sliding_window")?.filter(|_| !disabled) {
        attention.sliding_layers = sliding_layers(f, num_layers)?;
        if attention.sliding_layers.iter().any(|&s| s) || attention.sliding_layers.is_empty() {
            attention.window = Some(window);
        }
    }
    let config = ModelConfig {
        architecture: arch,
        vocab_size: f.usize("vocab_size")?,
        hidden_size: hidden,
        intermediate_size: f.usize("intermediate_size")?,
        num_layers,
        num_heads: heads,
        num_kv_heads: f.opt_usize("num_key_value_heads")?.unwrap_or(heads),
        head_dim,
        max_context: f.usize("max_position_embeddings")?,
        norm: NormKind::Rms,
        norm_eps: f.opt_f64("rms_norm_eps")?.unwrap_or(1e-6) as f32,
        rope: Some(rope),
        activation: activation(f, arch)?,
        qkv_bias: qwen2 || attention_bias,
        attn_out_bias: !qwen2 && attention_bias,
        mlp_bias: f.opt_bool("mlp_bias")?.unwrap_or(false),
        tied_embeddings: f
            .opt_bool("tie_word_embeddings")?
            .unwrap_or(arch == Architecture::Gemma3),
        type_vocab_size: 0,
        pooling: None,
        attention,
        final_softcap: f.opt_f64("final_logit_softcapping")?.map(|v| v as f32),
        whisper: None,
    };
    Ok((config, Vec::new()))
}

/// Which layers use the sliding window: `layer_types` (transformers 5), else Gemma's
/// `sliding_window_pattern` (every `n`th layer global), else every layer.
fn sliding_layers(f: &Fields, layers: usize) -> Result<Vec<bool>> {
    if let Some(types) = f.get("layer_types") {
        let types = types
            .as_array()
            .context("config.json \"layer_types\" is not a list")?;
        ensure!(
            types.len() == layers,
            "config.json \"layer_types\" has {} entries for {layers} layers",
            types.len()
        );
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => bail!("layer type {t} is not supported (sliding_attention, full_attention are)"),
            })
            .collect();
    }
    Ok(match f.opt_usize("sliding_window_pattern")? {
        Some(0) => bail!("config.json \"sliding_window_pattern\" is 0"),
        Some(n) => (0..layers).map(|l| (l + 1) % n != 0).collect(),
        None => Vec::new(),
    })
}

/// The model's RoPE and, where sliding-window layers have their own, theirs: from
/// `rope_parameters` per layer type (transformers 5) or Gemma's `rope_local_base_freq`.
fn ropes(f: &Fields, head_dim: usize) -> Result<(Rope, Option<Rope>)> {
    let per_type = f
        .get("rope_parameters")
        .filter(|p| p.get("full_attention").is_some() || p.get("sliding_attention").is_some());
    if let Some(p) = per_type {
        let of = |kind: &str| -> Result<Option<Rope>> {
            p.get(kind)
                .map(|params| rope(f, Some(params), head_dim))
                .transpose()
        };
        let global = of("full_attention")?;
        let local = of("sliding_attention")?;
        let global = global
            .or(local)
            .context("config.json \"rope_parameters\" has no parameters")?;
        return Ok((global, local));
    }
    let params = match f.get("rope_parameters") {
        Some(p) => Some(p),
        None => f.get("rope_scaling"),
    };
    let global = rope(f, params, head_dim)?;
    let local = f.opt_f64("rope_local_base_freq")?.map(|theta| Rope {
        theta: theta as f32,
        scaling: None,
        ..global
    });
    Ok((global, local))
}

/// RoPE from one set of parameters (`rope_parameters` of transformers 5, or the older
/// `rope_scaling` beside a top-level `rope_theta`).
fn rope(f: &Fields, params: Option<&Value>, head_dim: usize) -> Result<Rope> {
    if let Some(p) = params {
        ensure!(p.is_object(), "config.json RoPE parameters are not an object");
    }
    let p = params.map(|p| Fields(p, "config.json RoPE parameters"));
    let theta = match &p {
        Some(p) if p.get("rope_theta").is_some() => p.opt_f64("rope_theta")?,
        _ => f.opt_f64("rope_theta")?,
    };
    let kind = match &p {
        Some(p) => p
            .opt_str("rope_type")?
            .or(p.opt_str("type")?)
            .unwrap_or("default"),
        None => "default",
    };
    let scaling = match (kind, &p) {
        ("default", _) | (_, None) => None,
        ("linear", Some(p)) => Some(RopeScaling::Linear { factor: factor(p)? }),
        ("llama3", Some(p)) => Some(RopeScaling::Llama3 {
            factor: factor(p)?,
            low_freq_factor: p.opt_f64("low_freq_factor")?.unwrap_or(1.0) as f32,
            high_freq_factor: p.opt_f64("high_freq_factor")?.unwrap_or(4.0) as f32,
            original_max_position: p.usize("original_max_position_embeddings")?,
        }),
        (other, _) => bail!("RoPE scaling {other:?} is not supported (default, linear and llama3 are)"),
    };
    let partial = match &p {
        Some(p) if p.get("partial_rotary_factor").is_some() => p.opt_f64("partial_rotary_factor")?,
        _ => f.opt_f64("partial_rotary_factor")?,
    };
    let dims = match partial {
        Some(r) if r > 0.0 && r <= 1.0 => ((head_dim as f64 * r) as usize) & !1,
        Some(r) => bail!("partial_rotary_factor {r} is not in (0, 1]"),
        None => head_dim,
    };
    Ok(Rope {
        layout: RopeLayout::Neox,
        theta: theta.unwrap_or(10_000.0) as f32,
        dims,
        scaling,
    })
}

fn factor(p: &Fields) -> Result<f32> {
    let factor = p.opt_f64("factor")?.context("RoPE scaling lacks \"factor\"")?;
    ensure!(
        factor.is_finite() && factor >= 1.0,
        "RoPE scaling factor {factor} is below 1"
    );
    Ok(factor as f32)
}

fn bert(f: &Fields) -> Result<ModelConfig> {
    let hidden = f.usize("hidden_size")?;
    let heads = f.usize("num_attention_heads")?;
    let activation = match f.opt_str("hidden_act")?.unwrap_or("gelu") {
        "gelu" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        other => bail!("activation {other:?} is not supported for bert (gelu, gelu_new are)"),
    };
    match f.opt_str("position_embedding_type")?.unwrap_or("absolute") {
        "absolute" => {}
        other => bail!("position embedding type {other:?} is not supported (absolute is)"),
    }
    Ok(ModelConfig {
        architecture: Architecture::Bert,
        vocab_size: f.usize("vocab_size")?,
        hidden_size: hidden,
        intermediate_size: f.usize("intermediate_size")?,
        num_layers: f.usize("num_hidden_layers")?,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: head_dim(f, hidden, heads)?,
        max_context: f.usize("max_position_embeddings")?,
        norm: NormKind::Layer,
        norm_eps: f.opt_f64("layer_norm_eps")?.unwrap_or(1e-12) as f32,
        rope: None,
        activation,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        tied_embeddings: false,
        type_vocab_size: f.opt_usize("type_vocab_size")?.unwrap_or(2),
        pooling: None,
        attention: AttentionConfig::default(),
        whisper: None,
        final_softcap: None,
    })
}

/// Whisper (`WhisperConfig`); the audio side is completed from the weights and the
/// tokenizer (`source::whisper`).
fn whisper(f: &Fields) -> Result<ModelConfig> {
    let hidden = f.usize("d_model")?;
    let heads = f.usize("encoder_attention_heads")?;
    let layers = f.usize("encoder_layers")?;
    let pairs = [
        ("encoder_attention_heads", heads, "decoder_attention_heads"),
        ("encoder_layers", layers, "decoder_layers"),
        ("encoder_ffn_dim", f.usize("encoder_ffn_dim")?, "decoder_ffn_dim"),
    ];
    for (enc, v, dec) in pairs {
        let d = f.usize(dec)?;
        ensure!(
            d == v,
            "config.json {enc:?} is {v} but {dec:?} {d}: edgelm runs Whisper models whose encoder and decoder agree"
        );
    }
    ensure!(
        heads > 0 && hidden.is_multiple_of(heads),
        "d_model {hidden} is not divisible by {heads} heads"
    );
    let act = f.opt_str("activation_function")?.unwrap_or("gelu");
    ensure!(
        act == "gelu",
        "activation {act:?} is not supported for whisper (gelu is)"
    );
    Ok(super::whisper::config(
        f.usize("vocab_size")?,
        hidden,
        f.usize("encoder_ffn_dim")?,
        layers,
        heads,
        f.usize("max_target_positions")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 400,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "tie_word_embeddings": false"#;

    fn parse_with(extra: &str) -> Result<ModelConfig> {
        parse(format!("{LLAMA}{extra}}}").as_bytes()).map(|(c, _)| c)
    }

    #[test]
    fn both_rope_styles_agree() {
        let new = parse_with(
            r#", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}"#,
        )
        .unwrap();
        let old = parse_with(
            r#", "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}"#,
        )
        .unwrap();
        assert_eq!(new, old);
        let rope = new.rope.unwrap();
        assert_eq!((rope.theta, rope.dims), (500000.0, 16));
        assert!(matches!(
            rope.scaling,
            Some(RopeScaling::Llama3 {
                original_max_position: 64,
                ..
            })
        ));
        assert_eq!(new.norm_eps, 1e-5f32);
        let plain = parse_with("").unwrap().rope.unwrap();
        assert_eq!((plain.theta, plain.scaling), (10000.0, None));
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let err = parse(br#"{"model_type": "gpt_neox"}"#).unwrap_err().to_string();
        assert!(
            err.contains("gpt_neox") && err.contains("llama, qwen2, qwen3, phi3, gemma3, bert"),
            "{err}"
        );
        let err = parse_with(r#", "rope_scaling": {"type": "yarn", "factor": 4.0}"#).unwrap_err();
        assert!(err.to_string().contains("yarn"), "{err}");
        let err = parse_with(r#", "hidden_act": "relu2""#).unwrap_err();
        assert!(err.to_string().contains("relu2"), "{err}");
        let err = parse(br#"{"model_type": "llama", "hidden_size": -3}"#).unwrap_err();
        assert!(err.to_string().contains("hidden_size"), "{err}");
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{").is_err());
    }

    #[test]
    fn sliding_windows_and_their_layers() {
        let text = LLAMA.replace("\"llama\"", "\"mistral\"") + r#", "sliding_window": 128}"#;
        let (c, _) = parse(text.as_bytes()).unwrap();
        assert_eq!((c.architecture, c.max_context), (Architecture::Llama, 256));
        assert_eq!(
            (c.attention.window_of(0), c.attention.window_of(1)),
            (Some(128), Some(128))
        );
        let gemma = |extra: &str| {
            let text = LLAMA.replace("\"llama\"", "\"gemma3_text\"")
                + r#", "sliding_window": 4, "query_pre_attn_scalar": 64, "rope_theta": 1e6,
                "rope_local_base_freq": 1e4, "hidden_activation": "gelu_pytorch_tanh""#
                + extra
                + "}";
            parse(text.as_bytes()).map(|(c, _)| c)
        };
        let c = gemma(r#", "sliding_window_pattern": 2"#).unwrap();
        assert_eq!(c.attention.sliding_layers, [true, false]);
        assert_eq!(
            (c.attention.scale, c.activation),
            (Some(0.125), Activation::GeluTanh)
        );
        assert_eq!(c.attention.local_rope.unwrap().theta, 1e4);
        assert_eq!(c.rope.unwrap().theta, 1e6);
        let c = gemma(r#", "layer_types": ["full_attention", "sliding_attention"]"#).unwrap();
        assert_eq!(c.attention.sliding_layers, [false, true]);
        let err = gemma(r#", "layer_types": ["full_attention"]"#).unwrap_err();
        assert!(err.to_string().contains("1 entries for 2 layers"), "{err}");
        let per_type = r#", "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0,
            "rope_theta": 1e6}, "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}"#;
        let c = gemma(per_type).unwrap();
        assert_eq!(c.rope.unwrap().scaling, Some(RopeScaling::Linear { factor: 8.0 }));
        assert_eq!(
            (
                c.attention.local_rope.unwrap().theta,
                c.attention.local_rope.unwrap().scaling
            ),
            (1e4, None)
        );
    }
}
