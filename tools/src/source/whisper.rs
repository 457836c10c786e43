//! What both Whisper sources (CTranslate2 and Hugging Face folders) add to their weights: the
//! convolution kernels as matrices, zero key biases, the mel filter bank, and the decoding
//! configuration (special tokens from `tokenizer.json`, suppress lists and alignment heads
//! from the folder's configuration files).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use edgelm::format::meta::{
    Activation, Architecture, AttentionConfig, ModelConfig, NormKind, WhisperConfig, WhisperTokens,
};
use serde_json::Value;

use super::{Buffer, Data, Model, SrcTensor};
use crate::gguf::GgmlType;

/// Whisper's sample rate and FFT length.
const SAMPLE_RATE: u32 = 16000;
const N_FFT: usize = 400;

/// The configuration every Whisper shares (LayerNorm, GELU, biases, the output tied to the
/// embeddings), at the given sizes; [`finish`] adds the `whisper` section.
pub fn config(
    vocab: usize,
    hidden: usize,
    ff: usize,
    layers: usize,
    heads: usize,
    max_context: usize,
) -> ModelConfig {
    ModelConfig {
        architecture: Architecture::Whisper,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: ff,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: heads,
        head_dim: hidden / heads,
        max_context,
        norm: NormKind::Layer,
        norm_eps: 1e-5,
        rope: None,
        activation: Activation::GeluErf,
        qkv_bias: true,
        attn_out_bias: true,
        mlp_bias: true,
        tied_embeddings: true,
        type_vocab_size: 0,
        pooling: None,
        attention: AttentionConfig::default(),
        final_softcap: None,
        whisper: None,
    }
}

/// Completes a Whisper model read from `dir` (whose `config.json` text is `config_json`).
pub fn finish(model: &mut Model, config_json: &[u8], dir: &Path) -> Result<()> {
    let hidden = model.config.hidden_size as u64;
    // A conv1d kernel [out, in, 3] is the matrix [out, in·3] of its im2col product.
    for name in ["enc_conv1.weight", "enc_conv2.weight"] {
        let t = model
            .tensors
            .get_mut(name)
            .with_context(|| format!("missing tensor {name}"))?;
        ensure!(
            t.shape.len() == 3 && t.shape[2] == 3,
            "tensor {} ({name}) has shape {:?}, expected [out, in, 3]",
            t.native,
            t.shape
        );
        t.shape = vec![t.shape[0], t.shape[1] * 3];
    }
    let n_mels = model.tensors["enc_conv1.weight"].shape[1] as usize / 3;
    let audio_ctx = model
        .tensors
        .get("enc_pos.weight")
        .map(|t| t.shape[0] as usize)
        .context("missing tensor enc_pos.weight (the encoder's positions)")?;
    let zeros = model.add_buffer(Buffer::Owned(vec![0; hidden as usize * 4]));
    for n in 0..model.config.num_layers {
        for slot in ["enc_attn_k", "attn_k", "cross_k"] {
            let name = format!("blk.{n}.{slot}.bias");
            if !model.tensors.contains_key(&name) {
                let t = SrcTensor {
                    native: format!("{name} (zero)"),
                    shape: vec![hidden],
                    ty: GgmlType::F32,
                    data: Data::Slice {
                        buffer: zeros,
                        range: 0..hidden as usize * 4,
                    },
                };
                model.insert(name, t)?;
            }
        }
    }
    let filters = edgelm::audio::mel_filters(SAMPLE_RATE, N_FFT, n_mels);
    let bytes: Vec<u8> = filters.iter().flat_map(|v| v.to_le_bytes()).collect();
    let len = bytes.len();
    let buffer = model.add_buffer(Buffer::Owned(bytes));
    model.insert(
        "mel_filters.weight".into(),
        SrcTensor {
            native: format!("mel filter bank ({n_mels} bins, computed)"),
            shape: vec![n_mels as u64, (N_FFT / 2 + 1) as u64],
            ty: GgmlType::F32,
            data: Data::Slice {
                buffer,
                range: 0..len,
            },
        },
    )?;
    model.config.whisper = Some(decoding(config_json, dir, n_mels, audio_ctx)?);
    Ok(())
}

