//! Every SIMD matmul against the scalar reference: q8_0, q4_0 and q4_1 tiles with q8
//! activations, f16 and f32 weights; shapes with tails (rows not a multiple of 8, one block,
//! n = 1..=9 tokens) and outputs split by columns as threads split them.

mod common;

use common::{U, assert_bits_eq, assert_within, rng, simd_paths, uniform};
use edgelm_kernels::dispatch::MatmulQuantFn;
use edgelm_kernels::layout::{
    BlockQ4_0, BlockQ4_1, BlockQ8_0, QK, QuantBlock, TILE_ROWS, pack_tiles, tile_count, unpack_row,
};
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols, SCALAR, Tiled};
use half::f16;
use rand::RngExt;
use rand::rngs::StdRng;

const ROWS: [usize; 7] = [1, 7, 8, 9, 17, 24, 33];
const BLOCKS: [usize; 4] = [1, 2, 3, 18];
const TOKENS: std::ops::RangeInclusive<usize> = 1..=9;

/// A weight block type under test: random blocks, and `Σ_k |w_k|·|x_k|` for the budget.
trait TestBlock: QuantBlock {
    fn random(rng: &mut StdRng) -> Self;
    /// `|w_k|` bound per element: `|d·q|`, plus `|m|` for Q4_1.
    fn abs_values(&self) -> [f64; QK];
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile>;
}

fn random_scale(rng: &mut StdRng) -> u16 {
    f16::from_f32(rng.random_range(1e-3..2e-2)).to_bits()
}

fn h2f(bits: u16) -> f64 {
    f64::from(f16::from_bits(bits).to_f32())
}

impl TestBlock for BlockQ8_0 {
    fn random(rng: &mut StdRng) -> Self {
        // -128 included: GGUF files may hold it, and the kernels' ranges allow it.
        BlockQ8_0 {
            d: random_scale(rng),
            qs: std::array::from_fn(|_| rng.random_range(-128..=127)),
        }
    }
    fn abs_values(&self) -> [f64; QK] {
        self.qs.map(|q| (h2f(self.d) * f64::from(q)).abs())
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q8_0
    }
}

impl TestBlock for BlockQ4_0 {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ4_0 {
            d: random_scale(rng),
            qs: std::array::from_fn(|_| rng.random()),
        }
    }
    fn abs_values(&self) -> [f64; QK] {
        let mut vals = [0.0f32; QK];
        self.dequantize(&mut vals);
        vals.map(|v| f64::from(v).abs())
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_0
    }
}

impl TestBlock for BlockQ4_1 {
    fn random(rng: &mut StdRng) -> Self {
        let m = f16::from_f32(rng.random_range(-0.15..0.0)).to_bits();
        BlockQ4_1 {
            d: random_scale(rng),
            m,
            qs: std::array::from_fn(|_| rng.random()),
        }
    }
    fn abs_values(&self) -> [f64; QK] {
        let mut w = [0.0; QK];
        for (j, &q) in self.qs.iter().enumerate() {
            w[j] = (h2f(self.d) * f64::from(q & 15)).abs() + h2f(self.m).abs();
            w[j + 16] = (h2f(self.d) * f64::from(q >> 4)).abs() + h2f(self.m).abs();
        }
        w
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_1
    }
}

/// Random `n × cols` activations, quantized by the scalar reference.
fn activations(rng: &mut StdRng, n: usize, bpr: usize) -> Vec<BlockQ8Act> {
    let x = uniform(rng, n * bpr * QK, -2.0, 2.0);
    let mut q = vec![BlockQ8Act::default(); n * bpr];
    (SCALAR.quantize_q8_act)(&x, &mut q);
    q
}

