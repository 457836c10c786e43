//! Quantizing rows of f32 values into GGUF blocks (ggml-common.h layouts): Q4_K, Q5_K, Q6_K,
//! Q5_0, Q5_1 and Q8_0, minimising the importance-weighted squared error `Σ wᵢ (xᵢ − x̂ᵢ)²`.
//!
//! `w` is the per-input-channel importance (mean squared activation, from calibration) or 1.
//! Every scale is chosen by a search: candidate inverse scales around the one that maps the
//! extreme value onto the extreme quant, each refitted by weighted least squares for the quants
//! it produces and scored as stored (f16 or 6/8-bit integer scales). The K types then refine
//! the super-block scale jointly with the integer sub-block scales: quants, super-block scales
//! (least squares over the whole block) and each sub-block's integer scale and minimum (the
//! best of the neighbouring integers) are refitted in turn while the weighted error drops.

use anyhow::{Result, ensure};
use half::f16;
use rayon::prelude::*;

pub use edgelm_kernels::layout::QK_K;
use edgelm_kernels::layout::{BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0};
use zerocopy::IntoBytes;

use super::ErrorStats;
use crate::dequant::dequantize;
use crate::gguf::GgmlType;

fn to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

fn f16_bits(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

/// Round to nearest, ties away from zero (as ggml's `nearest_int` for the values used here).
fn nearest(v: f32) -> i32 {
    v.round() as i32
}

/// Inverse-scale candidates: `(extreme + δ) / reference` for δ in `-1.0..=1.0` by `0.1`.
fn candidates(extreme: f32, reference: f32) -> impl Iterator<Item = f32> {
    (-10..=10).map(move |i| (extreme + 0.1 * i as f32) / reference)
}

/// Weighted error of `x ≈ d · q` with `q = clamp(round(x / d))`; writes `q`.
fn sym_quants(x: &[f32], w: &[f32], d: f32, (lo, hi): (i32, i32), q: &mut [i32]) -> f32 {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut err = 0.0;
    for ((q, &x), &w) in q.iter_mut().zip(x).zip(w) {
        *q = nearest(x * id).clamp(lo, hi);
        let e = x - d * *q as f32;
        err += w * e * e;
    }
    err
}

/// Weighted least-squares scale for fixed quants.
fn sym_refit(x: &[f32], w: &[f32], q: &[i32]) -> f32 {
    let (mut xq, mut qq) = (0.0, 0.0);
    for ((&x, &w), &q) in x.iter().zip(w).zip(q) {
        xq += w * x * q as f32;
        qq += w * (q * q) as f32;
    }
    if qq > 0.0 { xq / qq } else { 0.0 }
}

/// A symmetric fit `x ≈ d · q`.
#[derive(Clone, Copy, Debug)]
struct Sym {
    d: f32,
    err: f32,
}

/// Best scale for `x ≈ d · q`, `q` in `lo..=hi`; `round` maps a scale to what is stored (f16,
/// or identity for a scale that is quantized later). Writes the quants of the best scale.
fn search_sym(x: &[f32], w: &[f32], range: (i32, i32), round: fn(f32) -> f32, q: &mut [i32]) -> Sym {
    let max = x
        .iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let mut best = Sym {
        d: 0.0,
        err: sym_quants(x, w, 0.0, range, q),
    };
    if max == 0.0 {
        return best;
    }
    let mut t = vec![0; x.len()];
    let offer = |d: f32, best: &mut Sym, q: &mut [i32], t: &mut [i32]| {
        let d = round(d);
        let err = sym_quants(x, w, d, range, t);
        if err < best.err {
            *best = Sym { d, err };
            q.copy_from_slice(t);
        }
    };
    // The largest magnitude mapped near the negative extreme (one level more) or the positive.
    for extreme in [range.0 as f32, range.1 as f32] {
        for iscale in candidates(extreme, max) {
            for (t, &x) in t.iter_mut().zip(x) {
                *t = nearest(x * iscale).clamp(range.0, range.1);
            }
            let d = sym_refit(x, w, &t);
            offer(d, &mut best, q, &mut t);
        }
    }
    for _ in 0..2 {
        let d = sym_refit(x, w, q);
        offer(d, &mut best, q, &mut t);
    }
    best
}

/// An asymmetric fit `x ≈ d · q − m` (`m ≥ 0` unless negative minimums are allowed).
#[derive(Clone, Copy, Debug)]
struct Asym {
    d: f32,
    m: f32,
    err: f32,
}

/// Weighted error of `x ≈ d · q − m` with the nearest quants in `0..=hi`; writes `q`.
fn asym_quants(x: &[f32], w: &[f32], d: f32, m: f32, hi: i32, q: &mut [i32]) -> f32 {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut err = 0.0;
    for ((q, &x), &w) in q.iter_mut().zip(x).zip(w) {
        *q = nearest((x + m) * id).clamp(0, hi);
        let e = x - (d * *q as f32 - m);
        err += w * e * e;
    }
    err
}

/// Weighted least-squares `(d, m)` for fixed quants; `m` clamped to `≥ 0` unless `free_min`.
fn asym_refit(x: &[f32], w: &[f32], q: &[i32], free_min: bool) -> Option<(f32, f32)> {
    let (mut sw, mut sq, mut sqq, mut sx, mut sxq) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for ((&x, &w), &q) in x.iter().zip(w).zip(q) {
        let q = q as f32;
        sw += w;
        sq += w * q;
        sqq += w * q * q;
        sx += w * x;
        sxq += w * x * q;
    }
    let det = sw * sqq - sq * sq;
    if det <= 0.0 {
        return None;
    }
    let d = (sw * sxq - sx * sq) / det;
    let m = (sq * sxq - sqq * sx) / det;
    if m < 0.0 && !free_min {
        // The minimum would be positive: fit the scale alone with a zero minimum.
        return (sqq > 0.0).then(|| (sxq / sqq, 0.0));
    }
    Some((d, m))
}

/// Best `(d, m)` for `x ≈ d · q − m`, `q` in `0..=hi`; `round` maps each to what is stored.
/// Writes the quants.
fn search_asym(x: &[f32], w: &[f32], hi: i32, free_min: bool, round: fn(f32) -> f32, q: &mut [i32]) -> Asym {
    let (min, max) = x.iter().fold((x[0], x[0]), |(lo, up), &v| (lo.min(v), up.max(v)));
    let min = if free_min { min } else { min.min(0.0) };
    let mut best = Asym {
        d: 0.0,
        m: round(-min),
        err: f32::INFINITY,
    };
    best.err = asym_quants(x, w, 0.0, best.m, hi, q);
    if max <= min {
        return best;
    }
    let mut t = vec![0; x.len()];
    let offer = |(d, m): (f32, f32), best: &mut Asym, q: &mut [i32], t: &mut [i32]| {
        let (d, m) = (round(d), round(m));
        let err = asym_quants(x, w, d, m, hi, t);
        if err < best.err {
            *best = Asym { d, m, err };
            q.copy_from_slice(t);
        }
    };
    offer(((max - min) / hi as f32, -min), &mut best, q, &mut t);
    for iscale in candidates(hi as f32, max - min) {
        for (t, &x) in t.iter_mut().zip(x) {
            *t = nearest((x - min) * iscale).clamp(0, hi);
        }
        if let Some(dm) = asym_refit(x, w, &t, free_min) {
            offer(dm, &mut best, q, &mut t);
        }
    }
    for _ in 0..2 {
        if let Some(dm) = asym_refit(x, w, q, free_min) {
            offer(dm, &mut best, q, &mut t);
        }
    }
    best
}

/// One super-block of a K type in the making: super-block scales, integer sub-block scales
/// (and minimums), quants, and its weighted error.
#[derive(Clone, Debug)]
struct Super {
    d: f32,
    dmin: f32,
    ls: Vec<i32>,
    lm: Vec<i32>,
    q: Vec<i32>,
    err: f32,
}

/// The shape of a K type's super-block.
#[derive(Clone, Copy)]
struct KShape {
    /// Values per sub-block.
    sub: usize,
    /// Largest quant (`0..=hi`, shifted by `offset`).
    hi: i32,
    /// Subtracted from quants (32 for Q6_K, whose quants are signed; 0 with minimums).
    offset: i32,
    /// Range of the integer sub-block scales.
    scale_range: (i32, i32),
    /// Whether sub-blocks have minimums (Q4_K, Q5_K).
    mins: bool,
}

impl KShape {
    /// Effective (scale, minimum) of sub-block `j`.
    fn sub_scale(&self, s: &Super, j: usize) -> (f32, f32) {
        (
            s.d * s.ls[j] as f32,
            if self.mins { s.dmin * s.lm[j] as f32 } else { 0.0 },
        )
    }

    /// Requantizes sub-block `j` for its current scales; returns its weighted error.
    fn requant(&self, x: &[f32], w: &[f32], s: &mut Super, j: usize) -> f32 {
        let (d, m) = self.sub_scale(s, j);
        let r = j * self.sub..(j + 1) * self.sub;
        if self.mins {
            asym_quants(&x[r.clone()], &w[r.clone()], d, m, self.hi, &mut s.q[r])
        } else {
            let range = (-self.offset, self.hi - self.offset);
            sym_quants(&x[r.clone()], &w[r.clone()], d, range, &mut s.q[r])
        }
    }

    fn requant_all(&self, x: &[f32], w: &[f32], s: &mut Super) {
        s.err = (0..s.ls.len()).map(|j| self.requant(x, w, s, j)).sum();
    }

    /// Least-squares super-block scales for the current integer scales and quants.
    fn refit_super(&self, x: &[f32], w: &[f32], s: &Super) -> (f32, f32) {
        // x ≈ d · a − dmin · b, a = ls·q, b = lm.
        let (mut aa, mut ab, mut bb, mut xa, mut xb) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for (i, (&x, &w)) in x.iter().zip(w).enumerate() {
            let j = i / self.sub;
            let a = (s.ls[j] * s.q[i]) as f32;
            let b = if self.mins { s.lm[j] as f32 } else { 0.0 };
            aa += w * a * a;
            ab += w * a * b;
            bb += w * b * b;
            xa += w * x * a;
            xb += w * x * b;
        }
        if !self.mins || bb == 0.0 {
            return (if aa > 0.0 { xa / aa } else { s.d }, s.dmin);
        }
        let det = aa * bb - ab * ab;
        if det <= 0.0 {
            return (s.d, s.dmin);
        }
        // Minimise Σw(x − d a + e b)² with e = dmin: d = (xa·bb − xb·ab)/det, e = (xa·ab − xb·aa)/det.
        ((xa * bb - xb * ab) / det, (xa * ab - xb * aa) / det)
    }

    /// Chooses sub-block `j`'s integer scale (and minimum) among the neighbours of its
    /// least-squares optimum for the current super-block scales.
    fn refit_sub(&self, x: &[f32], w: &[f32], s: &mut Super, j: usize, cont: (f32, f32)) {
        let (lo, hi) = self.scale_range;
        let around = |v: f32, unit: f32| -> [i32; 2] {
            let r = if unit == 0.0 { 0.0 } else { v / unit };
            [(r.floor() as i32).clamp(lo, hi), (r.ceil() as i32).clamp(lo, hi)]
        };
        let ls_c = around(cont.0, s.d);
        let lm_c = if self.mins { around(cont.1, s.dmin) } else { [0, 0] };
        let r = j * self.sub..(j + 1) * self.sub;
        let (mut best_err, mut best) = (self.requant(x, w, s, j), (s.ls[j], s.lm[j]));
        let saved: Vec<i32> = s.q[r.clone()].to_vec();
        let mut best_q = saved;
        for &ls in &ls_c {
            for &lm in &lm_c {
                (s.ls[j], s.lm[j]) = (ls, lm);
                let err = self.requant(x, w, s, j);
                if err < best_err {
                    best_err = err;
                    best = (ls, lm);
                    best_q.copy_from_slice(&s.q[r.clone()]);
                }
            }
        }
        (s.ls[j], s.lm[j]) = best;
        s.q[r].copy_from_slice(&best_q);
    }

    /// Quantizes one super-block of `QK_K` values.
    fn quantize(&self, x: &[f32], w: &[f32]) -> Super {
        let n_sub = QK_K / self.sub;
        let mut q = vec![0; QK_K];
        // Continuous per-sub-block fits.
        let fits: Vec<(f32, f32)> = (0..n_sub)
            .map(|j| {
                let r = j * self.sub..(j + 1) * self.sub;
                if self.mins {
                    let a = search_asym(&x[r.clone()], &w[r.clone()], self.hi, false, |v| v, &mut q[r]);
                    (a.d, a.m)
                } else {
                    let range = (-self.offset, self.hi - self.offset);
                    (
                        search_sym(&x[r.clone()], &w[r.clone()], range, |v| v, &mut q[r]).d,
                        0.0,
                    )
                }
            })
            .collect();
        let (lo, hi) = self.scale_range;
        let top = |f: fn(&(f32, f32)) -> f32| {
            fits.iter()
                .map(f)
                .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m })
        };
        let (smax, mmax) = (top(|f| f.0), top(|f| f.1));
        let mut best: Option<Super> = None;
        // Starting super-block scales: the largest sub-scale on the extreme integer scale, and
        // slightly larger ones (fewer clipped sub-blocks, coarser steps).
        let extremes: &[f32] = if lo < 0 { &[-128.0, 127.0] } else { &[hi as f32] };
        for &extreme in extremes {
            for stretch in [1.0f32, 0.97, 0.94] {
                let d = to_f16(smax / (extreme * stretch));
                let dmin = to_f16(mmax / (hi as f32 * stretch));
                let unit = |v: f32, u: f32| if u == 0.0 { 0 } else { nearest(v / u).clamp(lo, hi) };
                let mut s = Super {
                    d,
                    dmin,
                    ls: fits.iter().map(|f| unit(f.0, d)).collect(),
                    lm: fits
                        .iter()
                        .map(|f| if self.mins { unit(f.1, dmin) } else { 0 })
                        .collect(),
                    q: vec![0; QK_K],
                    err: 0.0,
                };
                self.requant_all(x, w, &mut s);
                self.refine(x, w, &mut s, &fits);
                if best.as_ref().is_none_or(|b| s.err < b.err) {
                    best = Some(s);
                }
            }
        }
        best.expect("at least one start")
    }

    /// Alternates super-block refits, sub-block integer choices and requantization while the
    /// weighted error drops.
    fn refine(&self, x: &[f32], w: &[f32], s: &mut Super, fits: &[(f32, f32)]) {
        for _ in 0..4 {
            let before = s.err;
            let (d, dmin) = self.refit_super(x, w, s);
            let mut t = s.clone();
            (t.d, t.dmin) = (to_f16(d), to_f16(dmin));
            self.requant_all(x, w, &mut t);
            if t.err < s.err {
                *s = t;
            }
            for (j, &fit) in fits.iter().enumerate() {
                // Least-squares sub-block scales for the current quants (or the first fit).
                let r = j * self.sub..(j + 1) * self.sub;
                let cont = if self.mins {
                    asym_refit(&x[r.clone()], &w[r.clone()], &s.q[r], false).unwrap_or(fit)
                } else {
                    let q: Vec<i32> = s.q[r.clone()].to_vec();
                    (sym_refit(&x[r.clone()], &w[r], &q), 0.0)
                };
                self.refit_sub(x, w, s, j, cont);
            }
            self.requant_all(x, w, s);
            if s.err >= before * (1.0 - 1e-6) {
                break;
            }
        }
    }
}

