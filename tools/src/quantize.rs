//! Encoding f32 values as q8_0, q4_0, q4_1 (in the tiled layout) or f16, with the error it adds.
//!
//! Each 32-value block gets the scale (and minimum) that minimises its squared error, found by
//! trying a range of candidate scales, refitting each by least squares for the quants it
//! produces, and scoring every candidate with its f16-rounded parameters (what is stored). The
//! plain llama.cpp reference rule (scale from the block maximum) is always one of the
//! candidates, so the search never does worse; [`ErrorStats`] records both for the report.

use anyhow::{Result, bail};
use edgelm::format::DType;
use edgelm_kernels::layout::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QK, QuantBlock, pack_tiles};
use half::f16;
use rayon::prelude::*;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes};

pub mod kquant;

/// Squared-error totals of one tensor's encoding (or of many, summed).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorStats {
    /// Values encoded.
    pub count: u64,
    /// Sum of squared source values.
    pub sq_ref: f64,
    /// Sum of squared errors of what was stored.
    pub sq_err: f64,
    /// Sum of squared errors the plain max-scaling rule would have given.
    pub sq_err_plain: f64,
}

impl ErrorStats {
    /// Adds another tensor's totals.
    pub fn add(&mut self, o: &ErrorStats) {
        self.count += o.count;
        self.sq_ref += o.sq_ref;
        self.sq_err += o.sq_err;
        self.sq_err_plain += o.sq_err_plain;
    }

    /// Root-mean-square error relative to the root-mean-square of the source values.
    pub fn rel_rmse(&self) -> f64 {
        if self.sq_ref > 0.0 {
            (self.sq_err / self.sq_ref).sqrt()
        } else {
            0.0
        }
    }

    /// Fraction of the plain rule's squared error that the scale search removed.
    pub fn search_gain(&self) -> Option<f64> {
        (self.sq_err_plain > 0.0).then(|| 1.0 - self.sq_err / self.sq_err_plain)
    }
}

/// Rounds to the nearest integer (ties to even) for `|v| < 2^22`; vectorizes, unlike `round`.
#[inline(always)]
fn round(v: f32) -> f32 {
    (v + 12_582_912.0) - 12_582_912.0
}

fn to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Sum of `f(i)` over a block, in eight interleaved partial sums (which the compiler can keep in
/// SIMD lanes; a single running sum forces a serial chain).
#[inline(always)]
fn sum32(f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    for i in (0..QK).step_by(8) {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += f(i + j);
        }
    }
    acc.iter().sum()
}

/// The quants in `lo..=hi` nearest to `x / d` and their squared error, for `x ≈ d * q`.
fn fit_sym(x: &[f32; QK], d: f32, lo: f32, hi: f32, q: &mut [f32; QK]) -> f32 {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &x) in q.iter_mut().zip(x) {
        *q = round((x * id).clamp(lo, hi));
    }
    sum32(|i| (x[i] - d * q[i]) * (x[i] - d * q[i]))
}

/// Least-squares scale for fixed quants.
fn ls_scale(x: &[f32; QK], q: &[f32; QK]) -> f32 {
    let qq = sum32(|i| q[i] * q[i]);
    if qq > 0.0 {
        sum32(|i| x[i] * q[i]) / qq
    } else {
        0.0
    }
}

/// The best parameters found so far for one block.
struct Best {
    d: f32,
    m: f32,
    q: [f32; QK],
    err: f32,
}

impl Best {
    fn offer(&mut self, d: f32, m: f32, q: &[f32; QK], err: f32) {
        if err < self.err {
            *self = Best { d, m, q: *q, err };
        }
    }
}

/// The reference rule's result: scale `d`, minimum `m`, quants `q`, scored like the candidates.
fn plain(x: &[f32; QK], d: f32, m: f32, q: [f32; QK]) -> Best {
    let err = sum32(|i| (x[i] - d * q[i] - m) * (x[i] - d * q[i] - m));
    Best { d, m, q, err }
}

/// Refits the scale to quants `q` (replaced by the nearest quants for the f16 scale).
fn refit_sym(x: &[f32; QK], q: &mut [f32; QK], (lo, hi): (f32, f32)) -> (f32, f32) {
    let d = to_f16(ls_scale(x, q));
    (d, fit_sym(x, d, lo, hi, q))
}

