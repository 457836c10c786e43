//! Reading GGUF files (versions 2 and 3): metadata key/values and the tensor directory,
//! with every count, offset and size checked against the file before use.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use memmap2::Mmap;

/// GGML tensor types this reader knows by name (sizes for the ones the converter reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// Half float.
    F16,
    /// bfloat16.
    BF16,
    /// 32 × int8 + f16 scale.
    Q8_0,
    /// 32 × 4-bit + f16 scale.
    Q4_0,
    /// 32 × 4-bit + f16 scale + f16 minimum.
    Q4_1,
    /// 32 × 5-bit + f16 scale.
    Q5_0,
    /// 32 × 5-bit + f16 scale + f16 minimum.
    Q5_1,
    /// k-quant: 256 × 2-bit super-blocks.
    Q2K,
    /// k-quant: 256 × 3-bit super-blocks.
    Q3K,
    /// k-quant: 256 × 4-bit super-blocks.
    Q4K,
    /// k-quant: 256 × 5-bit super-blocks.
    Q5K,
    /// k-quant: 256 × 6-bit super-blocks.
    Q6K,
    /// 8-bit integers.
    I8,
    /// 16-bit integers.
    I16,
    /// 32-bit integers.
    I32,
    /// 64-bit integers.
    I64,
    /// 64-bit floats.
    F64,
    /// Any other code (importance-matrix quants and newer types).
    Other(u32),
}