const Q4_K: KShape = KShape {
    sub: 32,
    hi: 15,
    offset: 0,
    scale_range: (0, 63),
    mins: true,
};
const Q5_K: KShape = KShape { hi: 31, ..Q4_K };
const Q6_K: KShape = KShape {
    sub: 16,
    hi: 63,
    offset: 32,
    scale_range: (-128, 127),
    mins: false,
};

/// Q4_K/Q5_K's twelve bytes of six-bit scales and minimums (ggml's `get_scale_min_k4` order).
fn pack_scales_k4(ls: &[i32], lm: &[i32]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..8 {
        let (l, m) = (ls[j] as u8, lm[j] as u8);
        if j < 4 {
            out[j] |= l;
            out[j + 4] |= m;
        } else {
            out[j + 4] = (l & 0x0f) | ((m & 0x0f) << 4);
            out[j - 4] |= (l >> 4) << 6;
            out[j] |= (m >> 4) << 6;
        }
    }
    out
}

fn q4_k(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let s = Q4_K.quantize(x, w);
    // Sub-blocks 2i and 2i + 1 share 32 bytes: low and high nibbles.
    let pair = |i: usize| (s.q[64 * (i / 32) + i % 32] | (s.q[64 * (i / 32) + 32 + i % 32] << 4)) as u8;
    let block = BlockQ4K {
        d: f16_bits(s.d),
        dmin: f16_bits(s.dmin),
        scales: pack_scales_k4(&s.ls, &s.lm),
        qs: core::array::from_fn(pair),
    };
    out.extend_from_slice(block.as_bytes());
    s.err
}

