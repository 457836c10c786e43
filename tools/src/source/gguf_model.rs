//! GGUF files: the configuration from `general.architecture` and the `{arch}.*` metadata, the
//! tensors as stored (llama.cpp's names are the ones edgelm uses).

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{
    Activation, Architecture, AttentionConfig, ModelConfig, NormKind, Pooling, PoolingMode, Rope, RopeLayout,
    RopeScaling,
};

use super::{Buffer, Data, Model, SourceKind, SrcTensor};
use crate::dequant::dequantize;
use crate::gguf::{GgmlType, Gguf, Value};

/// Name of the tensor in which llama.cpp stores Llama 3 RoPE frequency factors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Builds a model from an open GGUF file (`file_name` for messages).
pub fn from_gguf(g: Gguf, file_name: &str) -> Result<Model> {
    let arch_name = g.str("general.architecture")?;
    let Some(arch) = Architecture::from_name(arch_name) else {
        return Err(super::unsupported(arch_name));
    };
    let def = edgelm::arch::def(arch);
    let mut notes = Vec::new();
    let config = config(&g, arch, &mut notes)?;
    let description = format!("{file_name} (GGUF v{}, {arch_name})", g.version);
    let mut model = Model::new(config, SourceKind::Gguf, description);
    model.warnings = notes;
    model.name = g.str("general.name").ok().map(str::to_owned);
    let tensors = g.tensors.clone();
    let buffer = model.add_buffer(Buffer::Gguf(g));
    for t in tensors {
        if t.name.starts_with("rope_factors_") {
            bail!(
                "{} holds LongRoPE factors ({}), which edgelm does not implement",
                file_name,
                t.name
            );
        }
        let src = SrcTensor {
            native: t.name.clone(),
            shape: t.shape(),
            ty: t.ggml_type,
            data: Data::Slice {
                buffer,
                range: t.range.clone(),
            },
        };
        // Tensors the architecture does not use keep their name, and the plan reports them.
        let name = def.from_gguf(&t.name).unwrap_or(t.name);
        model.insert(name, src)?;
    }
    if let Some(freqs) = model.tensors.get(ROPE_FREQS) {
        let rope = model
            .config
            .rope
            .context("rope_freqs.weight in a model without RoPE")?;
        ensure!(
            rope.scaling.is_none(),
            "both rope_freqs.weight and a RoPE scaling type are given"
        );
        ensure!(
            freqs.ty == GgmlType::F32 && freqs.shape == [rope.dims as u64 / 2],
            "rope_freqs.weight is {} {:?}, expected F32 [{}]",
            freqs.ty,
            freqs.shape,
            rope.dims / 2
        );
        let mut factors = vec![0.0; freqs.numel()];
        dequantize(freqs.ty, &model.bytes(freqs), &mut factors)?;
        let scaling = llama3_from_factors(&factors, rope.theta, rope.dims)?;
        model.config.rope = Some(Rope { scaling, ..rope });
    }
    Ok(model)
}

