//! Float kernels written once for every [`Lanes`] type: normalization, activations,
//! element-wise arithmetic, rotary embedding, f16 conversion, float matmul and the f16
//! attention loops. Each has the semantics of its namesake in [`crate::scalar`].
//!
//! Slices are walked `L::N` values at a time; a last partial vector goes through a padded
//! stack buffer, so every value takes the same vector code.
//!
//! The loop helpers call their closure twice (whole vectors, then the padded tail), so every
//! closure passed to them is `#[inline(always)]`: one left out of line would be compiled
//! without the caller's `#[target_feature]`s and every intrinsic in it would become a call
//! (`targets/check-inlined.sh` fails the build on that).

use core::ops::Range;

use super::lanes::{Lanes, MAX_LANES};
use super::math;
use crate::view::OutCols;

/// The ranges `[i, i + N)` covering `0..len`, the last one possibly shorter.
#[inline(always)]
pub(crate) fn chunks<L: Lanes>(len: usize) -> impl Iterator<Item = Range<usize>> {
    (0..len).step_by(L::N).map(move |i| i..(i + L::N).min(len))
}

/// Loads `src` (up to `N` values); missing lanes are `pad`.
#[inline(always)]
pub(crate) fn load_pad<L: Lanes>(src: &[f32], pad: f32) -> L {
    if src.len() >= L::N {
        L::load(src)
    } else {
        let mut buf = [pad; MAX_LANES];
        buf[..src.len()].copy_from_slice(src);
        L::load(&buf)
    }
}

/// Loads `src` (up to `N` values); missing lanes are 0.
#[inline(always)]
pub(crate) fn load<L: Lanes>(src: &[f32]) -> L {
    load_pad(src, 0.0)
}

/// Stores the first `dst.len()` (at most `N`) lanes of `v`.
#[inline(always)]
pub(crate) fn store<L: Lanes>(v: L, dst: &mut [f32]) {
    if dst.len() >= L::N {
        v.store(dst);
    } else {
        let mut buf = [0.0; MAX_LANES];
        v.store(&mut buf);
        let n = dst.len();
        dst.copy_from_slice(&buf[..n]);
    }
}

/// Loads `src` (up to `N` f16 values); missing lanes are 0.
#[inline(always)]
fn load_f16<L: Lanes>(src: &[u16]) -> L {
    if src.len() >= L::N {
        L::load_f16(src)
    } else {
        let mut buf = [0; MAX_LANES];
        buf[..src.len()].copy_from_slice(src);
        L::load_f16(&buf)
    }
}

/// `x[i] = f(x[i])`.
#[inline(always)]
fn map<L: Lanes>(x: &mut [f32], f: impl Fn(L) -> L) {
    let mut xs = x.chunks_exact_mut(L::N);
    for x in &mut xs {
        f(L::load(x)).store(x);
    }
    let x = xs.into_remainder();
    if !x.is_empty() {
        store(f(load(x)), x);
    }
}

/// `out[i] = f(a[i], b[i])`; `out` may alias neither input, all three have one length.
#[inline(always)]
fn zip_map<L: Lanes>(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(L, L) -> L) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "operand lengths differ"
    );
    let (mut os, mut as_, mut bs) = (
        out.chunks_exact_mut(L::N),
        a.chunks_exact(L::N),
        b.chunks_exact(L::N),
    );
    for ((o, a), b) in (&mut os).zip(&mut as_).zip(&mut bs) {
        f(L::load(a), L::load(b)).store(o);
    }
    let o = os.into_remainder();
    if !o.is_empty() {
        store(f(load(as_.remainder()), load(bs.remainder())), o);
    }
}

/// `dst[i] = f(dst[i], src[i])`.
#[inline(always)]
fn update<L: Lanes>(dst: &mut [f32], src: &[f32], f: impl Fn(L, L) -> L) {
    assert_eq!(dst.len(), src.len(), "operand lengths differ");
    let (mut ds, mut ss) = (dst.chunks_exact_mut(L::N), src.chunks_exact(L::N));
    for (d, s) in (&mut ds).zip(&mut ss) {
        f(L::load(d), L::load(s)).store(d);
    }
    let d = ds.into_remainder();
    if !d.is_empty() {
        store(f(load(d), load(ss.remainder())), d);
    }
}