impl GgmlType {
    fn from_code(code: u32) -> GgmlType {
        match code {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2K,
            11 => GgmlType::Q3K,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            24 => GgmlType::I8,
            25 => GgmlType::I16,
            26 => GgmlType::I32,
            27 => GgmlType::I64,
            28 => GgmlType::F64,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// `(values per block, bytes per block)`, or `None` for types this reader cannot size.
    pub fn block(self) -> Option<(u64, u64)> {
        Some(match self {
            GgmlType::F32 | GgmlType::I32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 | GgmlType::I16 => (1, 2),
            GgmlType::I8 => (1, 1),
            GgmlType::I64 | GgmlType::F64 => (1, 8),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q2K => (256, 84),
            GgmlType::Q3K => (256, 110),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
            GgmlType::Other(_) => return None,
        })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgmlType::Other(code) => write!(f, "ggml type {code}"),
            GgmlType::Q2K => f.write_str("Q2_K"),
            GgmlType::Q3K => f.write_str("Q3_K"),
            GgmlType::Q4K => f.write_str("Q4_K"),
            GgmlType::Q5K => f.write_str("Q5_K"),
            GgmlType::Q6K => f.write_str("Q6_K"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Unsigned integer (any width).
    UInt(u64),
    /// Signed integer (any width).
    Int(i64),
    /// Float (any width).
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// String (bytes as stored; GGUF promises UTF-8 but files break that promise).
    Str(Vec<u8>),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer (integers of either sign that fit).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::UInt(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// As a float (floats, or integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(v) => Some(v),
            Value::UInt(v) => Some(v as f64),
            Value::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    /// As a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// One tensor directory entry.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensor {
    /// Name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions as GGUF stores them: innermost (columns) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Absolute byte range in the file (empty for types this reader cannot size).
    pub range: std::ops::Range<usize>,
}

impl GgufTensor {
    /// Number of values.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Shape outermost first (`[rows, cols]` for a matrix), the order edgelm uses.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// An open GGUF file.
pub struct Gguf {
    /// The file's bytes (mapped, or in memory).
    map: Box<dyn std::ops::Deref<Target = [u8]> + Send + Sync>,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub meta: HashMap<String, Value>,
    /// Tensors, in file order.
    pub tensors: Vec<GgufTensor>,
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            bail!(
                "truncated GGUF: {what} at byte {} needs {n} bytes, file has {}",
                self.pos,
                self.buf.len()
            )
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u64(what)?;
        self.take(len, what)
    }

    /// A count of items of at least `min_item` bytes each, rejected if they cannot fit.
    fn count(&mut self, what: &str, min_item: u64) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        ensure!(
            n.saturating_mul(min_item.max(1)) <= left,
            "GGUF {what} {n} cannot fit in the {left} bytes left"
        );
        Ok(n as usize)
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::UInt(self.array::<1>(key)?[0].into()),
            1 => Value::Int(i8::from_le_bytes(self.array(key)?).into()),
            2 => Value::UInt(u16::from_le_bytes(self.array(key)?).into()),
            3 => Value::Int(i16::from_le_bytes(self.array(key)?).into()),
            4 => Value::UInt(self.u32(key)?.into()),
            5 => Value::Int(i32::from_le_bytes(self.array(key)?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array(key)?).into()),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!("GGUF key {key:?}: invalid bool byte {b}"),
            },
            8 => Value::Str(self.string(key)?.to_vec()),
            9 => {
                ensure!(depth < 4, "GGUF key {key:?}: arrays nested too deeply");
                let item = self.u32(key)?;
                let n = self.count(&format!("array length of {key:?}"), value_min_size(item))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::UInt(self.u64(key)?),
            11 => Value::Int(i64::from_le_bytes(self.array(key)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(key)?)),
            other => bail!("GGUF key {key:?}: unknown value type {other}"),
        })
    }
}

/// Smallest encoding of a value of this type (bounds array lengths before allocating).
fn value_min_size(ty: u32) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

impl Gguf {
    /// Maps and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Gguf> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: read-only private map of an input file the converter does not modify; as
        // with any mmap-based reader, another program truncating it meanwhile is not guarded.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        let (version, meta, tensors) =
            parse(&map).with_context(|| format!("{} is not a valid GGUF file", path.display()))?;
        Ok(Gguf {
            map: Box::new(map),
            version,
            meta,
            tensors,
        })
    }

    /// Parses a GGUF image held in memory (tests and fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        let (version, meta, tensors) = parse(&bytes).context("not a valid GGUF file")?;
        Ok(Gguf {
            map: Box::new(bytes),
            version,
            meta,
            tensors,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The raw bytes of a tensor.
    pub fn data(&self, t: &GgufTensor) -> &[u8] {
        &self.map[t.range.clone()]
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A metadata value, or an error naming the missing key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.meta
            .get(key)
            .with_context(|| format!("GGUF metadata lacks {key:?}"))
    }

    /// A required unsigned integer.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.get(key)?
            .as_u64()
            .with_context(|| format!("GGUF metadata {key:?} is not an unsigned integer"))
    }

    /// A required float.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)?
            .as_f64()
            .with_context(|| format!("GGUF metadata {key:?} is not a number"))
    }

    /// A required UTF-8 string.
    pub fn str(&self, key: &str) -> Result<&str> {
        self.get(key)?
            .as_str()
            .with_context(|| format!("GGUF metadata {key:?} is not a UTF-8 string"))
    }
}

type Parsed = (u32, HashMap<String, Value>, Vec<GgufTensor>);

/// Parses a whole GGUF image (the header, and the tensor directory checked against the data).
pub fn parse(buf: &[u8]) -> Result<Parsed> {
    let mut c = Cursor { buf, pos: 0 };
    ensure!(
        c.take(4, "magic").ok() == Some(b"GGUF".as_slice()),
        "bad magic (not a GGUF file)"
    );
    let version = c.u32("version")?;
    ensure!(
        matches!(version, 2 | 3),
        "unsupported GGUF version {version} (2 and 3 are read)"
    );
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.count("metadata count", 12)?;
    let mut meta = HashMap::with_capacity(n_kv);
    for _ in 0..n_kv {
        let key =
            String::from_utf8(c.string("metadata key")?.to_vec()).context("metadata key is not UTF-8")?;
        let ty = c.u32(&key)?;
        let value = c.value(ty, &key, 0)?;
        ensure!(
            meta.insert(key.clone(), value).is_none(),
            "metadata key {key:?} appears twice"
        );
    }
    ensure!(
        n_tensors <= ((buf.len() - c.pos) / 24) as u64,
        "tensor count {n_tensors} cannot fit in the file"
    );
    let mut infos = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name =
            String::from_utf8(c.string("tensor name")?.to_vec()).context("tensor name is not UTF-8")?;
        let n_dims = c.u32(&name)?;
        ensure!((1..=4).contains(&n_dims), "tensor {name:?}: {n_dims} dimensions");
        let dims = (0..n_dims).map(|_| c.u64(&name)).collect::<Result<Vec<_>>>()?;
        let ggml_type = GgmlType::from_code(c.u32(&name)?);
        let offset = c.u64(&name)?;
        infos.push((name, dims, ggml_type, offset));
    }
    let align = match meta.get("general.alignment") {
        None => 32,
        Some(v) => v
            .as_u64()
            .filter(|a| a.is_power_of_two())
            .context("general.alignment is not a power of two")?,
    };
    let data_start = (c.pos as u64).div_ceil(align) * align;
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dims, ggml_type, offset) in infos {
        ensure!(
            dims.iter().all(|&d| d > 0),
            "tensor {name:?}: zero dimension in {dims:?}"
        );
        let numel = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let numel = numel.with_context(|| format!("tensor {name:?}: dimensions {dims:?} overflow"))?;
        let range = match ggml_type.block() {
            None => 0..0,
            Some((per_block, bytes)) => {
                ensure!(
                    dims[0] % per_block == 0,
                    "tensor {name:?}: {ggml_type} rows of {} values are not whole blocks of {per_block}",
                    dims[0]
                );
                let size = (numel / per_block)
                    .checked_mul(bytes)
                    .with_context(|| format!("tensor {name:?}: size of {dims:?} {ggml_type} overflows"))?;
                let start = data_start.checked_add(offset);
                let end = start
                    .and_then(|s| s.checked_add(size))
                    .filter(|&e| e <= buf.len() as u64);
                let Some(end) = end else {
                    bail!(
                        "tensor {name:?}: data at offset {offset} (+{size} bytes) runs past the end of the file"
                    )
                };
                (end - size) as usize..end as usize
            }
        };
        tensors.push(GgufTensor {
            name,
            dims,
            ggml_type,
            range,
        });
    }
    Ok((version, meta, tensors))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a GGUF image: metadata as (key, type, encoded value) and tensors as
    /// (name, dims, type code, data).
    pub(crate) fn build(kv: &[(&str, u32, Vec<u8>)], tensors: &[(&str, Vec<u64>, u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((tensors.len() as u64).to_le_bytes());
        b.extend((kv.len() as u64).to_le_bytes());
        for (k, ty, v) in kv {
            b.extend((k.len() as u64).to_le_bytes());
            b.extend(k.as_bytes());
            b.extend(ty.to_le_bytes());
            b.extend(v);
        }
        let mut offset = 0u64;
        for (name, dims, ty, data) in tensors {
            b.extend((name.len() as u64).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
            b.extend(ty.to_le_bytes());
            b.extend(offset.to_le_bytes());
            offset += (data.len() as u64).div_ceil(32) * 32;
        }
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        for (_, _, _, data) in tensors {
            b.extend(data);
            while !b.len().is_multiple_of(32) {
                b.push(0);
            }
        }
        b
    }

    pub(crate) fn gstr(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    fn sample() -> Vec<u8> {
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend(2u64.to_le_bytes());
        arr.extend(gstr("a"));
        arr.extend(gstr("bc"));
        build(
            &[
                ("general.architecture", 8, gstr("llama")),
                ("llama.rope.freq_base", 6, 10000f32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.tokens", 9, arr),
            ],
            &[("w", vec![32, 2], 8, vec![1; 68]), ("n", vec![4], 0, vec![0; 16])],
        )
    }

    #[test]
    fn parses_metadata_and_tensors() {
        let (v, meta, tensors) = parse(&sample()).unwrap();
        assert_eq!(v, 3);
        assert_eq!(meta["general.architecture"].as_str(), Some("llama"));
        assert_eq!(meta["llama.rope.freq_base"].as_f64(), Some(10000.0));
        assert_eq!(
            meta["tokenizer.ggml.tokens"].as_array().unwrap()[1].as_str(),
            Some("bc")
        );
        assert_eq!(tensors[0].shape(), vec![2, 32]);
        assert_eq!(tensors[0].ggml_type, GgmlType::Q8_0);
        assert_eq!(tensors[0].range.len(), 68);
        assert_eq!(tensors[1].range.start - tensors[0].range.start, 96);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = sample();
        // The last tensor's 16 bytes are followed by 16 bytes of padding that nothing needs.
        for cut in 0..b.len() - 16 {
            assert!(parse(&b[..cut]).is_err(), "truncated at {cut} accepted");
        }
    }

    #[test]
    fn absurd_counts_are_rejected_before_allocating() {
        let mut b = sample();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&b).unwrap_err().to_string().contains("cannot fit"));
        let mut b = sample();
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(parse(&b).unwrap_err().to_string().contains("cannot fit"));
    }

    #[test]
    fn tensor_sizes_that_overflow_are_rejected() {
        // Found by fuzzing: 2^62 f32 values are 2^64 bytes.
        let b = build(&[], &[("x", vec![1 << 62], 0, vec![0; 4])]);
        assert!(parse(&b).unwrap_err().to_string().contains("overflows"));
    }

    #[test]
    fn unknown_tensor_types_are_listed_not_fatal() {
        let b = build(&[], &[("x", vec![32], 99, vec![0; 32])]);
        let (_, _, t) = parse(&b).unwrap();
        assert_eq!(t[0].ggml_type, GgmlType::Other(99));
        assert_eq!(t[0].ggml_type.to_string(), "ggml type 99");
    }

    #[test]
    fn k_quant_tables_of_the_wrong_length_or_row_size_name_the_tensor() {
        // Q2_K, Q3_K, Q6_K (codes 10, 11, 14): 256 values in 84, 110, 210 bytes; two rows of 256.
        for (code, size) in [(10, 84), (11, 110), (14, 210)] {
            let whole = build(&[], &[("w", vec![256, 2], code, vec![0; 2 * size])]);
            assert_eq!(parse(&whole).unwrap().2[0].range.len(), 2 * size);
            // One block's bytes short of the table, at the end of the file (padded to 32).
            let padding = (2 * size).next_multiple_of(32) - 2 * size;
            let short = &whole[..whole.len() - padding - size];
            let err = parse(short).unwrap_err().to_string();
            assert!(
                err.contains("tensor \"w\"") && err.contains("runs past the end"),
                "{err}"
            );
        }
        // Rows of 288 values are not whole super-blocks (Q2_K … Q6_K alike).
        for code in [10, 11, 12, 13, 14] {
            let b = build(&[], &[("w", vec![288, 2], code, vec![0; 1024])]);
            let err = parse(&b).unwrap_err().to_string();
            assert!(
                err.contains("tensor \"w\"")
                    && err.contains("rows of 288 values are not whole blocks of 256"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_version_and_magic() {
        let mut b = sample();
        b[4] = 7;
        assert!(parse(&b).unwrap_err().to_string().contains("version 7"));
        assert!(parse(b"GGML....").unwrap_err().to_string().contains("magic"));
    }
}