fn q5_k(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let s = Q5_K.quantize(x, w);
    let low = |i: usize| (s.q[i] & 0x0f) as u8;
    let pair = |i: usize| low(64 * (i / 32) + i % 32) | (low(64 * (i / 32) + 32 + i % 32) << 4);
    // Bit j of byte l: the fifth bit of value l of sub-block j.
    let high = |l: usize| (0..8).fold(0u8, |h, j| h | (((s.q[32 * j + l] >> 4) as u8) << j));
    let block = BlockQ5K {
        d: f16_bits(s.d),
        dmin: f16_bits(s.dmin),
        scales: pack_scales_k4(&s.ls, &s.lm),
        qh: core::array::from_fn(high),
        qs: core::array::from_fn(pair),
    };
    out.extend_from_slice(block.as_bytes());
    s.err
}

fn q6_k(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let s = Q6_K.quantize(x, w);
    let l: Vec<u8> = s.q.iter().map(|&q| (q + 32) as u8).collect();
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for n in 0..2 {
        let (ql, qh, l) = (&mut ql[64 * n..], &mut qh[32 * n..], &l[128 * n..]);
        for i in 0..32 {
            ql[i] = (l[i] & 0x0f) | ((l[i + 64] & 0x0f) << 4);
            ql[i + 32] = (l[i + 32] & 0x0f) | ((l[i + 96] & 0x0f) << 4);
            qh[i] = (l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) | ((l[i + 96] >> 4) << 6);
        }
    }
    let block = BlockQ6K {
        ql,
        qh,
        scales: core::array::from_fn(|j| s.ls[j] as i8),
        d: f16_bits(s.d),
    };
    out.extend_from_slice(block.as_bytes());
    s.err
}