/// `Σ f(x[i])`, padding lanes `pad`, over two accumulators (two independent chains: vectors
/// `0, 2, 4, ...` into the first, `1, 3, ...` into the second).
#[inline(always)]
fn sum_map<L: Lanes>(x: &[f32], pad: f32, f: impl Fn(L) -> L) -> f32 {
    let (mut a0, mut a1) = (L::zero(), L::zero());
    let mut pairs = x.chunks_exact(2 * L::N);
    for p in &mut pairs {
        a0 = a0.add(f(L::load(p)));
        a1 = a1.add(f(L::load(&p[L::N..])));
    }
    let rest = pairs.remainder();
    if !rest.is_empty() {
        let (first, second) = rest.split_at(rest.len().min(L::N));
        a0 = a0.add(f(load_pad(first, pad)));
        if !second.is_empty() {
            a1 = a1.add(f(load_pad(second, pad)));
        }
    }
    a0.add(a1).reduce_sum()
}

/// `x[i] = f(x[i])`, returning `Σ f(x[i])` over one accumulator; the tail's missing lanes
/// are `pad` (`f(pad)` must be 0).
#[inline(always)]
fn map_sum<L: Lanes>(x: &mut [f32], pad: f32, f: impl Fn(L) -> L) -> f32 {
    let mut sum = L::zero();
    let mut xs = x.chunks_exact_mut(L::N);
    for x in &mut xs {
        let v = f(L::load(x));
        sum = sum.add(v);
        v.store(x);
    }
    let x = xs.into_remainder();
    if !x.is_empty() {
        let v = f(load_pad(x, pad));
        sum = sum.add(v);
        store(v, x);
    }
    sum.reduce_sum()
}

/// See [`crate::scalar::rms_norm`].
#[inline(always)]
pub(crate) fn rms_norm<L: Lanes>(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = sum_map::<L>(
        x,
        0.0,
        #[inline(always)]
        |v| v.mul(v),
    ) / x.len() as f32;
    let scale = L::splat(1.0 / libm::sqrtf(ms + eps));
    zip_map(
        out,
        x,
        w,
        #[inline(always)]
        |v: L, g| v.mul(scale).mul(g),
    );
}

/// See [`crate::scalar::layer_norm`].
#[inline(always)]
pub(crate) fn layer_norm<L: Lanes>(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(b.len(), out.len(), "operand lengths differ");
    let n = x.len() as f32;
    let mean = sum_map::<L>(
        x,
        0.0,
        #[inline(always)]
        |v| v,
    ) / n;
    let m = L::splat(mean);
    // Padding lanes hold the mean, so they add nothing to the variance.
    let var = sum_map::<L>(
        x,
        mean,
        #[inline(always)]
        |v| v.sub(m).mul(v.sub(m)),
    ) / n;
    let scale = L::splat(1.0 / libm::sqrtf(var + eps));
    zip_map(
        out,
        x,
        w,
        #[inline(always)]
        |v: L, g| v.sub(m).mul(scale).mul(g),
    );
    update(
        out,
        b,
        #[inline(always)]
        |o: L, bias| o.add(bias),
    );
}

/// See [`crate::scalar::softmax`].
#[inline(always)]
pub(crate) fn softmax<L: Lanes>(x: &mut [f32], scale: f32) {
    let mut mx = L::splat(f32::NEG_INFINITY);
    let mut vs = x.chunks_exact(L::N);
    for v in &mut vs {
        mx = mx.max(L::load(v));
    }
    if !vs.remainder().is_empty() {
        mx = mx.max(load_pad(vs.remainder(), f32::NEG_INFINITY));
    }
    let (s, max) = (L::splat(scale), L::splat(mx.reduce_max() * scale));
    // Padding lanes are -inf: their exp is 0.
    let sum = map_sum(
        x,
        f32::NEG_INFINITY,
        #[inline(always)]
        |v: L| math::exp_nonpositive(v.mul(s).sub(max)),
    );
    let inv = L::splat(1.0 / sum);
    map(
        x,
        #[inline(always)]
        |v: L| v.mul(inv),
    );
}

/// See [`crate::scalar::swiglu`].
#[inline(always)]
pub(crate) fn swiglu<L: Lanes>(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let one = L::splat(1.0);
    zip_map(
        out,
        gate,
        up,
        #[inline(always)]
        |g: L, u| g.div(one.add(math::exp(g.mul(L::splat(-1.0))))).mul(u),
    );
}