/// Best f16 scale for `x ≈ d * q`, `q` in `lo..=hi`: candidates `(extreme + delta) / m` map the
/// reference value `m` near the extreme quant; each is refitted and scored as stored. The search
/// starts from `plain`, the reference rule's result, so it never returns anything worse.
fn search_sym(
    x: &[f32; QK],
    m: f32,
    extreme: f32,
    range: (f32, f32),
    deltas: impl Iterator<Item = f32>,
    plain: Best,
) -> Best {
    let mut best = plain;
    if m == 0.0 {
        return best;
    }
    let mut q = [0.0; QK];
    for delta in deltas {
        let iscale = (extreme + delta) / m;
        for (q, &x) in q.iter_mut().zip(x) {
            *q = round((x * iscale).clamp(range.0, range.1));
        }
        let (d, err) = refit_sym(x, &mut q, range);
        best.offer(d, 0.0, &q, err);
    }
    // Two rounds of refitting the winner to its own quants.
    for _ in 0..2 {
        let mut q = best.q;
        let (d, err) = refit_sym(x, &mut q, range);
        best.offer(d, 0.0, &q, err);
    }
    best
}

/// A block type the converter can produce from floats.
pub trait Quantize:
    QuantBlock<Tile: FromBytes + IntoBytes + Immutable + Send> + FromBytes + IntoBytes + Immutable + Send + Sync
{
    /// The packed type it is stored as.
    const DTYPE: DType;
    /// Encodes one block: `(block, squared error, squared error of the plain rule)`.
    fn quantize(x: &[f32; QK]) -> (Self, f32, f32);
}

impl Quantize for BlockQ8_0 {
    const DTYPE: DType = DType::Q8_0;

    fn quantize(x: &[f32; QK]) -> (Self, f32, f32) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        // llama.cpp `quantize_row_q8_0_ref`: d = amax / 127, q = round(x / d).
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let d16 = to_f16(d);
        let reference = plain(x, d16, 0.0, x.map(|x| (x * id).round()));
        let plain_err = reference.err;
        let deltas = (0..9).map(|i| -3.0 + 0.5 * i as f32);
        let best = search_sym(x, amax, 127.0, (-127.0, 127.0), deltas, reference);
        let block = BlockQ8_0 {
            d: f16::from_f32(best.d).to_bits(),
            qs: best.q.map(|q| q as i8),
        };
        (block, best.err, plain_err)
    }
}

impl Quantize for BlockQ4_0 {
    const DTYPE: DType = DType::Q4_0;

    fn quantize(x: &[f32; QK]) -> (Self, f32, f32) {
        // The value of largest magnitude, with its sign, maps to quant -8.
        let max = x
            .iter()
            .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        // llama.cpp `quantize_row_q4_0_ref`: d = max / -8, q = min(15, trunc(x / d + 8.5)) - 8.
        let d = max / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let d16 = to_f16(d);
        let reference = plain(
            x,
            d16,
            0.0,
            x.map(|x| (((x * id + 8.5) as i32).min(15) - 8) as f32),
        );
        let plain_err = reference.err;
        let deltas = (-9..=9).map(|i| -0.1 * i as f32);
        let best = search_sym(x, max, -8.0, (-8.0, 7.0), deltas, reference);
        let nib = |q: f32| (q + 8.0) as u8;
        let block = BlockQ4_0 {
            d: f16::from_f32(best.d).to_bits(),
            qs: core::array::from_fn(|j| nib(best.q[j]) | (nib(best.q[j + QK / 2]) << 4)),
        };
        (block, best.err, plain_err)
    }
}

/// The quants in `0..=15` nearest to `(x - m) / d` and their squared error, for `x ≈ d * q + m`.
fn fit_asym(x: &[f32; QK], d: f32, m: f32, q: &mut [f32; QK]) -> f32 {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &x) in q.iter_mut().zip(x) {
        *q = round(((x - m) * id).clamp(0.0, 15.0));
    }
    sum32(|i| (x[i] - d * q[i] - m) * (x[i] - d * q[i] - m))
}

