//! Producing the bytes of one planned tensor from its source parts: raw blocks move unchanged
//! when the source already has the target type (only rows are reordered and tiles interleaved),
//! or are rewritten block by block where [`crate::transcode`] can; anything else is decoded to
//! f32 and encoded (searching scales for quantized targets). Parts a K-quant mix quantizes are
//! quantized into their GGUF type first ([`crate::quantize::kquant`]).

use std::borrow::Cow;

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::DType;
use edgelm_kernels::layout::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0,
};

use zerocopy::FromBytes;

use crate::calibrate::Importance;
use crate::dequant::dequantize;
use crate::plan::{OutTensor, ggml_equivalent, unpermuted_row};
use crate::quantize::kquant::quantize_rows;
use crate::quantize::{ErrorStats, check_range, quantize_matrix, tile, to_f16_bytes, to_f32_bytes};
use crate::source::Model;
use crate::transcode::transcode;

/// The encoded data of one tensor and the error it carries.
#[derive(Debug)]
pub struct Encoded {
    /// Bytes in the packed layout.
    pub bytes: Vec<u8>,
    /// Error relative to the source values (zero for exact copies).
    pub stats: ErrorStats,
    /// Whether the source values were stored unchanged.
    pub exact: bool,
    /// Stored decoded (`--simulate`): the bytes of the mix's GGUF blocks it stands for.
    pub simulated: Option<u64>,
}

/// Appends the rows of `src` (`row_len` items each) to `out`, un-permuted if `heads` is given.
fn gather<T: Copy>(src: &[T], row_len: usize, heads: Option<usize>, out: &mut Vec<T>) {
    let rows = src.len() / row_len;
    for r in 0..rows {
        let s = heads.map_or(r, |h| unpermuted_row(r, rows, h));
        out.extend_from_slice(&src[s * row_len..][..row_len]);
    }
}

/// Items per row of a tensor of this shape: its columns, or 1 for a vector (so that the rows of
/// a bias can be un-permuted like those of its matrix).
fn row_len(shape: &[u64]) -> usize {
    if shape.len() == 1 {
        1
    } else {
        shape[shape.len() - 1] as usize
    }
}

/// Encodes one planned tensor, weighting a mix's quantization error by `importance`.
/// (`calibrated`: measured on text).
pub fn encode(
    model: &Model,
    t: &OutTensor,
    importance: Option<&Importance>,
    calibrated: bool,
) -> Result<Encoded> {
    let (dtype, cols) = (t.plan.dtype, row_len(&t.plan.shape));
    let numel = t.plan.shape.iter().product::<u64>() as usize;
    let mut values = Vec::with_capacity(numel);
    let mut raw = Vec::new();
    let mut same_type = true;
    let mut transcoded = false;
    let mut mixed: Option<(ErrorStats, u64)> = None;
    for part in &t.parts {
        let src = model
            .tensors
            .get(&part.name)
            .with_context(|| format!("missing tensor {}", part.name))?;
        let bytes = model.bytes(src);
        let mut v = vec![0.0; src.numel()];
        dequantize(src.ty, &bytes, &mut v).with_context(|| format!("tensor {}", src.native))?;
        if part.plus_one {
            v.iter_mut().for_each(|x| *x += 1.0);
        }
        let start = values.len();
        gather(&v, row_len(&src.shape), part.unpermute_heads, &mut values);
        if let Some(ty) = part.quant {
            // Quantized into the mix's type and decoded again: what the kernels will see.
            let imp = importance.and_then(|m| m.get(&part.name)).map(Vec::as_slice);
            check_range(&values[start..], DType::F32)?;
            let (blocks, stats) = quantize_rows(ty, &mut values[start..], cols, imp, calibrated)?;
            let m = mixed.get_or_insert_default();
            m.0.add(&stats);
            m.1 += blocks.len() as u64;
            if ggml_equivalent(dtype) == Some(ty) {
                raw.extend_from_slice(&blocks);
            }
            same_type = false;
            continue;
        }
        // The source's blocks as they are, or rewritten block by block into the target type.
        let blocks = match ggml_equivalent(dtype) == Some(src.ty) {
            true => Some(bytes),
            false => transcode(src.ty, dtype, &bytes).map(Cow::Owned),
        };
        same_type &= !part.plus_one;
        match blocks {
            Some(blocks) if same_type => {
                transcoded |= ggml_equivalent(dtype) != Some(src.ty);
                let row_bytes = blocks.len() / (src.numel() / row_len(&src.shape));
                gather(&blocks, row_bytes, part.unpermute_heads, &mut raw);
            }
            _ => same_type = false,
        }
    }
    ensure!(
        values.len() == numel,
        "{} values planned, {} found",
        numel,
        values.len()
    );
    let stats = ErrorStats {
        count: numel as u64,
        sq_ref: values.iter().map(|&v| f64::from(v) * f64::from(v)).sum(),
        ..ErrorStats::default()
    };
    if same_type {
        // A rewrite of Q4_K scales into f16 rounds them: measure what it stored.
        let stats = match transcoded {
            true => stored_error(dtype, &raw, &values, stats)?,
            false => stats,
        };
        let exact = stats.sq_err == 0.0;
        return Ok(Encoded {
            bytes: tiled(dtype, raw, cols)?,
            stats,
            exact,
            simulated: None,
        });
    }
    if let Some((stats, blocks)) = mixed {
        // The mix's blocks, or (--simulate) their decoded values.
        let simulated = dtype == DType::F32;
        ensure!(
            simulated || raw.len() as u64 == blocks,
            "{} is planned as {dtype}, not as its mix's types",
            t.plan.name
        );
        return Ok(Encoded {
            bytes: if simulated {
                to_f32_bytes(&values)
            } else {
                tiled(dtype, raw, cols)?
            },
            stats,
            exact: false,
            simulated: simulated.then_some(blocks),
        });
    }
    check_range(&values, dtype)?;
    let (bytes, stats) = match dtype {
        DType::Q8_0 => quantize_matrix::<BlockQ8_0>(&values, cols),
        DType::Q4_0 => quantize_matrix::<BlockQ4_0>(&values, cols),
        DType::Q4_1 => quantize_matrix::<BlockQ4_1>(&values, cols),
        DType::F16 => to_f16_bytes(&values),
        d if d.is_quantized() => {
            bail!("{d} is stored only as the source's own blocks, not quantized from other values")
        }
        _ => (to_f32_bytes(&values), stats),
    };
    let exact = stats.sq_err == 0.0;
    Ok(Encoded {
        bytes,
        stats,
        exact,
        simulated: None,
    })
}