/// Q5_0/Q5_1's 32 fifth bits (little-endian) and 16 bytes of low nibbles (element `j` low,
/// `j + 16` high).
fn five_bits(q: &[i32; 32]) -> ([u8; 4], [u8; 16]) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, &q)| h | (((q >> 4) as u32 & 1) << j));
    let qs = core::array::from_fn(|j| ((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4)) as u8);
    (qh.to_le_bytes(), qs)
}

fn q5_0(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let mut q = [0; 32];
    let s = search_sym(x, w, (-16, 15), to_f16, &mut q);
    let (qh, qs) = five_bits(&q.map(|q| q + 16));
    out.extend_from_slice(
        BlockQ5_0 {
            d: f16_bits(s.d),
            qh,
            qs,
        }
        .as_bytes(),
    );
    s.err
}

fn q5_1(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let mut q = [0; 32];
    let a = search_asym(x, w, 31, true, to_f16, &mut q);
    let (qh, qs) = five_bits(&q);
    let block = BlockQ5_1 {
        d: f16_bits(a.d),
        m: f16_bits(-a.m),
        qh,
        qs,
    };
    out.extend_from_slice(block.as_bytes());
    a.err
}

fn q8_0(x: &[f32], w: &[f32], out: &mut Vec<u8>) -> f32 {
    let mut q = [0; 32];
    let s = search_sym(x, w, (-127, 127), to_f16, &mut q);
    let block = BlockQ8_0 {
        d: f16_bits(s.d),
        qs: q.map(|q| q as i8),
    };
    out.extend_from_slice(block.as_bytes());
    s.err
}