/// Least-squares `(d, m)` for fixed quants, or `None` if the quants are all equal.
fn ls_scale_min(x: &[f32; QK], q: &[f32; QK]) -> Option<(f32, f32)> {
    let n = QK as f32;
    let (sl, sl2) = (sum32(|i| q[i]), sum32(|i| q[i] * q[i]));
    let (sx, slx) = (sum32(|i| x[i]), sum32(|i| q[i] * x[i]));
    let det = n * sl2 - sl * sl;
    (det > 0.0).then(|| ((n * slx - sx * sl) / det, (sl2 * sx - sl * slx) / det))
}

impl Quantize for BlockQ4_1 {
    const DTYPE: DType = DType::Q4_1;

    fn quantize(x: &[f32; QK]) -> (Self, f32, f32) {
        let (min, max) = x.iter().fold((x[0], x[0]), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        // llama.cpp `quantize_row_q4_1_ref`: d = (max - min) / 15, q = min(15, trunc((x - min) / d + 0.5)).
        let d = (max - min) / 15.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let (d16, m16) = (to_f16(d), to_f16(min));
        let mut best = plain(
            x,
            d16,
            m16,
            x.map(|x| (((x - min) * id + 0.5) as i32).min(15) as f32),
        );
        let plain_err = best.err;
        let mut q = [0.0; QK];
        let refit = |q: &mut [f32; QK], best: &mut Best| {
            if let Some((d, m)) = ls_scale_min(x, q) {
                let (d, m) = (to_f16(d), to_f16(m));
                let err = fit_asym(x, d, m, q);
                best.offer(d, m, q, err);
            }
        };
        if max > min {
            // make_qkx2-style: 21 scales mapping the range onto 14 to 16 steps, then refits.
            for step in 0..=20 {
                let iscale = (14.0 + 0.1 * step as f32) / (max - min);
                for (q, &x) in q.iter_mut().zip(x) {
                    *q = round(((x - min) * iscale).clamp(0.0, 15.0));
                }
                refit(&mut q, &mut best);
            }
            for _ in 0..2 {
                let mut q = best.q;
                refit(&mut q, &mut best);
            }
        }
        let block = BlockQ4_1 {
            d: f16::from_f32(best.d).to_bits(),
            m: f16::from_f32(best.m).to_bits(),
            qs: core::array::from_fn(|j| best.q[j] as u8 | ((best.q[j + QK / 2] as u8) << 4)),
        };
        (block, best.err, plain_err)
    }
}

/// Largest magnitude a type's scales can represent (f16 max over the largest quant).
fn limit(dtype: DType) -> f32 {
    let max_q = match dtype {
        DType::Q8_0 => 127.0,
        DType::Q4_0 => 8.0,
        DType::Q4_1 => 7.5,
        _ => 1.0,
    };
    f16::MAX.to_f32() * max_q
}

/// Rejects values that are not finite or too large for `dtype`.
pub fn check_range(values: &[f32], dtype: DType) -> Result<()> {
    let amax = values
        .par_iter()
        .map(|v| v.abs())
        .reduce(|| 0.0, |a, b| if a.is_nan() { a } else { a.max(b) });
    if values.par_iter().any(|v| !v.is_finite()) {
        bail!("contains NaN or infinite values");
    }
    if matches!(dtype, DType::F16 | DType::Q8_0 | DType::Q4_0 | DType::Q4_1) && amax > limit(dtype) {
        bail!("values up to {amax:e} are too large for {dtype}");
    }
    Ok(())
}

/// Interleaves a row-major matrix of blocks (`blocks_per_row` per row) into tiles.
pub fn tile<B: QuantBlock>(blocks: &[B], blocks_per_row: usize) -> Vec<u8>
where
    B::Tile: FromZeros + IntoBytes + Immutable,
{
    let rows = blocks.len() / blocks_per_row;
    let mut tiles =
        vec![B::Tile::new_zeroed(); rows.div_ceil(edgelm_kernels::layout::TILE_ROWS) * blocks_per_row];
    pack_tiles(blocks, blocks_per_row, &mut tiles);
    tiles.as_bytes().to_vec()
}

/// Quantizes a row-major `rows × cols` matrix (`cols` a multiple of [`QK`]) into tiles.
pub fn quantize_matrix<B: Quantize>(values: &[f32], cols: usize) -> (Vec<u8>, ErrorStats) {
    let mut blocks = vec![B::default(); values.len() / QK];
    let stats = blocks
        .par_iter_mut()
        .zip(values.par_chunks_exact(QK))
        .map(|(b, x)| {
            let x: &[f32; QK] = x.try_into().expect("QK values");
            let (block, err, plain) = B::quantize(x);
            *b = block;
            ErrorStats {
                count: QK as u64,
                sq_ref: x.iter().map(|&v| f64::from(v * v)).sum(),
                sq_err: err.into(),
                sq_err_plain: plain.into(),
            }
        })
        .reduce(ErrorStats::default, |mut a, b| {
            a.add(&b);
            a
        });
    (tile(&blocks, cols / QK), stats)
}

/// Encodes values as f16 (round to nearest).
pub fn to_f16_bytes(values: &[f32]) -> (Vec<u8>, ErrorStats) {
    let mut out = vec![0u8; values.len() * 2];
    let stats = out
        .par_chunks_exact_mut(2)
        .zip(values.par_iter())
        .map(|(o, &v)| {
            let h = f16::from_f32(v);
            o.copy_from_slice(&h.to_bits().to_le_bytes());
            let e = f64::from(h.to_f32() - v);
            ErrorStats {
                count: 1,
                sq_ref: f64::from(v) * f64::from(v),
                sq_err: e * e,
                sq_err_plain: e * e,
            }
        })
        .reduce(ErrorStats::default, |mut a, b| {
            a.add(&b);
            a
        });
    (out, stats)
}

/// Encodes values as little-endian f32 (exact).
pub fn to_f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, weight-like block: mostly small values with an outlier.
    fn sample(seed: u32) -> [f32; QK] {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        core::array::from_fn(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let u = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            if i == 7 { 0.3 } else { u * 0.2 }
        })
    }

    fn decoded<B: Quantize>(b: &B) -> [f32; QK] {
        let mut out = [0.0; QK];
        b.dequantize(&mut out);
        out
    }

    fn check<B: Quantize>(budget: f32) {
        let (mut total, mut total_plain) = (0.0, 0.0);
        for seed in 0..200 {
            let x = sample(seed);
            let (b, err, plain) = B::quantize(&x);
            let y = decoded(&b);
            let actual: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            assert!(
                (actual - err).abs() <= 1e-6 + err * 1e-4,
                "{:?}: reported {err}, actual {actual}",
                B::DTYPE
            );
            assert!(err <= plain, "search worse than the plain rule");
            let rms = (x.iter().map(|v| v * v).sum::<f32>() / QK as f32).sqrt();
            assert!(
                (err / QK as f32).sqrt() <= budget * rms,
                "{:?} error over budget",
                B::DTYPE
            );
            total += err;
            total_plain += plain;
        }
        assert!(total < total_plain, "{:?}: search gained nothing", B::DTYPE);
    }

    #[test]
    fn search_is_exact_about_its_error_and_beats_max_scaling() {
        check::<BlockQ8_0>(0.02);
        check::<BlockQ4_0>(0.2);
        check::<BlockQ4_1>(0.15);
    }

    #[test]
    fn zero_and_constant_blocks() {
        let zero = [0.0; QK];
        assert_eq!(decoded(&BlockQ8_0::quantize(&zero).0), zero);
        assert_eq!(decoded(&BlockQ4_0::quantize(&zero).0), zero);
        assert_eq!(decoded(&BlockQ4_1::quantize(&zero).0), zero);
        // A constant block is exact with a minimum, and within f16 rounding of the scale without.
        let c = [0.25; QK];
        assert_eq!(decoded(&BlockQ4_1::quantize(&c).0), c);
        for v in decoded(&BlockQ8_0::quantize(&c).0)
            .into_iter()
            .chain(decoded(&BlockQ4_0::quantize(&c).0))
        {
            assert!((v - 0.25).abs() < 1e-4, "{v}");
        }
    }

    #[test]
    fn range_check() {
        assert!(check_range(&[1.0, f32::NAN], DType::F32).is_err());
        assert!(check_range(&[1.0, f32::INFINITY], DType::F32).is_err());
        assert!(check_range(&[1e5], DType::F16).is_err());
        assert!(check_range(&[1e5], DType::F32).is_ok());
        assert!(check_range(&[1e5], DType::Q8_0).is_ok());
        assert!(check_range(&[1e7], DType::Q4_0).is_err());
    }
}
