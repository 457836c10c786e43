//! CTranslate2 Whisper folders (faster-whisper's layout): `model.bin`, `config.json` (suppress
//! lists, alignment heads) and `tokenizer.json`.
//!
//! `model.bin` (version 6): `u32` version, the spec name and `u32` revision, `u32` variable
//! count, then per variable its name, `u8` rank, `u32` dims, `u8` type (0 f32, 1 i8, 2 i16,
//! 3 i32, 4 f16, 5 bf16), `u32` byte count and the raw bytes, unaligned; then `u32` alias
//! count and (alias, target) name pairs. Strings are a `u16` length and that many bytes, the
//! last one a NUL. Every read is bounds-checked: a damaged file is an error naming the variable.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use memmap2::Mmap;

use super::{Buffer, Data, Model, SourceKind, SrcTensor, whisper};
use crate::gguf::GgmlType;

/// One variable of `model.bin`.
#[derive(Clone, Debug)]
struct Variable {
    dims: Vec<u64>,
    code: u8,
    range: Range<usize>,
}

/// Bounds-checked reading of `model.bin`.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<Range<usize>> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            bail!(
                "model.bin is truncated: {} needs {n} bytes at offset {}, the file has {}",
                what(),
                self.at,
                self.bytes.len()
            );
        };
        let r = self.at..end;
        self.at = end;
        Ok(r)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8> {
        let r = self.take(1, what)?;
        Ok(self.bytes[r.start])
    }

    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16> {
        let r = self.take(2, what)?;
        Ok(u16::from_le_bytes([self.bytes[r.start], self.bytes[r.start + 1]]))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        let r = self.take(4, what)?;
        Ok(u32::from_le_bytes(self.bytes[r].try_into().expect("4 bytes")))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.u16(what)? as usize;
        let r = self.take(n, what)?;
        let raw = &self.bytes[r];
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| anyhow::anyhow!("{} is not UTF-8", what()))
    }
}

/// Bytes per value of a type code.
fn width(code: u8) -> Option<usize> {
    Some(match code {
        0 | 3 => 4,
        1 => 1,
        2 | 4 | 5 => 2,
        _ => return None,
    })
}

/// Variables by name, and (alias, target) pairs.
type Contents = (BTreeMap<String, Variable>, Vec<(String, String)>);

/// The variables and aliases of `model.bin`'s bytes.
fn parse(bytes: &[u8]) -> Result<Contents> {
    let mut r = Reader { bytes, at: 0 };
    let header = || "the header".to_owned();
    let version = r.u32(&header)?;
    ensure!(
        version == 6,
        "model.bin has CTranslate2 format version {version}; edgelm-convert reads version 6"
    );
    let spec = r.string(&header)?;
    ensure!(
        spec == "WhisperSpec",
        "model.bin holds a {spec:?} model; edgelm-convert reads CTranslate2 Whisper models (WhisperSpec)"
    );
    r.u32(&header)?; // revision
    let count = r.u32(&|| "the variable count".to_owned())?;
    let mut vars = BTreeMap::new();
    for i in 0..count {
        let name = r.string(&|| format!("the name of variable {i}"))?;
        let what = || format!("variable {name}");
        let rank = r.u8(&what)? as usize;
        ensure!(rank <= 4, "variable {name} has rank {rank} (at most 4)");
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(u64::from(r.u32(&what)?));
        }
        let code = r.u8(&what)?;
        let Some(w) = width(code) else {
            bail!("variable {name} has unknown type code {code} (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)");
        };
        let size = r.u32(&what)? as usize;
        let want = dims
            .iter()
            .try_fold(w as u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n == size as u64);
        ensure!(
            want.is_some(),
            "variable {name}: {size} bytes do not hold dims {dims:?} of type code {code}"
        );
        let range = r.take(size, &what)?;
        ensure!(
            vars.insert(name.clone(), Variable { dims, code, range })
                .is_none(),
            "model.bin names variable {name} twice"
        );
    }
    let mut aliases = Vec::new();
    if r.at < bytes.len() {
        let n = r.u32(&|| "the alias count".to_owned())?;
        for i in 0..n {
            let what = || format!("alias {i}");
            aliases.push((r.string(&what)?, r.string(&what)?));
        }
    }
    ensure!(
        r.at == bytes.len(),
        "model.bin has {} bytes after its last alias",
        bytes.len() - r.at
    );
    Ok((vars, aliases))
}