/// See [`crate::scalar::gelu_erf`].
#[inline(always)]
pub(crate) fn gelu_erf<L: Lanes>(x: &mut [f32]) {
    let (half, one) = (L::splat(0.5), L::splat(1.0));
    let k = L::splat(core::f32::consts::FRAC_1_SQRT_2);
    map(
        x,
        #[inline(always)]
        |v: L| half.mul(v).mul(one.add(math::erf(v.mul(k)))),
    );
}

/// See [`crate::scalar::gelu_tanh`].
#[inline(always)]
pub(crate) fn gelu_tanh<L: Lanes>(x: &mut [f32]) {
    let (half, one) = (L::splat(0.5), L::splat(1.0));
    let (k, c) = (L::splat(0.797_884_6), L::splat(0.044715));
    map(
        x,
        #[inline(always)]
        |v: L| {
            let u = k.mul(c.mul(v).mul(v).mul_add(v, v));
            half.mul(v).mul(one.add(math::tanh_abs(u)))
        },
    );
}

/// See [`crate::scalar::add`].
#[inline(always)]
pub(crate) fn add<L: Lanes>(dst: &mut [f32], src: &[f32]) {
    update(
        dst,
        src,
        #[inline(always)]
        |d: L, s| d.add(s),
    );
}

/// See [`crate::scalar::mul`].
#[inline(always)]
pub(crate) fn mul<L: Lanes>(dst: &mut [f32], src: &[f32]) {
    update(
        dst,
        src,
        #[inline(always)]
        |d: L, s| d.mul(s),
    );
}

/// One [`rope_neox`] step: `(a·c − b·s, b·c + a·s)`.
#[inline(always)]
fn rotate<L: Lanes>(a: L, b: L, c: L, s: L) -> (L, L) {
    (a.mul(c).sub(b.mul(s)), b.mul(c).add(a.mul(s)))
}

/// See [`crate::scalar::rope_neox`]. Bit-exact: the same products and differences.
#[inline(always)]
pub(crate) fn rope_neox<L: Lanes>(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    crate::scalar::check_rope(x, cos, sin);
    let (lo, hi) = x[..2 * cos.len()].split_at_mut(cos.len());
    let (mut los, mut his) = (lo.chunks_exact_mut(L::N), hi.chunks_exact_mut(L::N));
    let (mut cs, mut ss) = (cos.chunks_exact(L::N), sin.chunks_exact(L::N));
    for (((lo, hi), c), s) in (&mut los).zip(&mut his).zip(&mut cs).zip(&mut ss) {
        let (a, b) = rotate(L::load(lo), L::load(hi), L::load(c), L::load(s));
        a.store(lo);
        b.store(hi);
    }
    let (lo, hi) = (los.into_remainder(), his.into_remainder());
    if !lo.is_empty() {
        let (a, b) = rotate::<L>(load(lo), load(hi), load(cs.remainder()), load(ss.remainder()));
        store(a, lo);
        store(b, hi);
    }
}

/// See [`crate::scalar::rope_interleaved`]. Bit-exact: the same products and sums.
#[inline(always)]
pub(crate) fn rope_interleaved<L: Lanes>(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    crate::scalar::check_rope(x, cos, sin);
    // Even lanes get a·c − b·s, odd lanes b·c + a·s: x·c + swap(x)·s·(∓1).
    let sign = L::load(&[-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0]);
    let dup = |src: &[f32]| {
        let mut buf = [0.0; MAX_LANES / 2];
        buf[..src.len()].copy_from_slice(src);
        L::load_dup_pairs(&buf)
    };
    for r in chunks::<L>(2 * cos.len()) {
        let pairs = r.start / 2..r.end / 2;
        let v: L = load(&x[r.clone()]);
        let (c, s) = (dup(&cos[pairs.clone()]), dup(&sin[pairs]));
        store(v.mul(c).add(v.swap_pairs().mul(s).mul(sign)), &mut x[r]);
    }
}

/// See [`crate::scalar::f32_to_f16`].
#[inline(always)]
pub(crate) fn f32_to_f16<L: Lanes>(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "operand lengths differ");
    let (mut ss, mut ds) = (src.chunks_exact(L::N), dst.chunks_exact_mut(L::N));
    for (s, d) in (&mut ss).zip(&mut ds) {
        L::load(s).store_f16(d);
    }
    let d = ds.into_remainder();
    if !d.is_empty() {
        let mut buf = [0; MAX_LANES];
        load::<L>(ss.remainder()).store_f16(&mut buf);
        d.copy_from_slice(&buf[..d.len()]);
    }
}

