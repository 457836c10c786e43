//! Scalar reference kernels: the definition every SIMD path is tested against.
//! Always compiled, portable, f32 accumulation.

use crate::layout::{
    BlockQ8_0, QK, SUB_BLOCKS, TILE_ROWS, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5_0, TileQ5_1,
    TileQ5K, TileQ6K, TileQ8_0, plane_bits,
};
use crate::view::{BlockQ8Act, OutCols, Tiled};
use half::f16;
use libm::{erff as erf, expf as exp, tanhf as tanh};

fn h2f(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// Quantizes `x` (a multiple of `QK` long) into q8 activation blocks: per block
/// `d = max|x| / 127`, `q = round(x / d)`.
pub fn quantize_q8_act(x: &[f32], out: &mut [BlockQ8Act]) {
    assert_eq!(x.len(), out.len() * QK, "activation length is not blocks × QK");
    for (chunk, block) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in block.qs.iter_mut().zip(chunk) {
            *q = libm::roundf(v * id) as i8;
            sum += i32::from(*q);
        }
        block.d = d;
        block.sum = sum;
    }
}

/// Integer dot of tile row `r`'s block with its activation blocks (one, or [`SUB_BLOCKS`] for
/// a K-quant super-block), and the float result.
trait TileDot {
    /// Activation blocks per tile.
    const ACTS: usize = 1;
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32;
}

impl TileDot for TileQ8_0 {
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let a = &a[0];
        let mut isum = 0i32;
        for c in 0..QK / 4 {
            for j in 0..4 {
                isum += i32::from(self.qs[c * 32 + r * 4 + j]) * i32::from(a.qs[c * 4 + j]);
            }
        }
        h2f(self.d[r]) * a.d * isum as f32
    }
}

/// Row `r`'s unsigned quants of a 32-value sub-block: the low four bits from the q4 tile
/// bytes `qs`, plus `high(i)` (already shifted to bit 4) for element `i`.
fn sub_block_quants(qs: &[u8], r: usize, high: impl Fn(usize) -> u8) -> [u8; QK] {
    core::array::from_fn(|i| {
        let byte = qs[((i % 16) / 4) * 32 + r * 4 + i % 4];
        ((byte >> (4 * (i / 16))) & 0x0f) + high(i)
    })
}

/// `Σ q[i] · a[i]` over `range`.
fn idot(q: &[u8; QK], a: &BlockQ8Act, range: core::ops::Range<usize>) -> i32 {
    range.map(|i| i32::from(q[i]) * i32::from(a.qs[i])).sum()
}

/// Integer dot of the unsigned nibbles (0..=15) of row `r` with the activations.
fn nibble_dot(qs: &[u8], r: usize, a: &BlockQ8Act) -> i32 {
    idot(&sub_block_quants(qs, r, |_| 0), a, 0..QK)
}

/// Fifth bit of element `i` of row `r`, at bit 4, from a sub-block's fifth-bit words.
fn fifth_bit(qh: &[u32], r: usize, i: usize) -> u8 {
    let word = qh[(i / 16) * 4 + (i % 16) / 4];
    (((word >> (r * 4 + i % 4)) & 1) << 4) as u8
}

/// Integer dot of row `r`'s 5-bit quants (0..=31) with the activations.
fn q5_dot(qs: &[u8], qh: &[u32], r: usize, a: &BlockQ8Act) -> i32 {
    idot(&sub_block_quants(qs, r, |i| fifth_bit(qh, r, i)), a, 0..QK)
}

impl TileDot for TileQ4_0 {
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let a = &a[0];
        let isum = nibble_dot(&self.qs, r, a) - 8 * a.sum;
        h2f(self.d[r]) * a.d * isum as f32
    }
}

impl TileDot for TileQ4_1 {
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let a = &a[0];
        let isum = nibble_dot(&self.qs, r, a);
        h2f(self.d[r]) * a.d * isum as f32 + h2f(self.m[r]) * a.d * a.sum as f32
    }
}

impl TileDot for TileQ5_0 {
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let a = &a[0];
        let isum = q5_dot(&self.qs, &self.qh, r, a) - 16 * a.sum;
        h2f(self.d[r]) * a.d * isum as f32
    }
}

