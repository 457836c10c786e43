//! Hugging Face model folders: `config.json`, one or more `*.safetensors` files (sharded ones
//! through `model.safetensors.index.json`) and, for sentence-transformers models,
//! `modules.json` and the pooling configuration.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{Architecture, Pooling, PoolingMode};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::Value;

use super::{Buffer, Data, Model, SourceKind, SrcTensor, hf_config};
use crate::gguf::GgmlType;

/// Reads a model folder.
pub fn open(dir: &Path) -> Result<Model> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).with_context(|| format!("cannot read {}", dir.join(name).display()))
    };
    ensure!(
        dir.join("config.json").is_file(),
        "{} has no config.json: not a Hugging Face model folder",
        dir.display()
    );
    let config = read("config.json")?;
    let files = shard_files(dir)?;
    let mut shards = Vec::with_capacity(files.len());
    for name in &files {
        let path = dir.join(name);
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: read-only private map of an input file the converter does not modify; as with
        // any mmap-based reader, another program truncating it meanwhile is not guarded against.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        shards.push((name.clone(), Buffer::Map(map)));
    }
    let mut model = from_parts(&config, shards)?;
    match model.config.architecture {
        Architecture::Bert => sentence_transformers(dir, &mut model)?,
        Architecture::Whisper => super::whisper::finish(&mut model, &config, dir)?,
        _ => {}
    }
    let folder = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    model.description = format!(
        "{folder} (Hugging Face folder, {} safetensors file(s))",
        files.len()
    );
    model.name = Some(folder);
    Ok(model)
}

/// The safetensors files of a folder: the shards named by the index, or `model.safetensors`.
fn shard_files(dir: &Path) -> Result<Vec<String>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read(&index).with_context(|| format!("cannot read {}", index.display()))?;
        let v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .with_context(|| format!("{} has no \"weight_map\" object", index.display()))?;
        let mut files = BTreeSet::new();
        for (tensor, file) in map {
            let file = file
                .as_str()
                .with_context(|| format!("index entry {tensor:?} is not a file name"))?;
            ensure!(
                Path::new(file).file_name().is_some_and(|n| n == file),
                "index entry {tensor:?} names {file:?}, which is not a file in the folder"
            );
            files.insert(file.to_owned());
        }
        ensure!(!files.is_empty(), "{} lists no tensors", index.display());
        return Ok(files.into_iter().collect());
    }
    if dir.join("model.safetensors").is_file() {
        return Ok(vec!["model.safetensors".into()]);
    }
    let has_bin = dir.join("pytorch_model.bin").is_file();
    bail!(
        "{} has neither model.safetensors nor model.safetensors.index.json{}",
        dir.display(),
        if has_bin {
            " (PyTorch .bin checkpoints are not read: convert them to safetensors)"
        } else {
            ""
        }
    )
}

/// Builds a model from `config.json` text and safetensors files `(name, bytes)`.
pub fn from_parts(config_json: &[u8], shards: Vec<(String, Buffer)>) -> Result<Model> {
    let (config, warnings) = hf_config::parse(config_json)?;
    let arch = config.architecture;
    let mut model = Model::new(config, SourceKind::HuggingFace, String::new());
    model.warnings = warnings;
    for (file, buffer) in shards {
        let (header_len, meta) = SafeTensors::read_metadata(buffer.bytes())
            .map_err(|e| safetensors_error(&file, buffer.bytes(), e))?;
        let base = 8 + header_len;
        let mut infos: Vec<_> = meta.tensors().into_iter().collect();
        infos.sort_by_key(|(_, info)| info.data_offsets);
        let index = model.add_buffer(buffer);
        for (native, info) in infos {
            if ignorable(&native) {
                continue;
            }
            let Some(name) = canonical(arch, &native) else {
                model.skipped.push((native, "not used by edgelm".into()));
                continue;
            };
            let Some(ty) = ggml_type(info.dtype) else {
                model.skipped.push((
                    native,
                    format!("safetensors dtype {} cannot be converted", info.dtype),
                ));
                continue;
            };
            let (start, end) = info.data_offsets;
            let t = SrcTensor {
                native,
                shape: info.shape.iter().map(|&d| d as u64).collect(),
                ty,
                data: Data::Slice {
                    buffer: index,
                    range: base + start..base + end,
                },
            };
            model.insert(name, t).with_context(|| format!("in {file}"))?;
        }
    }
    Ok(model)
}