/// A float weight type the float matmul reads.
pub(crate) trait FloatWeight: Copy {
    /// Loads up to `N` values as f32 lanes (missing lanes 0).
    fn load<L: Lanes>(src: &[Self]) -> L;
}

impl FloatWeight for f32 {
    #[inline(always)]
    fn load<L: Lanes>(src: &[f32]) -> L {
        load(src)
    }
}

impl FloatWeight for u16 {
    #[inline(always)]
    fn load<L: Lanes>(src: &[u16]) -> L {
        load_f16(src)
    }
}

/// One step of [`dots`]: the `r` columns of `RB` weight rows times those of `NT` input rows,
/// into one accumulator per (row, input). A closure would not inherit the caller's target
/// features (its intrinsics would become calls), so this is an always-inlined function.
#[inline(always)]
fn float_step<L: Lanes, W: FloatWeight, const RB: usize, const NT: usize>(
    w: [&[W]; RB],
    x: [&[f32]; NT],
    acc: &mut [[L; NT]; RB],
    r: Range<usize>,
) {
    let mut wv = [L::zero(); RB];
    for j in 0..RB {
        wv[j] = W::load(&w[j][r.clone()]);
    }
    for t in 0..NT {
        let xv: L = load(&x[t][r.clone()]);
        for j in 0..RB {
            acc[j][t] = wv[j].mul_add(xv, acc[j][t]);
        }
    }
}

/// Dots of `RB` weight rows with `NT` input rows (all `len` long), by input row: a register
/// tile of `RB × NT` accumulators, so that each load feeds several FMAs. Whole vectors first,
/// then the last partial one (padded); each dot sums in the same order whatever `RB` and `NT`.
#[inline(always)]
fn dots<L: Lanes, W: FloatWeight, const RB: usize, const NT: usize>(
    w: [&[W]; RB],
    x: [&[f32]; NT],
    len: usize,
) -> [[f32; RB]; NT] {
    let mut acc = [[L::zero(); NT]; RB];
    let full = len - len % L::N;
    for i in (0..full).step_by(L::N) {
        float_step(w, x, &mut acc, i..i + L::N);
    }
    if full < len {
        float_step(w, x, &mut acc, full..len);
    }
    let mut out = [[0.0; RB]; NT];
    for j in 0..RB {
        for t in 0..NT {
            out[t][j] = acc[j][t].reduce_sum();
        }
    }
    out
}

/// Weight rows per register tile of the float matmul.
const FLOAT_ROWS: usize = 3;
/// Tokens per register tile of the float matmul.
const FLOAT_GROUP: usize = 4;

/// Rows `[r, r + RB)` of the float matmul for every token, in tiles of `FLOAT_GROUP` tokens.
#[inline(always)]
fn float_rows<L: Lanes, W: FloatWeight, const RB: usize>(
    w: &[W],
    x: &[f32],
    out: &mut OutCols<'_>,
    r: usize,
) {
    let (n, cols) = (out.n(), x.len() / out.n());
    let wr: [&[W]; RB] = core::array::from_fn(|j| &w[(r + j) * cols..][..cols]);
    let mut store = |t: usize, d: &[f32; RB]| out.row(t)[r..r + RB].copy_from_slice(d);
    let mut t = 0;
    while n - t >= FLOAT_GROUP {
        let xs = core::array::from_fn(|i| &x[(t + i) * cols..][..cols]);
        let d = dots::<L, W, RB, FLOAT_GROUP>(wr, xs, cols);
        for (i, dt) in d.iter().enumerate() {
            store(t + i, dt);
        }
        t += FLOAT_GROUP;
    }
    for t in t..n {
        let [d] = dots::<L, W, RB, 1>(wr, [&x[t * cols..][..cols]], cols);
        store(t, &d);
    }
}

/// See [`crate::scalar::matmul_f16`] and [`crate::scalar::matmul_f32`].
#[inline(always)]
pub(crate) fn matmul_float<L: Lanes, W: FloatWeight>(w: &[W], x: &[f32], mut out: OutCols<'_>) {
    let n = out.n();
    let cols = x.len() / n.max(1);
    assert_eq!(x.len(), n * cols, "inputs are not n × cols");
    assert_eq!(w.len(), out.width() * cols, "weights are not width × cols");
    if n == 0 {
        return;
    }
    let rows = out.width();
    let mut r = 0;
    while rows - r >= FLOAT_ROWS {
        float_rows::<L, W, FLOAT_ROWS>(w, x, &mut out, r);
        r += FLOAT_ROWS;
    }
    for r in r..rows {
        float_rows::<L, W, 1>(w, x, &mut out, r);
    }
}