/// The GGUF types [`quantize_row`] produces.
pub const TYPES: [GgmlType; 6] = [
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

/// Appends the blocks of one row `x` of `ty` to `out`, weighting each column by `importance`
/// (all ones when `None`). Returns the weighted squared error.
pub fn quantize_row(ty: GgmlType, x: &[f32], importance: Option<&[f32]>, out: &mut Vec<u8>) -> Result<f32> {
    let encode: fn(&[f32], &[f32], &mut Vec<u8>) -> f32 = match ty {
        GgmlType::Q4K => q4_k,
        GgmlType::Q5K => q5_k,
        GgmlType::Q6K => q6_k,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        _ => anyhow::bail!("edgelm-convert cannot quantize into {ty}"),
    };
    let per_block = ty.block().map_or(1, |b| b.0 as usize);
    ensure!(
        x.len().is_multiple_of(per_block),
        "a row of {} values is not a whole number of {ty} blocks of {per_block}",
        x.len()
    );
    if let Some(imp) = importance {
        ensure!(
            imp.len() == x.len(),
            "an importance vector of {} values for rows of {}",
            imp.len(),
            x.len()
        );
    }
    let ones = vec![1.0; per_block];
    let mut err = 0.0;
    for (b, x) in x.chunks_exact(per_block).enumerate() {
        let w = importance.map_or(&ones[..], |imp| &imp[b * per_block..][..per_block]);
        err += encode(x, w, out);
    }
    Ok(err)
}

/// Column weights from an importance vector: relative to its mean, with a floor of 1 % of the
/// mean so that a channel calibration never saw active is still coded.
fn column_weights(importance: &[f32]) -> Vec<f32> {
    let mean = importance.iter().map(|&v| f64::from(v)).sum::<f64>() / importance.len().max(1) as f64;
    if mean <= 0.0 || !mean.is_finite() {
        return vec![1.0; importance.len()];
    }
    importance
        .iter()
        .map(|&v| (f64::from(v) / mean) as f32 + 0.01)
        .collect()
}

/// Quantizes the rows (`cols` values each) of `values` into `ty`, in parallel, weighting each
/// column by `importance`, and replaces the values with their decoded ones. Returns the GGUF
/// blocks (row after row) and the error against the values given.
pub fn quantize_rows(
    ty: GgmlType,
    values: &mut [f32],
    cols: usize,
    importance: Option<&[f32]>,
) -> Result<(Vec<u8>, ErrorStats)> {
    ensure!(
        cols > 0 && values.len().is_multiple_of(cols),
        "{} values are not rows of {cols}",
        values.len()
    );
    // Every type stores a scale of at least amax / 15 as f16 (Q5_0: amax / 16).
    let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    ensure!(
        amax <= f16::MAX.to_f32() * 15.0,
        "values up to {amax:e} are too large for {ty}"
    );
    let weights = importance.map(column_weights);
    let rows: Vec<Result<(Vec<u8>, ErrorStats)>> = values
        .par_chunks_exact_mut(cols)
        .map(|row| {
            let mut bytes = Vec::new();
            quantize_row(ty, row, weights.as_deref(), &mut bytes)?;
            let mut decoded = vec![0.0; cols];
            dequantize(ty, &bytes, &mut decoded)?;
            let mut stats = ErrorStats {
                count: cols as u64,
                ..ErrorStats::default()
            };
            for (x, &y) in row.iter_mut().zip(&decoded) {
                let e = f64::from(*x - y);
                stats.sq_ref += f64::from(*x) * f64::from(*x);
                stats.sq_err += e * e;
                *x = y;
            }
            // No plain-rule reference is computed for these types (the report shows no gain).
            stats.sq_err_plain = 0.0;
            Ok((bytes, stats))
        })
        .collect();
    let mut bytes = Vec::new();
    let mut stats = ErrorStats::default();
    for row in rows {
        let (b, s) = row?;
        bytes.extend_from_slice(&b);
        stats.add(&s);
    }
    Ok((bytes, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic weight-like rows: Gaussian-ish noise with a few outliers.
    fn rows(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(7);
        let mut u = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|i| {
                let g = (0..4).map(|_| u()).sum::<f32>() * 0.05;
                if i % 97 == 5 { g * 6.0 } else { g }
            })
            .collect()
    }

    fn decode(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
        let mut y = vec![0.0; n];
        dequantize(ty, bytes, &mut y).unwrap();
        y
    }

    fn weighted(x: &[f32], y: &[f32], w: &[f32]) -> f64 {
        x.iter()
            .zip(y)
            .zip(w)
            .map(|((a, b), w)| f64::from(*w) * f64::from(a - b).powi(2))
            .sum()
    }

    /// Each type decodes (through the GGUF dequantizer) to values within its error budget,
    /// and reports the error it stored.
    #[test]
    fn round_trip_through_the_gguf_dequantizer() {
        // Relative RMSE budgets: a few percent under the bits each type has.
        let budgets = [
            (GgmlType::Q4K, 0.10),
            (GgmlType::Q5K, 0.05),
            (GgmlType::Q6K, 0.025),
            (GgmlType::Q5_0, 0.06),
            (GgmlType::Q5_1, 0.05),
            (GgmlType::Q8_0, 0.01),
        ];
        let x = rows(4 * QK_K, 3);
        let ones = vec![1.0; x.len()];
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        for (ty, budget) in budgets {
            let mut bytes = Vec::new();
            let err = quantize_row(ty, &x, None, &mut bytes).unwrap();
            let y = decode(ty, &bytes, x.len());
            let actual = weighted(&x, &y, &ones);
            assert!(
                (actual - f64::from(err)).abs() <= 1e-3 * actual + 1e-9,
                "{ty}: reported {err}, decoded {actual}"
            );
            let rel = (actual / x.len() as f64).sqrt() / f64::from(rms);
            assert!(rel <= budget, "{ty}: relative RMSE {rel} over {budget}");
        }
    }

    /// The search is at least as good as llama.cpp's reference rules would be for Q5_0
    /// (scale from the block maximum) and better in total.
    #[test]
    fn q5_0_search_beats_the_reference_rule() {
        let x = rows(64 * 32, 5);
        let mut bytes = Vec::new();
        let err = quantize_row(GgmlType::Q5_0, &x, None, &mut bytes).unwrap();
        let mut plain = 0.0f64;
        for b in x.chunks_exact(32) {
            let max = b
                .iter()
                .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = to_f16(max / -16.0);
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            for &v in b {
                let q = ((v * id + 16.5) as i32).min(31) - 16;
                plain += f64::from(v - d * q as f32).powi(2);
            }
        }
        assert!(f64::from(err) < 0.95 * plain, "search {err} vs plain {plain}");
    }

    /// Weighting by importance lowers the weighted error (the quantity that reaches the
    /// layer's output) against an unweighted encoding of the same values.
    #[test]
    fn importance_lowers_weighted_error() {
        let x = rows(8 * QK_K, 11);
        let cols = 2 * QK_K;
        // Channel importance spread over three orders of magnitude, as in real activations.
        let imp: Vec<f32> = (0..cols)
            .map(|c| 10f32.powf(((c * 37) % 101) as f32 / 33.0))
            .collect();
        for ty in TYPES {
            let (mut plain, mut weighted_bytes) = (Vec::new(), Vec::new());
            for row in x.chunks_exact(cols) {
                quantize_row(ty, row, None, &mut plain).unwrap();
                quantize_row(ty, row, Some(&imp), &mut weighted_bytes).unwrap();
            }
            let w: Vec<f32> = imp.iter().cycle().take(x.len()).copied().collect();
            let e_plain = weighted(&x, &decode(ty, &plain, x.len()), &w);
            let e_weighted = weighted(&x, &decode(ty, &weighted_bytes, x.len()), &w);
            assert!(
                e_weighted < e_plain,
                "{ty}: weighted {e_weighted} vs plain {e_plain}"
            );
        }
    }

    #[test]
    fn zero_rows_and_bad_shapes() {
        for ty in TYPES {
            let mut bytes = Vec::new();
            let x = vec![0.0; QK_K];
            assert_eq!(quantize_row(ty, &x, None, &mut bytes).unwrap(), 0.0);
            assert_eq!(decode(ty, &bytes, QK_K), x, "{ty}");
        }
        let mut out = Vec::new();
        let err = quantize_row(GgmlType::Q4K, &[0.0; 576], None, &mut out).unwrap_err();
        assert!(err.to_string().contains("576"), "{err}");
        let err = quantize_row(GgmlType::Q5_0, &[0.0; 64], Some(&[1.0; 32]), &mut out).unwrap_err();
        assert!(err.to_string().contains("importance"), "{err}");
        assert!(quantize_row(GgmlType::Q2K, &[0.0; 256], None, &mut out).is_err());
        let err = quantize_rows(GgmlType::Q5_0, &mut [1e7; 32], 32, None).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert!(quantize_rows(GgmlType::Q5_0, &mut [0.0; 48], 32, None).is_err());
    }
}