/// Row-major blocks of `dtype` (rows of `cols` values) in the packed layout: interleaved into
/// tiles for the quantized types, as they are for the others.
fn tiled(dtype: DType, raw: Vec<u8>, cols: usize) -> Result<Vec<u8>> {
    let per_row = cols / dtype.block_values();
    Ok(match dtype {
        DType::Q8_0 => tile(&blocks::<BlockQ8_0>(&raw)?, per_row),
        DType::Q4_0 => tile(&blocks::<BlockQ4_0>(&raw)?, per_row),
        DType::Q4_1 => tile(&blocks::<BlockQ4_1>(&raw)?, per_row),
        DType::Q5_0 => tile(&blocks::<BlockQ5_0>(&raw)?, per_row),
        DType::Q5_1 => tile(&blocks::<BlockQ5_1>(&raw)?, per_row),
        DType::Q4K => tile(&blocks::<BlockQ4K>(&raw)?, per_row),
        DType::Q5K => tile(&blocks::<BlockQ5K>(&raw)?, per_row),
        DType::Q6K => tile(&blocks::<BlockQ6K>(&raw)?, per_row),
        DType::Q3K => tile(&blocks::<BlockQ3K>(&raw)?, per_row),
        DType::Q2K => tile(&blocks::<BlockQ2K>(&raw)?, per_row),
        _ => raw,
    })
}

/// `stats` with the error of the row-major blocks `raw` of `dtype` against `values`.
fn stored_error(dtype: DType, raw: &[u8], values: &[f32], mut stats: ErrorStats) -> Result<ErrorStats> {
    let ty = ggml_equivalent(dtype).context("not a GGML type")?;
    let mut stored = vec![0.0; values.len()];
    dequantize(ty, raw, &mut stored)?;
    stats.sq_err = stored
        .iter()
        .zip(values)
        .map(|(&a, &b)| f64::from(a - b) * f64::from(a - b))
        .sum();
    stats.sq_err_plain = stats.sq_err;
    Ok(stats)
}

fn blocks<B: FromBytes>(raw: &[u8]) -> Result<Vec<B>> {
    raw.chunks_exact(size_of::<B>())
        .map(|c| B::read_from_bytes(c).map_err(|_| anyhow::anyhow!("block size mismatch")))
        .collect()
}