/// A scalar integer variable.
fn scalar(bytes: &[u8], vars: &BTreeMap<String, Variable>, name: &str) -> Result<usize> {
    let v = vars
        .get(name)
        .with_context(|| format!("model.bin lacks variable {name}"))?;
    let b = &bytes[v.range.clone()];
    let x: i64 = match (v.code, b.len()) {
        (1, 1) => i64::from(b[0] as i8),
        (2, 2) => i64::from(i16::from_le_bytes([b[0], b[1]])),
        (3, 4) => i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))),
        _ => bail!("variable {name} is not an integer scalar"),
    };
    usize::try_from(x).with_context(|| format!("variable {name} is negative ({x})"))
}

/// The dims of a variable that must exist.
fn dims<'v>(vars: &'v BTreeMap<String, Variable>, name: &str) -> Result<&'v [u64]> {
    Ok(&vars
        .get(name)
        .with_context(|| format!("model.bin lacks variable {name}"))?
        .dims)
}

/// Packed names of the CTranslate2 variable `name`, with the rows each takes (a fused
/// projection is split into its parts; the packed plan fuses them again).
fn packed_names(name: &str, hidden: u64) -> Option<Vec<(String, Option<Range<u64>>)>> {
    let (stem, suffix) = name.rsplit_once('/')?;
    let suffix = match suffix {
        "weight" | "gamma" => "weight",
        "bias" | "beta" => "bias",
        "encodings" => "weight",
        _ => return None,
    };
    let whole = |n: &str| Some(vec![(format!("{n}.{suffix}"), None)]);
    match stem {
        "encoder/conv1" => return whole("enc_conv1"),
        "encoder/conv2" => return whole("enc_conv2"),
        "encoder/position_encodings" => return whole("enc_pos"),
        "encoder/layer_norm" => return whole("enc_norm"),
        "decoder/embeddings" => return whole("token_embd"),
        "decoder/position_encodings" => return whole("dec_pos"),
        "decoder/layer_norm" => return whole("output_norm"),
        _ => {}
    }
    let (side, rest) = stem.split_once("/layer_")?;
    let (n, piece) = rest.split_once('/')?;
    let n: usize = n.parse().ok().filter(|_| n.bytes().all(|b| b.is_ascii_digit()))?;
    let enc = side == "encoder";
    if !enc && side != "decoder" {
        return None;
    }
    let p = if enc { "enc_" } else { "" };
    let rows = |i: u64| Some(i * hidden..(i + 1) * hidden);
    let one = |s: &str| Some(vec![(format!("blk.{n}.{p}{s}.{suffix}"), None)]);
    let split = |names: &[&str]| {
        Some(
            names
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("blk.{n}.{p}{s}.{suffix}"), rows(i as u64)))
                .collect(),
        )
    };
    match piece {
        "self_attention/layer_norm" => one("attn_norm"),
        "self_attention/linear_0" => split(&["attn_q", "attn_k", "attn_v"]),
        "self_attention/linear_1" => one("attn_output"),
        "ffn/layer_norm" => one("ffn_norm"),
        "ffn/linear_0" => one("ffn_up"),
        "ffn/linear_1" => one("ffn_down"),
        "attention/layer_norm" if !enc => one("cross_norm"),
        "attention/linear_0" if !enc => one("cross_q"),
        "attention/linear_1" if !enc => split(&["cross_k", "cross_v"]),
        "attention/linear_2" if !enc => one("cross_output"),
        _ => None,
    }
}