fn config(g: &Gguf, arch: Architecture, notes: &mut Vec<String>) -> Result<ModelConfig> {
    let p = arch.name();
    let key = |k: &str| format!("{p}.{k}");
    let usize_of = |k: &str| -> Result<usize> { Ok(usize::try_from(g.u64(&key(k))?)?) };
    let opt_usize = |k: &str| -> Result<Option<usize>> {
        if g.meta.contains_key(&key(k)) {
            usize_of(k).map(Some)
        } else {
            Ok(None)
        }
    };
    let opt_f32 = |k: &str| -> Result<Option<f32>> {
        if g.meta.contains_key(&key(k)) {
            Ok(Some(g.f64(&key(k))? as f32))
        } else {
            Ok(None)
        }
    };
    let hidden = usize_of("embedding_length")?;
    let heads = usize_of("attention.head_count")?;
    ensure!(heads > 0, "{p}.attention.head_count is 0");
    let head_dim = match opt_usize("attention.key_length")? {
        Some(d) => d,
        None => hidden / heads,
    };
    let rows_of = |name: &str| g.tensor(name).map(|t| t.shape()[0] as usize);
    let vocab = match opt_usize("vocab_size")? {
        Some(v) => v,
        None => match g.meta.get("tokenizer.ggml.tokens").and_then(Value::as_array) {
            Some(tokens) => tokens.len(),
            None => rows_of("token_embd.weight").context("cannot tell the vocabulary size")?,
        },
    };
    let has = |name: &str| g.tensor(name).is_some();
    let mut c = ModelConfig {
        architecture: arch,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: usize_of("feed_forward_length")?,
        num_layers: usize_of("block_count")?,
        num_heads: heads,
        num_kv_heads: opt_usize("attention.head_count_kv")?.unwrap_or(heads),
        head_dim,
        max_context: usize_of("context_length")?,
        norm: NormKind::Rms,
        norm_eps: 0.0,
        rope: None,
        activation: Activation::Silu,
        qkv_bias: has("blk.0.attn_q.bias"),
        attn_out_bias: has("blk.0.attn_output.bias"),
        mlp_bias: has("blk.0.ffn_up.bias"),
        tied_embeddings: !has("output.weight"),
        type_vocab_size: 0,
        pooling: None,
        attention: AttentionConfig::default(),
        final_softcap: None,
        whisper: None,
    };
    if arch == Architecture::Bert {
        c.norm = NormKind::Layer;
        c.norm_eps = opt_f32("attention.layer_norm_epsilon")?.unwrap_or(1e-12);
        c.activation = Activation::GeluErf;
        c.tied_embeddings = false;
        c.type_vocab_size = rows_of("token_types.weight").unwrap_or(2);
        let mode = match opt_usize("pooling_type")?.unwrap_or(0) {
            0 => None,
            1 => Some(PoolingMode::Mean),
            2 => Some(PoolingMode::Cls),
            other => bail!("{p}.pooling_type {other} is not supported (mean and CLS are)"),
        };
        c.pooling = mode.map(|mode| {
            notes.push("GGUF does not record embedding normalization: assuming L2-normalized output".into());
            Pooling {
                mode,
                normalize: true,
            }
        });
        return Ok(c);
    }
    c.norm_eps = opt_f32("attention.layer_norm_rms_epsilon")?.context(format!(
        "GGUF metadata lacks {p}.attention.layer_norm_rms_epsilon"
    ))?;
    let scaling = match g.meta.get(&key("rope.scaling.type")).map(|v| v.as_str()) {
        None | Some(Some("none")) => None,
        Some(Some("linear")) => Some(RopeScaling::Linear {
            factor: opt_f32("rope.scaling.factor")?.context("linear RoPE scaling without a factor")?,
        }),
        Some(Some(other)) => bail!("RoPE scaling {other:?} is not supported (linear and Llama 3 are)"),
        Some(None) => bail!("{p}.rope.scaling.type is not a string"),
    };
    let rope = Rope {
        layout: RopeLayout::Neox,
        theta: opt_f32("rope.freq_base")?.unwrap_or(10_000.0),
        dims: opt_usize("rope.dimension_count")?.unwrap_or(head_dim),
        scaling,
    };
    c.rope = Some(rope);
    c.attention.softcap = opt_f32("attn_logit_softcapping")?;
    c.final_softcap = opt_f32("final_logit_softcapping")?;
    // llama.cpp's converter writes a window of 0 for "none".
    c.attention.window = opt_usize("attention.sliding_window")?.filter(|&w| w > 0);
    if arch == Architecture::Gemma3 {
        // What llama.cpp assumes of every Gemma 3 GGUF: tanh-GELU, five sliding-window layers
        // then one global (or the per-layer flags some files give), the sliding ones with RoPE
        // base 10000 and no scaling.
        c.activation = Activation::GeluTanh;
        c.attention.sliding_layers = match g.meta.get(&key("attention.sliding_window_pattern")) {
            Some(Value::Array(flags)) => flags
                .iter()
                .map(|f| match f {
                    Value::Bool(b) => Ok(*b),
                    other => bail!("{p}.attention.sliding_window_pattern holds {other:?}, not flags"),
                })
                .collect::<Result<_>>()?,
            _ => {
                let pattern = opt_usize("attention.sliding_window_pattern")?.unwrap_or(6).max(1);
                (0..c.num_layers).map(|l| (l + 1) % pattern != 0).collect()
            }
        };
        c.attention.local_rope = Some(Rope {
            theta: 10_000.0,
            scaling: None,
            ..rope
        });
    }
    Ok(c)
}