fn ggml_type(d: Dtype) -> Option<GgmlType> {
    Some(match d {
        Dtype::F32 => GgmlType::F32,
        Dtype::F16 => GgmlType::F16,
        Dtype::BF16 => GgmlType::BF16,
        Dtype::F64 => GgmlType::F64,
        Dtype::I8 => GgmlType::I8,
        Dtype::I16 => GgmlType::I16,
        Dtype::I32 => GgmlType::I32,
        Dtype::I64 => GgmlType::I64,
        _ => return None,
    })
}

/// An error for an invalid safetensors file, naming the tensor whose entry lies if it can.
fn safetensors_error(file: &str, bytes: &[u8], e: SafeTensorError) -> anyhow::Error {
    let detail = match e {
        SafeTensorError::TensorInvalidInfo => lying_entry(bytes),
        SafeTensorError::MetadataIncompleteBuffer => {
            Some("the data offsets do not cover the file exactly (truncated or padded)".into())
        }
        _ => None,
    };
    match detail {
        Some(d) => anyhow::anyhow!("{file} is not a valid safetensors file: {e}: {d}"),
        None => anyhow::anyhow!("{file} is not a valid safetensors file: {e}"),
    }
}

/// The first header entry whose data offsets disagree with its shape and dtype.
fn lying_entry(bytes: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    let header: Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    header.as_object()?.iter().find_map(|(name, e)| {
        let dtype: Dtype = serde_json::from_value(e.get("dtype")?.clone()).ok()?;
        let shape: Vec<u64> = serde_json::from_value(e.get("shape")?.clone()).ok()?;
        let [start, end]: [u64; 2] = serde_json::from_value(e.get("data_offsets")?.clone()).ok()?;
        let bits = shape.iter().try_fold(dtype.bitsize() as u64, |n, &d| n.checked_mul(d));
        let want = bits.map(|b| b / 8);
        (want != end.checked_sub(start)).then(|| {
            format!(
                "tensor {name:?} is {dtype} {shape:?} ({} bytes) but its data_offsets [{start}, {end}] span {}",
                want.map_or("too many".into(), |w| w.to_string()),
                end.wrapping_sub(start) as i64
            )
        })
    })
}

/// Names that are expected in checkpoints and not needed.
fn ignorable(native: &str) -> bool {
    native.starts_with("pooler.")
        || native.starts_with("bert.pooler.")
        || native.ends_with("position_ids")
        || native.ends_with("rotary_emb.inv_freq")
        || native.starts_with("cls.")
        || native == "proj_out.weight"
}

/// The packed name of a Hugging Face tensor, or `None` if edgelm does not use it. Old BERT
/// checkpoints say gamma/beta for LayerNorm weight/bias.
pub fn canonical(arch: Architecture, native: &str) -> Option<String> {
    let name = native
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias");
    edgelm::arch::def(arch).from_hf(&name)
}

/// Pooling from a sentence-transformers folder, if it is one (the tokenizer import reads its
/// maximum length).
fn sentence_transformers(dir: &Path, model: &mut Model) -> Result<()> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(());
    }
    let json = |path: &Path| -> Result<Value> {
        let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not valid JSON", path.display()))
    };
    let modules = json(&modules_path)?;
    let modules = modules
        .as_array()
        .with_context(|| format!("{} is not a list", modules_path.display()))?;
    let of_type = |suffix: &str| {
        modules.iter().find(|m| {
            m.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(suffix))
        })
    };
    if let Some(pool) = of_type("models.Pooling") {
        let sub = pool.get("path").and_then(Value::as_str).unwrap_or("1_Pooling");
        let path = dir.join(sub).join("config.json");
        let cfg = json(&path)?;
        let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mode = if flag("pooling_mode_cls_token") {
            PoolingMode::Cls
        } else if flag("pooling_mode_mean_tokens") {
            PoolingMode::Mean
        } else {
            bail!("{}: only mean and CLS pooling are supported", path.display())
        };
        model.config.pooling = Some(Pooling {
            mode,
            normalize: of_type("models.Normalize").is_some(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_bert_names_are_read() {
        assert_eq!(
            canonical(
                Architecture::Bert,
                "bert.encoder.layer.0.attention.output.LayerNorm.gamma"
            )
            .as_deref(),
            Some("blk.0.attn_output_norm.weight")
        );
        assert!(ignorable("pooler.dense.weight") && ignorable("embeddings.position_ids"));
    }
}