/// Input rows per register tile of [`matmul_f32_t`].
const T_ROWS: usize = 4;

/// One register tile of [`matmul_f32_t`]: input rows `t0..t0 + MR` times the `NV` vectors of
/// columns from `c0` (the last one partial, padded, unless `FULL`), as outer products: per `k`,
/// the tile's vectors of `b` are loaded once and each input value is broadcast to all of them.
#[inline(always)]
fn t_tile<L: Lanes, const MR: usize, const NV: usize, const FULL: bool>(
    b: &[f32],
    x: &[f32],
    out: &mut OutCols<'_>,
    t0: usize,
    c0: usize,
) {
    let (width, k) = (out.width(), x.len() / out.n());
    let end = (c0 + NV * L::N).min(width);
    let cols: [Range<usize>; NV] =
        core::array::from_fn(|v| (c0 + v * L::N).min(end)..(c0 + (v + 1) * L::N).min(end));
    let xs: [&[f32]; MR] = core::array::from_fn(|i| &x[(t0 + i) * k..][..k]);
    let mut acc = [[L::zero(); NV]; MR];
    for (kk, row) in b.chunks_exact(width).take(k).enumerate() {
        let bv: [L; NV] = if FULL {
            let row = &row[c0..c0 + NV * L::N];
            core::array::from_fn(|v| L::load(&row[v * L::N..]))
        } else {
            core::array::from_fn(|v| load(&row[cols[v].clone()]))
        };
        for i in 0..MR {
            let xv = L::splat(xs[i][kk]);
            for v in 0..NV {
                acc[i][v] = xv.mul_add(bv[v], acc[i][v]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let row = out.row(t0 + i);
        for v in 0..NV {
            store(acc[v], &mut row[cols[v].clone()]);
        }
    }
}

/// The rows of [`matmul_f32_t`] for the `NV` column vectors from `c0`: `T_ROWS` at a time,
/// then one at a time.
#[inline(always)]
fn t_columns<L: Lanes, const NV: usize, const FULL: bool>(
    b: &[f32],
    x: &[f32],
    out: &mut OutCols<'_>,
    c0: usize,
) {
    let n = out.n();
    let mut t = 0;
    while n - t >= T_ROWS {
        t_tile::<L, T_ROWS, NV, FULL>(b, x, out, t, c0);
        t += T_ROWS;
    }
    for t in t..n {
        t_tile::<L, 1, NV, FULL>(b, x, out, t, c0);
    }
}

/// See [`crate::scalar::matmul_f32_t`]. Column tiles outside, input rows inside, so a tile's
/// strip of `b` stays in cache for every row: three vectors wide while they fill, then two,
/// one, and a last partial vector.
#[inline(always)]
pub(crate) fn matmul_f32_t<L: Lanes>(b: &[f32], x: &[f32], mut out: OutCols<'_>) {
    let (n, width) = (out.n(), out.width());
    let k = x.len() / n.max(1);
    assert_eq!(x.len(), n * k, "inputs are not n × k");
    assert_eq!(b.len(), k * width, "b is not k × width");
    if n == 0 {
        return;
    }
    let mut c = 0;
    while width - c >= 3 * L::N {
        t_columns::<L, 3, true>(b, x, &mut out, c);
        c += 3 * L::N;
    }
    if width - c >= 2 * L::N {
        t_columns::<L, 2, true>(b, x, &mut out, c);
        c += 2 * L::N;
    }
    if width - c >= L::N {
        t_columns::<L, 1, true>(b, x, &mut out, c);
        c += L::N;
    }
    if c < width {
        t_columns::<L, 1, false>(b, x, &mut out, c);
    }
}

/// See [`crate::scalar::attn_scores_f16`].
#[inline(always)]
pub(crate) fn attn_scores_f16<L: Lanes>(q: &[f32], keys: &[u16], scale: f32, out: &mut [f32]) {
    let d = q.len();
    assert_eq!(keys.len(), out.len() * d, "keys are not out.len() × head_dim");
    if d == 0 {
        return out.fill(0.0);
    }
    // Four keys per step: four independent accumulator chains instead of one.
    let mut tiles = out.chunks_exact_mut(SCORE_KEYS);
    let mut key_tiles = keys.chunks_exact(SCORE_KEYS * d);
    for (o, k) in (&mut tiles).zip(&mut key_tiles) {
        let ks = core::array::from_fn(|i| &k[i * d..][..d]);
        let [dot] = dots::<L, u16, SCORE_KEYS, 1>(ks, [q], d);
        o.iter_mut().zip(dot).for_each(|(o, dot)| *o = scale * dot);
    }
    for (o, k) in tiles
        .into_remainder()
        .iter_mut()
        .zip(key_tiles.remainder().chunks_exact(d))
    {
        let [[dot]] = dots::<L, u16, 1, 1>([k], [q], d);
        *o = scale * dot;
    }
}

/// Keys per register tile of [`attn_scores_f16`].
const SCORE_KEYS: usize = 4;

/// Output columns one pass of the value loops keeps in registers.
pub(crate) const VALUE_COLS: usize = 64;

/// `out = Σ_t weight(t, c) · row(t)[c]` over `rows` rows of `out.len()` values, `VALUE_COLS`
/// columns per pass; `row(t, cols)` loads `cols` (at most `N` wide, inside `0..out.len()`)
/// of row `t < rows`, and `weight(t, c)` is the same for the `group` columns from `c` (a
/// multiple of `group`, which is a multiple of `N`): one weight per row, or one per
/// quantization block.
///
/// All of a pass's columns are accumulated row by row, so a pass keeps `VALUE_COLS / N`
/// independent accumulator chains busy (one block's four on AVX2 would wait on the FMA
/// latency).
#[inline(always)]
pub(crate) fn weighted_rows<L: Lanes>(
    rows: usize,
    out: &mut [f32],
    group: usize,
    weight: impl Fn(usize, usize) -> f32,
    row: impl Fn(usize, Range<usize>) -> L,
) {
    for pass in (0..out.len()).step_by(VALUE_COLS) {
        let cols = &mut out[pass..];
        // A constant width for whole passes lets the accumulators live in registers, and the
        // test `pass + VALUE_COLS <= out.len()` covers every column load of the pass.
        if cols.len() >= VALUE_COLS {
            weighted_pass(
                rows,
                pass,
                VALUE_COLS,
                group,
                &mut cols[..VALUE_COLS],
                &weight,
                &row,
            );
        } else {
            weighted_pass(rows, pass, cols.len(), group, cols, &weight, &row);
        }
    }
}

/// One pass of [`weighted_rows`] over the `width <= VALUE_COLS` columns from `pass`.
#[inline(always)]
fn weighted_pass<L: Lanes>(
    rows: usize,
    pass: usize,
    width: usize,
    group: usize,
    out: &mut [f32],
    weight: impl Fn(usize, usize) -> f32,
    row: impl Fn(usize, Range<usize>) -> L,
) {
    let mut acc = [L::zero(); VALUE_COLS / 4];
    for t in 0..rows {
        let mut wt = L::zero();
        for (a, r) in acc.iter_mut().zip(chunks::<L>(width)) {
            if r.start % group == 0 {
                wt = L::splat(weight(t, pass + r.start));
            }
            *a = wt.mul_add(row(t, pass + r.start..pass + r.end), *a);
        }
    }
    for (a, r) in acc.iter().zip(chunks::<L>(width)) {
        store(*a, &mut out[r]);
    }
}

/// See [`crate::scalar::attn_values_f16`].
#[inline(always)]
pub(crate) fn attn_values_f16<L: Lanes>(p: &[f32], values: &[u16], out: &mut [f32]) {
    let d = out.len();
    assert_eq!(values.len(), p.len() * d, "values are not p.len() × head_dim");
    weighted_rows::<L>(
        p.len(),
        out,
        VALUE_COLS,
        #[inline(always)]
        |t, _| p[t],
        #[inline(always)]
        |t, cols| {
            debug_assert!(t < p.len() && cols.end <= d);
            // SAFETY: `weighted_rows` asks for rows `t < p.len()` and columns inside `out`
            // (`cols.end <= d`), and `values` holds `p.len() · d` values (asserted above), so
            // `[t·d + cols.start, t·d + cols.end)` is inside it.
            load_f16(unsafe { values.get_unchecked(t * d + cols.start..t * d + cols.end) })
        },
    );
}