/// Variables that configure CTranslate2's runtime rather than hold weights.
const SETTINGS: [&str; 10] = [
    "decoder/activation",
    "decoder/alibi",
    "decoder/alignment_heads",
    "decoder/alignment_layer",
    "decoder/num_heads",
    "decoder/pre_norm",
    "decoder/scale_embeddings",
    "decoder/start_from_zero_embedding",
    "encoder/num_heads",
    "encoder/activation",
];

/// Reads a CTranslate2 Whisper folder.
pub fn open(dir: &Path) -> Result<Model> {
    let path = dir.join("model.bin");
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: read-only private map of an input file the converter does not modify; as with
    // any mmap-based reader, another program truncating it meanwhile is not guarded against.
    let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    let config_json = std::fs::read(dir.join("config.json"))
        .with_context(|| format!("cannot read {}", dir.join("config.json").display()))?;
    let folder = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut model = from_parts(Buffer::Map(map), &config_json, dir)?;
    model.description = format!("{folder} (CTranslate2 Whisper folder)");
    model.name = Some(folder);
    Ok(model)
}

/// Builds a model from `model.bin`'s bytes, `config.json` and the folder's tokenizer.
pub fn from_parts(bin: Buffer, config_json: &[u8], dir: &Path) -> Result<Model> {
    let (vars, aliases) = parse(bin.bytes())?;
    for (alias, target) in &aliases {
        ensure!(
            alias == "decoder/projection/weight" && target == "decoder/embeddings/weight",
            "model.bin aliases {alias} to {target}; only the tied output projection is supported"
        );
    }
    if let Some(name) = vars.keys().find(|n| n.ends_with("weight_scale")) {
        bail!("model.bin holds int8 weights ({name}); convert a float16 or float32 CTranslate2 model");
    }
    let embed = dims(&vars, "decoder/embeddings/weight")?;
    ensure!(
        embed.len() == 2,
        "variable decoder/embeddings/weight is not a matrix"
    );
    let (vocab, hidden) = (embed[0], embed[1]);
    let conv1 = dims(&vars, "encoder/conv1/weight")?;
    ensure!(
        conv1.len() == 3 && conv1[0] == hidden && conv1[2] == 3,
        "variable encoder/conv1/weight has dims {conv1:?}, expected [{hidden}, mels, 3]"
    );
    let ff = dims(&vars, "encoder/layer_0/ffn/linear_0/weight")?[0];
    let count = |side: &str| {
        (0..)
            .take_while(|i| vars.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let (enc_layers, dec_layers) = (count("encoder"), count("decoder"));
    ensure!(
        enc_layers == dec_layers,
        "{enc_layers} encoder and {dec_layers} decoder layers: edgelm runs Whisper models with as many of each"
    );
    let heads = scalar(bin.bytes(), &vars, "encoder/num_heads")?;
    let dec_heads = scalar(bin.bytes(), &vars, "decoder/num_heads")?;
    ensure!(
        heads == dec_heads && heads > 0 && (hidden as usize).is_multiple_of(heads),
        "{heads} encoder and {dec_heads} decoder heads do not divide the width {hidden}"
    );
    let dec_pos = dims(&vars, "decoder/position_encodings/encodings")?;
    let config = whisper::config(
        vocab as usize,
        hidden as usize,
        ff as usize,
        enc_layers,
        heads,
        dec_pos.first().copied().unwrap_or(0) as usize,
    );
    let mut model = Model::new(config, SourceKind::CTranslate2, String::new());
    let buffer = model.add_buffer(bin);
    for (name, v) in &vars {
        if SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let Some(targets) = packed_names(name, hidden) else {
            model.skipped.push((name.clone(), "not used by edgelm".into()));
            continue;
        };
        let ty = match v.code {
            0 => GgmlType::F32,
            4 => GgmlType::F16,
            5 => GgmlType::BF16,
            code => bail!("variable {name} has integer type code {code} where edgelm expects floats"),
        };
        let w = width(v.code).expect("checked") as u64;
        let row_bytes = v.dims.iter().skip(1).product::<u64>() * w;
        for (packed, rows) in targets {
            let (shape, range) = match rows {
                None => (v.dims.clone(), v.range.clone()),
                Some(r) => {
                    ensure!(
                        v.dims.first().is_some_and(|&d| d >= r.end),
                        "variable {name} has dims {:?}, too few rows for its parts of {hidden}",
                        v.dims
                    );
                    let mut shape = v.dims.clone();
                    shape[0] = r.end - r.start;
                    let start = v.range.start + (r.start * row_bytes) as usize;
                    (shape, start..start + ((r.end - r.start) * row_bytes) as usize)
                }
            };
            let t = SrcTensor {
                native: name.clone(),
                shape,
                ty,
                data: Data::Slice { buffer, range },
            };
            model.insert(packed, t)?;
        }
    }
    whisper::finish(&mut model, config_json, dir)?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A model.bin with the given variables (name, dims, type code, bytes) and no aliases.
    fn bin(vars: &[(&str, &[u32], u8, usize)]) -> Vec<u8> {
        let mut out = 6u32.to_le_bytes().to_vec();
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for &(name, dims, code, size) in vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.push(code);
            out.extend_from_slice(&(size as u32).to_le_bytes());
            out.extend(std::iter::repeat_n(0u8, size));
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    fn error(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn reads_variables_and_aliases() {
        let b = bin(&[
            ("encoder/conv1/bias", &[4], 4, 8),
            ("encoder/num_heads", &[], 2, 2),
        ]);
        let (vars, aliases) = parse(&b).unwrap();
        assert_eq!(vars["encoder/conv1/bias"].dims, [4]);
        assert_eq!(scalar(&b, &vars, "encoder/num_heads").unwrap(), 0);
        assert!(aliases.is_empty());
    }

    #[test]
    fn damaged_files_name_the_variable() {
        let good = bin(&[("a/weight", &[2, 2], 0, 16), ("b/bias", &[2], 0, 8)]);
        // Cut inside b/bias's data.
        assert!(
            error(&good[..good.len() - 8]).contains("variable b/bias"),
            "{}",
            error(&good[..good.len() - 8])
        );
        let bad_type = bin(&[("a/weight", &[2, 2], 9, 16)]);
        assert!(error(&bad_type).contains("variable a/weight has unknown type code 9"));
        let bad_size = bin(&[("a/weight", &[2, 3], 0, 16)]);
        assert!(error(&bad_size).contains("a/weight: 16 bytes do not hold dims [2, 3]"));
        let mut other = good.clone();
        other[0] = 5;
        assert!(error(&other).contains("version 5"));
        assert!(error(&good[..3]).contains("truncated"));
        let huge = bin(&[("a/weight", &[u32::MAX, u32::MAX, u32::MAX], 0, 0)]);
        assert!(error(&huge).contains("a/weight"));
        let mut trailing = good;
        trailing.push(1);
        assert!(parse(&trailing).is_err());
    }

    #[test]
    fn fused_projections_are_split_by_rows() {
        let names = packed_names("decoder/layer_3/attention/linear_1/bias", 8).unwrap();
        assert_eq!(
            names,
            [
                ("blk.3.cross_k.bias".to_owned(), Some(0..8)),
                ("blk.3.cross_v.bias".to_owned(), Some(8..16)),
            ]
        );
        assert_eq!(
            packed_names("encoder/layer_0/self_attention/layer_norm/gamma", 8).unwrap()[0].0,
            "blk.0.enc_attn_norm.weight"
        );
        assert!(packed_names("encoder/layer_0/attention/linear_0/weight", 8).is_none());
        assert!(packed_names("decoder/layer_+1/ffn/linear_0/weight", 8).is_none());
    }
}