fn check_quant<B: TestBlock>(seed: u64) {
    let paths = simd_paths();
    let mut rng = rng(seed);
    for rows in ROWS {
        for bpr in BLOCKS {
            let blocks: Vec<B> = (0..rows * bpr).map(|_| B::random(&mut rng)).collect();
            let mut tiles = vec![B::interleave(&[B::default(); TILE_ROWS]); tile_count(rows, bpr * QK)];
            pack_tiles(&blocks, bpr, &mut tiles);
            let w = Tiled::new(&tiles, rows, bpr).expect("tile count");
            for n in TOKENS {
                let x = activations(&mut rng, n, bpr);
                let mut want = vec![0.0; n * rows];
                B::kernel(&SCALAR)(w, &x, OutCols::new(&mut want, n, rows));
                let budget = budgets::<B>(&tiles, rows, bpr, &x, n);
                for k in &paths {
                    let what = format!(
                        "{} {}: {rows}x{} n={n}",
                        k.isa,
                        std::any::type_name::<B>(),
                        bpr * QK
                    );
                    let mut got = vec![0.0; n * rows];
                    B::kernel(k)(w, &x, OutCols::new(&mut got, n, rows));
                    assert_within(&what, &got, &want, |i| budget[i]);
                    check_split::<B>(k, w, &x, n, &got, &what);
                }
            }
        }
    }
}

/// Per output `(t, r)`: both results are within `(nb + 2)·u·Σ|w||x|` of the exact value
/// (integer block dots are exact; per block a product of scales, a product with the dot and an
/// add, over `nb` blocks), so they differ by at most twice that.
fn budgets<B: TestBlock>(tiles: &[B::Tile], rows: usize, bpr: usize, x: &[BlockQ8Act], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * rows];
    let mut row = vec![B::default(); bpr];
    for r in 0..rows {
        unpack_row(tiles, bpr, r, &mut row);
        for t in 0..n {
            let mag: f64 = row
                .iter()
                .zip(&x[t * bpr..][..bpr])
                .map(|(b, a)| {
                    let w = b.abs_values();
                    a.qs.iter()
                        .zip(w)
                        .map(|(&q, w)| w * (f64::from(a.d) * f64::from(q)).abs())
                        .sum::<f64>()
                })
                .sum();
            out[t * rows + r] = 2.0 * (bpr as f64 + 2.0) * U * mag;
        }
    }
    out
}

/// Tile rows split across "threads" (disjoint column views) give exactly the whole result.
fn check_split<B: TestBlock>(
    k: &Kernels,
    w: Tiled<'_, B::Tile>,
    x: &[BlockQ8Act],
    n: usize,
    whole: &[f32],
    what: &str,
) {
    for split in 1..w.tile_rows() {
        let mut got = vec![f32::NAN; n * w.rows()];
        let out = OutCols::new(&mut got, n, w.rows());
        let (left, right) = out.split_at(split * TILE_ROWS);
        B::kernel(k)(w.tile_rows_range(0, split), x, left);
        B::kernel(k)(w.tile_rows_range(split, w.tile_rows()), x, right);
        assert_bits_eq(&format!("{what} split at tile row {split}"), &got, whole);
    }
}

#[test]
fn q8_0_matches_scalar() {
    check_quant::<BlockQ8_0>(80);
}

#[test]
fn q4_0_matches_scalar() {
    check_quant::<BlockQ4_0>(40);
}

#[test]
fn q4_1_matches_scalar() {
    check_quant::<BlockQ4_1>(41);
}