impl TileDot for TileQ5_1 {
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let a = &a[0];
        let isum = q5_dot(&self.qs, &self.qh, r, a);
        h2f(self.d[r]) * a.d * isum as f32 + h2f(self.m[r]) * a.d * a.sum as f32
    }
}

/// Q4_K and Q5_K: per sub-block `j`, `(d·sc_j) · d_a · isum_j − (dmin·m_j) · d_a · sum_a`,
/// where `isum_j` is `dot(j)`.
fn k4_dot(
    (d, dmin): (u16, u16),
    (sc, m): (&[u8], &[u8]),
    r: usize,
    a: &[BlockQ8Act],
    dot: impl Fn(usize, &BlockQ8Act) -> i32,
) -> f32 {
    let (d, dmin) = (h2f(d), h2f(dmin));
    let mut acc = 0.0;
    for (j, aj) in a.iter().enumerate() {
        let scale = d * f32::from(sc[j * TILE_ROWS + r]);
        let min = dmin * f32::from(m[j * TILE_ROWS + r]);
        acc += scale * aj.d * dot(j, aj) as f32;
        acc -= min * (aj.d * aj.sum as f32);
    }
    acc
}

impl TileDot for TileQ4K {
    const ACTS: usize = SUB_BLOCKS;
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        k4_dot((self.d[r], self.dmin[r]), (&self.sc, &self.m), r, a, |j, aj| {
            nibble_dot(&self.qs[j * 128..][..128], r, aj)
        })
    }
}

impl TileDot for TileQ5K {
    const ACTS: usize = SUB_BLOCKS;
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        k4_dot((self.d[r], self.dmin[r]), (&self.sc, &self.m), r, a, |j, aj| {
            q5_dot(&self.qs[j * 128..][..128], &self.qh[j * 8..][..8], r, aj)
        })
    }
}

/// Sum of activation quants `range`.
fn act_sum(a: &BlockQ8Act, range: core::ops::Range<usize>) -> i32 {
    a.qs[range].iter().map(|&q| i32::from(q)).sum()
}

/// Per sub-block `j` of a tile with a signed scale per 16 values (Q6_K, Q3_K), exact in
/// integers: `Σ_h sc_jh · (Σ q·a − offset · Σ a)` over its halves of 16 (`q` the unsigned
/// quants `quants(j)`), then `d · d_a ·` that.
fn sixteens_dot(
    d: u16,
    sc: &[i8],
    offset: i32,
    r: usize,
    a: &[BlockQ8Act],
    quants: impl Fn(usize) -> [u8; QK],
) -> f32 {
    let d = h2f(d);
    let mut acc = 0.0;
    for (j, aj) in a.iter().enumerate() {
        let q = quants(j);
        let isum: i32 = [0..16, 16..32]
            .into_iter()
            .enumerate()
            .map(|(h, half)| {
                let sc = i32::from(sc[j * 16 + r * 2 + h]);
                sc * (idot(&q, aj, half.clone()) - offset * act_sum(aj, half))
            })
            .sum();
        acc += d * aj.d * isum as f32;
    }
    acc
}

impl TileDot for TileQ6K {
    const ACTS: usize = SUB_BLOCKS;
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        sixteens_dot(self.d[r], &self.sc, 32, r, a, |j| {
            let qh = &self.qh[j * 64..][..64];
            sub_block_quants(&self.ql[j * 128..][..128], r, |i| plane_bits(qh, r, i) << 4)
        })
    }
}

impl TileDot for TileQ3K {
    const ACTS: usize = SUB_BLOCKS;
    /// Quants `q` in 0..8 (value `d·sc·(q − 4)`): two plane bits and the third bit.
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        sixteens_dot(self.d[r], &self.sc, 4, r, a, |j| {
            let (qs, qh) = (&self.qs[j * 64..][..64], &self.qh[j * 8..][..8]);
            core::array::from_fn(|i| plane_bits(qs, r, i) | (fifth_bit(qh, r, i) >> 2))
        })
    }
}