/// Llama 3 RoPE frequency factors for the given parameters, as transformers and llama.cpp's
/// converter compute them (in f32).
pub fn llama3_factors(theta: f32, dims: usize, s: &RopeScaling) -> Vec<f32> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor: low,
        high_freq_factor: high,
        original_max_position: orig,
    } = *s
    else {
        return vec![1.0; dims / 2];
    };
    let orig = orig as f32;
    (0..dims / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf((2 * i) as f32 / dims as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < orig / high {
                1.0
            } else if wavelen > orig / low {
                factor
            } else {
                let smooth = (orig / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Recovers Llama 3 scaling parameters from llama.cpp's `rope_freqs` factors. Only the two
/// wavelength thresholds `original / low` and `original / high` matter, so `low` is taken as 1
/// unless the Llama 3.1 defaults reproduce the factors.
fn llama3_from_factors(factors: &[f32], theta: f32, dims: usize) -> Result<Option<RopeScaling>> {
    let factor = factors.iter().fold(1.0f32, |a, &b| a.max(b));
    ensure!(
        factors.iter().all(|f| f.is_finite() && *f >= 1.0 - 1e-6),
        "rope_freqs.weight holds factors below 1"
    );
    if factor <= 1.0 + 1e-6 {
        return Ok(None);
    }
    let mut candidates = vec![(1.0f32, 4.0f32, 8192usize)];
    // Smoothed band: 1/f = (1 - s)/factor + s with s = (orig/wavelen - low)/(high - low),
    // i.e. s = a/wavelen + b: fit a and b, then low = 1, high = 1 - 1/b, orig = -a/b.
    let points: Vec<(f64, f64)> = factors
        .iter()
        .enumerate()
        .filter(|&(_, &f)| f > 1.0 + 1e-4 && f < factor * (1.0 - 1e-4))
        .map(|(i, &f)| {
            let freq = 1.0 / f64::from(theta).powf((2 * i) as f64 / dims as f64);
            let s = (1.0 / f64::from(f) - 1.0 / f64::from(factor)) / (1.0 - 1.0 / f64::from(factor));
            (freq / (2.0 * std::f64::consts::PI), s)
        })
        .collect();
    if let [(x, s)] = points[..] {
        // One smoothed frequency: assume Llama 3.1's band edges (1 and 4), solve for the context.
        candidates.push((1.0, 4.0, ((1.0 + 3.0 * s) / x).round() as usize));
    }
    if points.len() >= 2 {
        let n = points.len() as f64;
        let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (sxx, sxy) = points
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x * x, b + x * y));
        let a = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        let b = (sy - a * sx) / n;
        if b < 0.0 && a > 0.0 {
            candidates.push((1.0, (1.0 - 1.0 / b) as f32, (-a / b).round() as usize));
        }
    }
    for (low, high, orig) in candidates {
        let s = RopeScaling::Llama3 {
            factor,
            low_freq_factor: low,
            high_freq_factor: high,
            original_max_position: orig,
        };
        let close = llama3_factors(theta, dims, &s)
            .iter()
            .zip(factors)
            .all(|(a, b)| (a - b).abs() <= 1e-3 * b);
        if close {
            return Ok(Some(s));
        }
    }
    bail!("cannot recover the Llama 3 RoPE scaling parameters from rope_freqs.weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_parameters_are_recovered_from_factors() {
        let cases = [
            (10_000.0, 16, 8.0, 1.0, 4.0, 64),
            (500_000.0, 128, 8.0, 1.0, 4.0, 8192),
            (500_000.0, 64, 32.0, 1.0, 4.0, 8192),
            (10_000.0, 64, 4.0, 1.0, 2.0, 2048),
            // One factor strictly between 1 and 32 (tiny-llama32).
            (500_000.0, 16, 32.0, 1.0, 4.0, 64),
        ];
        for (theta, dims, factor, low, high, orig) in cases {
            let s = RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position: orig,
            };
            let factors = llama3_factors(theta, dims, &s);
            let got = llama3_from_factors(&factors, theta, dims).unwrap().unwrap();
            assert_eq!(llama3_factors(theta, dims, &got), factors, "{theta} {dims}");
            if orig == 64 || orig == 8192 || factor == 32.0 {
                assert_eq!(got, s);
            }
        }
        assert_eq!(llama3_from_factors(&[1.0; 8], 1e4, 16).unwrap(), None);
        assert!(llama3_from_factors(&[1.0, 3.0, 1.0, 2.0], 1e4, 8).is_err());
    }
}