/// Extreme quants: all weights -128 or 15 with activations at ±127 stay exact (no i16
/// saturation anywhere in the SIMD dots).
#[test]
fn extreme_quants_do_not_saturate() {
    let paths = simd_paths();
    let one = f16::from_f32(1.0).to_bits();
    let bpr = 2;
    for sign in [1i8, -1] {
        let x = vec![
            BlockQ8Act {
                d: 1.0,
                sum: 32 * i32::from(sign) * 127,
                qs: [sign * 127; QK]
            };
            bpr
        ];
        let q8 = vec![
            BlockQ8_0 {
                d: one,
                qs: [-128; QK]
            };
            8 * bpr
        ];
        let q4 = vec![
            BlockQ4_0 {
                d: one,
                qs: [0xff; QK / 2]
            };
            8 * bpr
        ];
        let q4_1 = vec![
            BlockQ4_1 {
                d: one,
                m: 0,
                qs: [0xff; QK / 2]
            };
            8 * bpr
        ];
        let s = f32::from(sign);
        for k in &paths {
            assert_eq!(
                product(k.matmul_q8_0, &q8, bpr, &x),
                [-128.0 * 127.0 * 64.0 * s; 8],
                "{}",
                k.isa
            );
            assert_eq!(
                product(k.matmul_q4_0, &q4, bpr, &x),
                [7.0 * 127.0 * 64.0 * s; 8],
                "{}",
                k.isa
            );
            assert_eq!(
                product(k.matmul_q4_1, &q4_1, bpr, &x),
                [15.0 * 127.0 * 64.0 * s; 8],
                "{}",
                k.isa
            );
        }
    }
}

fn product<B: QuantBlock>(f: MatmulQuantFn<B::Tile>, blocks: &[B], bpr: usize, x: &[BlockQ8Act]) -> Vec<f32> {
    let rows = blocks.len() / bpr;
    let mut tiles = vec![B::interleave(&[B::default(); TILE_ROWS]); tile_count(rows, bpr * QK)];
    pack_tiles(blocks, bpr, &mut tiles);
    let mut out = vec![0.0; rows];
    f(
        Tiled::new(&tiles, rows, bpr).expect("tiles"),
        x,
        OutCols::new(&mut out, 1, rows),
    );
    out
}

/// Float weights: `f(w, x, out)` against the scalar twin; both dots are within
/// `cols·u·Σ|w||x|` of exact.
fn check_float<W: Copy>(
    convert: impl Fn(f32) -> W,
    to_f64: impl Fn(W) -> f64,
    pick: impl Fn(&Kernels) -> fn(&[W], &[f32], OutCols<'_>),
) {
    let paths = simd_paths();
    let mut rng = rng(16);
    for rows in [1, 5, 8, 13] {
        for cols in [1, 5, 8, 13, 40, 64] {
            let w: Vec<W> = uniform(&mut rng, rows * cols, -1.0, 1.0)
                .into_iter()
                .map(&convert)
                .collect();
            for n in TOKENS {
                let x = uniform(&mut rng, n * cols, -1.0, 1.0);
                let mut want = vec![0.0; n * rows];
                pick(&SCALAR)(&w, &x, OutCols::new(&mut want, n, rows));
                let budget = |i: usize| {
                    let (t, r) = (i / rows, i % rows);
                    let mag: f64 = (0..cols)
                        .map(|c| (to_f64(w[r * cols + c]) * f64::from(x[t * cols + c])).abs())
                        .sum();
                    2.0 * cols as f64 * U * mag
                };
                for k in &paths {
                    let what = format!("{} float {rows}x{cols} n={n}", k.isa);
                    let mut got = vec![0.0; n * rows];
                    pick(k)(&w, &x, OutCols::new(&mut got, n, rows));
                    assert_within(&what, &got, &want, budget);
                    // Rows split across "threads" give exactly the whole result.
                    let split = rows / 2;
                    let mut parts = vec![f32::NAN; n * rows];
                    let (left, right) = OutCols::new(&mut parts, n, rows).split_at(split);
                    pick(k)(&w[..split * cols], &x, left);
                    pick(k)(&w[split * cols..], &x, right);
                    assert_bits_eq(&format!("{what} split at row {split}"), &parts, &got);
                }
            }
        }
    }
}

#[test]
fn f16_matmul_matches_scalar() {
    check_float(|v| f16::from_f32(v).to_bits(), h2f, |k| k.matmul_f16);
}

#[test]
fn f32_matmul_matches_scalar() {
    check_float(|v| v, f64::from, |k| k.matmul_f32);
}