impl TileDot for TileQ2K {
    const ACTS: usize = SUB_BLOCKS;
    /// Per sub-block `j`, exact in integers `Σ_h sc_h·(Σ q·a)` and `Σ_h m_h·(Σ a)` over its
    /// halves, then `d·d_a·` the first `− dmin·d_a·` the second.
    fn dot(&self, r: usize, a: &[BlockQ8Act]) -> f32 {
        let (d, dmin) = (h2f(self.d[r]), h2f(self.dmin[r]));
        let mut acc = 0.0;
        for (j, aj) in a.iter().enumerate() {
            let qs = &self.qs[j * 64..][..64];
            let q: [u8; QK] = core::array::from_fn(|i| plane_bits(qs, r, i));
            let (mut isum, mut msum) = (0, 0);
            for (h, half) in [0..16, 16..32].into_iter().enumerate() {
                let s = i32::from(self.sc[j * 16 + r * 2 + h]);
                isum += (s & 15) * idot(&q, aj, half.clone());
                msum += (s >> 4) * act_sum(aj, half);
            }
            acc += d * aj.d * isum as f32;
            acc -= dmin * aj.d * msum as f32;
        }
        acc
    }
}

fn matmul_tiled<T: TileDot>(w: Tiled<'_, T>, x: &[BlockQ8Act], mut out: OutCols<'_>) {
    let bpr = w.blocks_per_row() * T::ACTS;
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    for t in 0..out.n() {
        let xa = &x[t * bpr..][..bpr];
        let row = out.row(t);
        for tr in 0..w.tile_rows() {
            let tiles = w.tile_row(tr);
            for r in 0..TILE_ROWS.min(w.rows() - tr * TILE_ROWS) {
                row[tr * TILE_ROWS + r] = tiles
                    .iter()
                    .zip(xa.chunks_exact(T::ACTS))
                    .map(|(tile, a)| tile.dot(r, a))
                    .sum();
            }
        }
    }
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for q8 weights and q8 activations.
pub fn matmul_q8_0(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for q4 weights (`d * (q - 8)`) and q8 activations.
pub fn matmul_q4_0(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for q4 weights with minimum (`d * q + m`) and q8 activations.
pub fn matmul_q4_1(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for Q5_0 weights (`d * (q - 16)`) and q8 activations.
pub fn matmul_q5_0(w: Tiled<'_, TileQ5_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for Q5_1 weights (`d * q + m`) and q8 activations.
pub fn matmul_q5_1(w: Tiled<'_, TileQ5_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for Q4_K weights and q8 activations (32 per block, so
/// eight per super-block: `x` holds `n × 8 × blocks_per_row` blocks).
pub fn matmul_q4_k(w: Tiled<'_, TileQ4K>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// As [`matmul_q4_k`] for Q5_K weights.
pub fn matmul_q5_k(w: Tiled<'_, TileQ5K>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// As [`matmul_q4_k`] for Q6_K weights.
pub fn matmul_q6_k(w: Tiled<'_, TileQ6K>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// As [`matmul_q4_k`] for Q3_K weights.
pub fn matmul_q3_k(w: Tiled<'_, TileQ3K>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// As [`matmul_q4_k`] for Q2_K weights.
pub fn matmul_q2_k(w: Tiled<'_, TileQ2K>, x: &[BlockQ8Act], out: OutCols<'_>) {
    matmul_tiled(w, x, out)
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for f16 weights (`out.width()` rows of `cols` values,
/// row-major) and f32 inputs (`out.n()` rows of `cols`).
pub fn matmul_f16(w: &[u16], x: &[f32], out: OutCols<'_>) {
    matmul_rows(w, x, out, |wr, xt| {
        wr.iter().zip(xt).map(|(&a, &b)| h2f(a) * b).sum()
    })
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` for f32 weights, laid out as in [`matmul_f16`].
pub fn matmul_f32(w: &[f32], x: &[f32], out: OutCols<'_>) {
    matmul_rows(w, x, out, dot_f32)
}

/// `out[t][c] = Σ_k x[t][k] · b[k][c]`: `x` is `out.n()` rows of `k` values, `b` is `k` rows of
/// `out.width()` values (columns contiguous: attention's transposed keys, or its values). Each
/// output sums over `k` in order.
pub fn matmul_f32_t(b: &[f32], x: &[f32], mut out: OutCols<'_>) {
    let (n, width) = (out.n(), out.width());
    let k = x.len() / n.max(1);
    assert_eq!(x.len(), n * k, "inputs are not n × k");
    assert_eq!(b.len(), k * width, "b is not k × width");
    for t in 0..n {
        let xt = &x[t * k..][..k];
        for (c, o) in out.row(t).iter_mut().enumerate() {
            *o = xt.iter().zip(b.chunks_exact(width)).map(|(x, b)| x * b[c]).sum();
        }
    }
}

/// `out[t][r] = dot(W row r, x row t)` for row-major float weights.
fn matmul_rows<W>(w: &[W], x: &[f32], mut out: OutCols<'_>, dot: impl Fn(&[W], &[f32]) -> f32) {
    let cols = x.len() / out.n().max(1);
    assert_eq!(x.len(), out.n() * cols, "inputs are not n × cols");
    assert_eq!(w.len(), out.width() * cols, "weights are not width × cols");
    for t in 0..out.n() {
        let xt = &x[t * cols..][..cols];
        for (o, wr) in out.row(t).iter_mut().zip(w.chunks_exact(cols.max(1))) {
            *o = dot(wr, xt);
        }
    }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Panics unless all the slices have one length (every path checks the same).
fn same_len(lens: &[usize]) {
    assert!(
        lens.iter().all(|&l| l == lens[0]),
        "operand lengths differ: {lens:?}"
    );
}

/// `out = x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    same_len(&[x.len(), w.len(), out.len()]);
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / libm::sqrtf(ms + eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// `out = (x - mean(x)) / sqrt(var(x) + eps) * w + b`.
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    same_len(&[x.len(), w.len(), b.len(), out.len()]);
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let scale = 1.0 / libm::sqrtf(var + eps);
    for (((o, &v), &g), &bias) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (v - mean) * scale * g + bias;
    }
}

/// In-place softmax of `scale · x` (`scale > 0`: attention's `1/√d`, or 1), max-subtracted:
/// `e^(s·x − s·max) / Σ`, each product rounded as a multiply of its own would round it (for
/// `s > 0` the largest rounded product is the rounded product of the largest value).
pub fn softmax(x: &mut [f32], scale: f32) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = exp(*v * scale - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// SwiGLU: `out = silu(gate) * up`, `silu(g) = g / (1 + e^-g)`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    same_len(&[gate.len(), up.len(), out.len()]);
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// In-place GELU, exact form: `x/2 · (1 + erf(x/√2))`.
pub fn gelu_erf(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * core::f32::consts::FRAC_1_SQRT_2));
    }
}

/// In-place GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub fn gelu_tanh(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for v in x.iter_mut() {
        let u = SQRT_2_OVER_PI * (*v + 0.044715 * *v * *v * *v);
        *v = 0.5 * *v * (1.0 + tanh(u));
    }
}

/// `dst += src`.
pub fn add(dst: &mut [f32], src: &[f32]) {
    same_len(&[dst.len(), src.len()]);
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

/// `dst *= src`.
pub fn mul(dst: &mut [f32], src: &[f32]) {
    same_len(&[dst.len(), src.len()]);
    dst.iter_mut().zip(src).for_each(|(d, s)| *d *= s);
}

/// Rotary embedding, rotate-half layout (GPT-NeoX / Hugging Face Llama): pairs
/// `(x[i], x[i + d/2])` rotate by the angle whose cosine and sine are `cos[i]`, `sin[i]`.
/// Dimensions past `2 * cos.len()` (partial rotary) are left alone.
///
/// # Panics
/// If `cos` and `sin` differ in length or `x` is shorter than `2 * cos.len()` (also for
/// [`rope_interleaved`]).
pub fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    check_rope(x, cos, sin);
    let half = cos.len();
    let (lo, hi) = x[..2 * half].split_at_mut(half);
    for i in 0..half {
        let (a, b) = (lo[i], hi[i]);
        lo[i] = a * cos[i] - b * sin[i];
        hi[i] = b * cos[i] + a * sin[i];
    }
}

/// Rotary embedding, interleaved layout (GPT-J / original Llama): pairs `(x[2i], x[2i+1])`.
pub fn rope_interleaved(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    check_rope(x, cos, sin);
    for (i, pair) in x.chunks_exact_mut(2).take(cos.len()).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * cos[i] - b * sin[i];
        pair[1] = b * cos[i] + a * sin[i];
    }
}

/// The rotary-embedding operand checks shared by every path.
pub(crate) fn check_rope(x: &[f32], cos: &[f32], sin: &[f32]) {
    assert_eq!(cos.len(), sin.len(), "cos and sin lengths differ");
    assert!(x.len() >= 2 * cos.len(), "rotary dimensions exceed the head");
}

/// Converts f32 values to f16 bits (round to nearest even).
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    same_len(&[src.len(), dst.len()]);
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &s)| *d = f16::from_f32(s).to_bits());
}

/// Attention scores over an f16 key cache: `out[t] = scale · q · keys[t]`, where `keys`
/// holds `out.len()` rows of `q.len()` values.
pub fn attn_scores_f16(q: &[f32], keys: &[u16], scale: f32, out: &mut [f32]) {
    let d = q.len();
    assert_eq!(keys.len(), out.len() * d, "keys are not out.len() × head_dim");
    for (o, k) in out.iter_mut().zip(keys.chunks_exact(d.max(1))) {
        *o = scale * k.iter().zip(q).map(|(&a, &b)| h2f(a) * b).sum::<f32>();
    }
}

/// Weighted sum over an f16 value cache: `out = Σ_t p[t] · values[t]`, where `values`
/// holds `p.len()` rows of `out.len()` values. Overwrites `out`.
pub fn attn_values_f16(p: &[f32], values: &[u16], out: &mut [f32]) {
    let d = out.len();
    assert_eq!(values.len(), p.len() * d, "values are not p.len() × head_dim");
    out.fill(0.0);
    for (&pt, v) in p.iter().zip(values.chunks_exact(d.max(1))) {
        out.iter_mut().zip(v).for_each(|(o, &x)| *o += pt * h2f(x));
    }
}

/// Quantizes cache rows to q8 blocks (`d = max|x| / 127` rounded to f16).
pub fn quantize_q8_kv(src: &[f32], dst: &mut [BlockQ8_0]) {
    assert_eq!(src.len(), dst.len() * QK, "cache row length is not blocks × QK");
    for (chunk, block) in src.chunks_exact(QK).zip(dst.iter_mut()) {
        let amax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = f16::from_f32(amax / 127.0);
        let id = if d.to_f32() > 0.0 { 1.0 / d.to_f32() } else { 0.0 };
        block.d = d.to_bits();
        for (q, &v) in block.qs.iter_mut().zip(chunk) {
            *q = libm::roundf(v * id).clamp(-127.0, 127.0) as i8;
        }
    }
}

/// Attention scores over a q8 key cache with a q8-quantized query:
/// `out[t] = scale · q · keys[t]`, each key row `q.len()` blocks.
pub fn attn_scores_q8(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]) {
    let nb = q.len();
    assert_eq!(keys.len(), out.len() * nb, "keys are not out.len() × blocks");
    for (o, k) in out.iter_mut().zip(keys.chunks_exact(nb.max(1))) {
        let mut acc = 0.0;
        for (kb, qb) in k.iter().zip(q) {
            let isum: i32 = kb
                .qs
                .iter()
                .zip(&qb.qs)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            acc += h2f(kb.d) * qb.d * isum as f32;
        }
        *o = scale * acc;
    }
}

/// Weighted sum over a q8 value cache: `out = Σ_t p[t] · values[t]`, each value row
/// `out.len() / QK` blocks. Overwrites `out`.
pub fn attn_values_q8(p: &[f32], values: &[BlockQ8_0], out: &mut [f32]) {
    let nb = out.len() / QK;
    assert_eq!(out.len(), nb * QK, "head_dim is not a multiple of QK");
    assert_eq!(values.len(), p.len() * nb, "values are not p.len() × blocks");
    out.fill(0.0);
    for (&pt, v) in p.iter().zip(values.chunks_exact(nb.max(1))) {
        for (ob, vb) in out.chunks_exact_mut(QK).zip(v) {
            let s = pt * h2f(vb.d);
            ob.iter_mut()
                .zip(&vb.qs)
                .for_each(|(o, &q)| *o += s * f32::from(q));
        }
    }
}