/// Reads a JSON file of the folder, `Null` when absent.
fn read_json(path: &Path) -> Result<Value> {
    match std::fs::read(path) {
        Ok(text) => {
            serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A list of token ids under `key` in the first of `sources` that has it.
fn ids(sources: &[(&Value, &str)], keys: &[&str]) -> Result<Vec<u32>> {
    for (v, file) in sources {
        for key in keys {
            if let Some(list) = v.get(key).filter(|l| !l.is_null()) {
                return list
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                            .collect()
                    })
                    .with_context(|| format!("{file} {key:?} is not a list of token ids"));
            }
        }
    }
    Ok(Vec::new())
}

/// Special tokens, languages, suppress lists and alignment heads.
fn decoding(config_json: &[u8], dir: &Path, n_mels: usize, audio_ctx: usize) -> Result<WhisperConfig> {
    let config: Value = serde_json::from_slice(config_json).context("config.json is not valid JSON")?;
    let generation = read_json(&dir.join("generation_config.json"))?;
    let tokenizer = read_json(&dir.join("tokenizer.json"))?;
    let added = tokenizer["added_tokens"].as_array().with_context(|| {
        format!(
            "{} has no added tokens (Whisper's special tokens)",
            dir.join("tokenizer.json").display()
        )
    })?;
    let by_text = |text: &str| {
        added
            .iter()
            .find(|t| t["content"] == text)
            .and_then(|t| t["id"].as_u64())
            .and_then(|id| u32::try_from(id).ok())
    };
    let need =
        |text: &str| by_text(text).with_context(|| format!("tokenizer.json lacks the special token {text}"));
    let no_timestamps = need("<|notimestamps|>")?;
    let tokens = WhisperTokens {
        sot: need("<|startoftranscript|>")?,
        eot: need("<|endoftext|>")?,
        transcribe: need("<|transcribe|>")?,
        translate: need("<|translate|>")?,
        sot_prev: need("<|startofprev|>")?,
        no_speech: by_text("<|nospeech|>").map_or_else(|| need("<|nocaptions|>"), Ok)?,
        no_timestamps,
        timestamp_begin: no_timestamps + 1,
    };
    // Languages are the tokens `<|xx|>` between the start of transcript and `<|translate|>`.
    let mut languages: Vec<(String, u32)> = added
        .iter()
        .filter_map(|t| {
            let id = u32::try_from(t["id"].as_u64()?).ok()?;
            let code = t["content"].as_str()?.strip_prefix("<|")?.strip_suffix("|>")?;
            (id > tokens.sot && id < tokens.translate).then(|| (code.to_owned(), id))
        })
        .collect();
    languages.sort_by_key(|(_, id)| *id);
    let sources = [(&generation, "generation_config.json"), (&config, "config.json")];
    let heads = ["alignment_heads"].iter().find_map(|k| {
        sources
            .iter()
            .find_map(|(v, _)| v.get(k).filter(|l| !l.is_null()))
    });
    let alignment_heads = match heads {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|p| {
                        let p = p.as_array()?;
                        let get = |i: usize| p.get(i)?.as_u64().and_then(|x| u32::try_from(x).ok());
                        Some((get(0)?, get(1)?)).filter(|_| p.len() == 2)
                    })
                    .collect()
            })
            .context("\"alignment_heads\" is not a list of [layer, head] pairs")?,
    };
    Ok(WhisperConfig {
        n_mels,
        audio_ctx,
        tokens,
        languages,
        suppress_tokens: ids(&sources, &["suppress_tokens", "suppress_ids"])?,
        begin_suppress_tokens: ids(&sources, &["begin_suppress_tokens", "suppress_ids_begin"])?,
        alignment_heads,
    })
}
