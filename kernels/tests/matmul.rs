//! Every SIMD matmul against the scalar reference: q8_0, q4_0, q4_1, q5_0, q5_1 tiles and the
//! K-quant q4_k, q5_k, q6_k, q3_k, q2_k super-block tiles with q8 activations, f16 and f32 weights; shapes
//! with tails (rows not a multiple of 8, one block, n = 1..=9 tokens) and outputs split by
//! columns as threads split them.

mod common;

use common::{U, assert_bits_eq, assert_within, rng, simd_paths, uniform};
use edgelm_kernels::dispatch::MatmulQuantFn;
use edgelm_kernels::layout::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0,
    QK, QuantBlock, TILE_ROWS, pack_tiles, tiles_for, unpack_row, unpack_scales_k4,
};
use edgelm_kernels::{BlockQ8Act, Isa, Kernels, OutCols, SCALAR, Tiled};
use half::f16;
use rand::RngExt;
use rand::rngs::StdRng;
use std::ops::RangeInclusive;

const ROWS: [usize; 7] = [1, 7, 8, 9, 17, 24, 33];
const BLOCKS: [usize; 4] = [1, 2, 3, 18];
const TOKENS: RangeInclusive<usize> = 1..=9;

/// A weight block type under test: random blocks, and `Σ_k |w_k|·|x_k|` for the budget.
trait TestBlock: QuantBlock {
    fn random(rng: &mut StdRng) -> Self;
    /// `|w_k|` bound per element (`Self::VALUES` of them): `|d·q|`, plus `|m|` where the type
    /// has a minimum.
    fn abs_values(&self) -> Vec<f64> {
        let mut vals = vec![0.0f32; Self::VALUES];
        self.dequantize(&mut vals);
        vals.into_iter().map(|v| f64::from(v).abs()).collect()
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile>;
}

fn random_bytes<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    std::array::from_fn(|_| rng.random())
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
    fn abs_values(&self) -> Vec<f64> {
        let mut w = vec![0.0; QK];
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

impl TestBlock for BlockQ5_0 {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ5_0 {
            d: random_scale(rng),
            qh: random_bytes(rng),
            qs: random_bytes(rng),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q5_0
    }
}

impl TestBlock for BlockQ5_1 {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ5_1 {
            d: random_scale(rng),
            m: f16::from_f32(rng.random_range(-0.3..0.0)).to_bits(),
            qh: random_bytes(rng),
            qs: random_bytes(rng),
        }
    }
    fn abs_values(&self) -> Vec<f64> {
        // |d·q| + |m| bounds |d·q + m| and both terms the kernels round.
        let mut vals = vec![0.0f32; QK];
        BlockQ5_1 { m: 0, ..*self }.dequantize(&mut vals);
        vals.into_iter()
            .map(|v| f64::from(v).abs() + h2f(self.m).abs())
            .collect()
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q5_1
    }
}

/// `|d·sc·q| + |dmin·m|` per element of a Q4_K / Q5_K super-block with quants `q`.
fn k4_abs(d: u16, dmin: u16, scales: &[u8; 12], q: impl Fn(usize) -> u8) -> Vec<f64> {
    let (sc, m) = unpack_scales_k4(scales);
    (0..256)
        .map(|e| {
            let j = e / 32;
            (h2f(d) * f64::from(sc[j]) * f64::from(q(e))).abs() + (h2f(dmin) * f64::from(m[j])).abs()
        })
        .collect()
}

impl TestBlock for BlockQ4K {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ4K {
            d: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
            dmin: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
            scales: random_bytes(rng),
            qs: random_bytes(rng),
        }
    }
    fn abs_values(&self) -> Vec<f64> {
        k4_abs(self.d, self.dmin, &self.scales, |e| {
            (self.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 15
        })
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_k
    }
}

impl TestBlock for BlockQ5K {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ5K {
            d: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
            dmin: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
            scales: random_bytes(rng),
            qh: random_bytes(rng),
            qs: random_bytes(rng),
        }
    }
    fn abs_values(&self) -> Vec<f64> {
        k4_abs(self.d, self.dmin, &self.scales, |e| {
            let low = (self.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 15;
            low | (((self.qh[e % 32] >> (e / 32)) & 1) << 4)
        })
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q5_k
    }
}

impl TestBlock for BlockQ6K {
    fn random(rng: &mut StdRng) -> Self {
        // Scales over the whole i8 range, -128 included.
        BlockQ6K {
            ql: random_bytes(rng),
            qh: random_bytes(rng),
            scales: random_bytes::<16>(rng).map(|b| b as i8),
            d: f16::from_f32(rng.random_range(1e-5..1e-4)).to_bits(),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q6_k
    }
}

impl TestBlock for BlockQ3K {
    fn random(rng: &mut StdRng) -> Self {
        // Every packed scale byte random: the scales span −32..=31.
        BlockQ3K {
            hmask: random_bytes(rng),
            qs: random_bytes(rng),
            scales: random_bytes(rng),
            d: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q3_k
    }
}

impl TestBlock for BlockQ2K {
    fn random(rng: &mut StdRng) -> Self {
        BlockQ2K {
            scales: random_bytes(rng),
            qs: random_bytes(rng),
            d: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
            dmin: f16::from_f32(rng.random_range(1e-4..1e-3)).to_bits(),
        }
    }
    fn abs_values(&self) -> Vec<f64> {
        // |d·sc·q| + |dmin·m|: the kernels round both terms.
        let mut vals = vec![0.0f32; 256];
        BlockQ2K { dmin: 0, ..*self }.dequantize(&mut vals);
        vals.into_iter()
            .enumerate()
            .map(|(e, v)| f64::from(v).abs() + h2f(self.dmin) * f64::from(self.scales[e / 16] >> 4))
            .collect()
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q2_k
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
    // Super-block types get fewer blocks per row: each is eight activation blocks.
    let blocks_per_row = if B::VALUES == QK {
        &BLOCKS[..]
    } else {
        &[1, 2, 3][..]
    };
    check_shapes::<B>(seed, &ROWS, blocks_per_row, TOKENS);
}

/// [`check_quant`] for the given shapes.
fn check_shapes<B: TestBlock>(
    seed: u64,
    row_counts: &[usize],
    blocks_per_row: &[usize],
    tokens: RangeInclusive<usize>,
) {
    let paths = simd_paths();
    let mut rng = rng(seed);
    for &rows in row_counts {
        for &bpr in blocks_per_row {
            let blocks: Vec<B> = (0..rows * bpr).map(|_| B::random(&mut rng)).collect();
            let mut tiles =
                vec![B::interleave(&[B::default(); TILE_ROWS]); tiles_for::<B>(rows, bpr * B::VALUES)];
            pack_tiles(&blocks, bpr, &mut tiles);
            let w = Tiled::new(&tiles, rows, bpr).expect("tile count");
            for n in tokens.clone() {
                let x = activations(&mut rng, n, bpr * B::VALUES / QK);
                let mut want = vec![0.0; n * rows];
                B::kernel(&SCALAR)(w, &x, OutCols::new(&mut want, n, rows));
                let budget = budgets::<B>(&tiles, rows, bpr, &x, n);
                for k in &paths {
                    let what = format!(
                        "{} {}: {rows}x{} n={n}",
                        k.isa,
                        std::any::type_name::<B>(),
                        bpr * B::VALUES
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

/// Per output `(t, r)`: both results are within `(nb + 4)·u·Σ|w||x|` of the exact value, `nb`
/// the activation blocks per row (integer dots are exact; per 32-value block a product of
/// scales — two for K-quant sub-block scales —, a product with the dot and an add, and as many
/// for a minimum), so they differ by at most twice that.
fn budgets<B: TestBlock>(tiles: &[B::Tile], rows: usize, bpr: usize, x: &[BlockQ8Act], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * rows];
    let mut row = vec![B::default(); bpr];
    let acts = bpr * B::VALUES / QK;
    for r in 0..rows {
        unpack_row(tiles, bpr, r, &mut row);
        for t in 0..n {
            let w: Vec<f64> = row.iter().flat_map(|b| b.abs_values()).collect();
            let mag: f64 = x[t * acts..][..acts]
                .iter()
                .flat_map(|a| a.qs.iter().map(|&q| (f64::from(a.d) * f64::from(q)).abs()))
                .zip(w)
                .map(|(x, w)| x * w)
                .sum();
            out[t * rows + r] = 2.0 * (acts as f64 + 4.0) * U * mag;
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

/// Many tokens of long rows: the quantized matmuls take tokens in chunks of ~96 KiB of
/// activations (about 25 tokens here), so 70 tokens cross several chunk boundaries, partial
/// groups and a partial last tile row; every output must be written and within the budget.
fn check_chunks<B: TestBlock>(seed: u64, bpr: usize) {
    let mut rng = rng(seed);
    let (rows, n) = (17, 70);
    let blocks: Vec<B> = (0..rows * bpr).map(|_| B::random(&mut rng)).collect();
    let mut tiles = vec![B::interleave(&[B::default(); TILE_ROWS]); tiles_for::<B>(rows, bpr * B::VALUES)];
    pack_tiles(&blocks, bpr, &mut tiles);
    let w = Tiled::new(&tiles, rows, bpr).expect("tile count");
    let x = activations(&mut rng, n, bpr * B::VALUES / QK);
    let mut want = vec![f32::NAN; n * rows];
    B::kernel(&SCALAR)(w, &x, OutCols::new(&mut want, n, rows));
    let budget = budgets::<B>(&tiles, rows, bpr, &x, n);
    for k in simd_paths() {
        let mut got = vec![f32::NAN; n * rows];
        B::kernel(k)(w, &x, OutCols::new(&mut got, n, rows));
        let what = format!(
            "{} {} chunks: {rows}x{} n={n}",
            k.isa,
            std::any::type_name::<B>(),
            bpr * B::VALUES
        );
        assert_within(&what, &got, &want, |i| budget[i]);
    }
}

#[test]
fn many_tokens_go_in_chunks() {
    check_chunks::<BlockQ8_0>(81, 96);
    check_chunks::<BlockQ4K>(45, 12);
    check_chunks::<BlockQ6K>(47, 12);
    check_chunks::<BlockQ6K>(49, 20);
    check_chunks::<BlockQ3K>(48, 12);
    check_chunks::<BlockQ2K>(50, 12);
}

#[test]
fn q8_0_matches_scalar() {
    check_quant::<BlockQ8_0>(80);
}

/// Two and more whole groups of eight tokens (the 512-bit q8_0 kernel's unit, two tile rows
/// a register) with odd tile-row counts; that kernel's sums are the 256-bit AVX512-VNNI
/// kernel's bit for bit (same integer dots, same float steps).
#[test]
fn q8_0_groups_of_eight() {
    check_shapes::<BlockQ8_0>(82, &[8, 13, 16, 24, 33, 40], &[1, 4], 15..=17);
    let (Some(wide), Some(narrow)) = (Kernels::get(Isa::Avx512), Kernels::get(Isa::Avx512Vnni)) else {
        return eprintln!("skipped the bit-for-bit check: no AVX-512 path on this CPU");
    };
    let mut rng = rng(83);
    for (rows, bpr, n) in [(33, 3, 16), (40, 18, 24), (17, 96, 70)] {
        let blocks: Vec<BlockQ8_0> = (0..rows * bpr).map(|_| BlockQ8_0::random(&mut rng)).collect();
        let mut tiles = vec![
            BlockQ8_0::interleave(&[BlockQ8_0::default(); TILE_ROWS]);
            tiles_for::<BlockQ8_0>(rows, bpr * QK)
        ];
        pack_tiles(&blocks, bpr, &mut tiles);
        let w = Tiled::new(&tiles, rows, bpr).expect("tile count");
        let x = activations(&mut rng, n, bpr);
        let [mut got, mut want] = [(); 2].map(|()| vec![f32::NAN; n * rows]);
        (wide.matmul_q8_0)(w, &x, OutCols::new(&mut got, n, rows));
        (narrow.matmul_q8_0)(w, &x, OutCols::new(&mut want, n, rows));
        assert_bits_eq(
            &format!("avx512 vs avx512vnni q8_0 {rows}x{} n={n}", bpr * QK),
            &got,
            &want,
        );
    }
}

#[test]
fn q4_0_matches_scalar() {
    check_quant::<BlockQ4_0>(40);
}

#[test]
fn q4_1_matches_scalar() {
    check_quant::<BlockQ4_1>(41);
}

#[test]
fn q5_0_matches_scalar() {
    check_quant::<BlockQ5_0>(50);
}

#[test]
fn q5_1_matches_scalar() {
    check_quant::<BlockQ5_1>(51);
}

#[test]
fn q4_k_matches_scalar() {
    check_quant::<BlockQ4K>(44);
}

#[test]
fn q5_k_matches_scalar() {
    check_quant::<BlockQ5K>(55);
}

#[test]
fn q6_k_matches_scalar() {
    check_quant::<BlockQ6K>(66);
}

#[test]
fn q3_k_matches_scalar() {
    check_quant::<BlockQ3K>(33);
}

#[test]
fn q2_k_matches_scalar() {
    check_quant::<BlockQ2K>(22);
}

/// The prompt kernels' passes (aarch64: 4, 8 or 16 tokens, Q4_0 on SDOT 16 then 8; x86: groups
/// of 4) with tokens left over, partial tile rows, no tokens at all, and rows longer than the
/// blocks they interleave at a time (aarch64: at most 78, the later chunks add into the
/// output); on x86, 52 tokens of 96 blocks are three chunks of groups (24, 24 and 4 tokens).
#[test]
fn prompt_passes_match_scalar() {
    for tokens in [16..=17, 24..=25, 32..=33] {
        check_shapes::<BlockQ8_0>(81, &[9, 33], &[1, 18], tokens.clone());
        check_shapes::<BlockQ4_0>(41, &[9, 33], &[1, 18], tokens.clone());
        check_shapes::<BlockQ4_1>(11, &[9, 33], &[1, 18], tokens);
    }
    for (rows, bpr) in [(9, 1), (33, 18)] {
        check_shapes::<BlockQ8_0>(83, &[rows], &[bpr], 0..=0);
        check_shapes::<BlockQ4_0>(43, &[rows], &[bpr], 0..=0);
        check_shapes::<BlockQ4_1>(13, &[rows], &[bpr], 0..=0);
    }
    for tokens in [16..=17, 52..=53] {
        check_shapes::<BlockQ8_0>(82, &[9], &[96], tokens.clone());
        check_shapes::<BlockQ4_0>(42, &[9], &[96], tokens.clone());
        check_shapes::<BlockQ4_1>(12, &[9], &[96], tokens.clone());
        check_shapes::<BlockQ5_0>(52, &[9], &[96], tokens.clone());
        check_shapes::<BlockQ5_1>(53, &[9], &[96], tokens);
    }
    // x86: rows of more tiles than one pass unpacks (128), the second pass adding its sums.
    check_shapes::<BlockQ5_0>(54, &[9], &[130], 8..=9);
    check_shapes::<BlockQ4_0>(44, &[9], &[130], 8..=9);
    // K-quants: 16 super-blocks a pass.
    check_shapes::<BlockQ2K>(24, &[9], &[17], 4..=5);
    check_shapes::<BlockQ4K>(45, &[9], &[17], 4..=5);
    check_shapes::<BlockQ6K>(63, &[9], &[17], 4..=5);
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
        let q5 = vec![
            BlockQ5_0 {
                d: one,
                qh: [0xff; 4],
                qs: [0xff; QK / 2]
            };
            8 * bpr
        ];
        // The super-block types: five tokens (a group of four and one on the tile path).
        let x8 = vec![x[0]; 5 * 8];
        let q6 = vec![
            BlockQ6K {
                ql: [0xff; 128],
                qh: [0xff; 64],
                scales: [-128; 16],
                d: one,
            };
            8
        ];
        let q5k = vec![
            BlockQ5K {
                d: one,
                dmin: 0,
                scales: [0xff; 12],
                qh: [0xff; 32],
                qs: [0xff; 128],
            };
            8
        ];
        // Q3_K: scale −32 (packed 0) times quant 0 − 4; Q2_K: 15·3 − 15 with dmin = d = 1.
        let q3k = vec![
            BlockQ3K {
                hmask: [0; 32],
                qs: [0; 64],
                scales: [0; 12],
                d: one,
            };
            8
        ];
        let q2k = vec![
            BlockQ2K {
                scales: [0xff; 16],
                qs: [0xff; 64],
                d: one,
                dmin: one,
            };
            8
        ];
        let s = f32::from(sign);
        for k in &paths {
            assert_eq!(
                product(k.matmul_q3_k, &q3k, 1, &x8),
                [128.0 * 127.0 * 256.0 * s; 5 * 8],
                "{}",
                k.isa
            );
            assert_eq!(
                product(k.matmul_q2_k, &q2k, 1, &x8),
                [30.0 * 127.0 * 256.0 * s; 5 * 8],
                "{}",
                k.isa
            );
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
            assert_eq!(
                product(k.matmul_q5_0, &q5, bpr, &x),
                [15.0 * 127.0 * 64.0 * s; 8],
                "{}",
                k.isa
            );
            // 256 values (one super-block per row, all eight activation blocks) of
            // (63 − 32)·(−128): an exact f32 at every partial sum.
            assert_eq!(
                product(k.matmul_q6_k, &q6, 1, &x8),
                [-31.0 * 128.0 * 127.0 * 256.0 * s; 5 * 8],
                "{}",
                k.isa
            );
            assert_eq!(
                product(k.matmul_q5_k, &q5k, 1, &x8),
                [31.0 * 63.0 * 127.0 * 256.0 * s; 5 * 8],
                "{}",
                k.isa
            );
        }
    }
}

fn product<B: QuantBlock>(f: MatmulQuantFn<B::Tile>, blocks: &[B], bpr: usize, x: &[BlockQ8Act]) -> Vec<f32> {
    let rows = blocks.len() / bpr;
    let n = x.len() / (bpr * B::VALUES / QK);
    let mut tiles = vec![B::interleave(&[B::default(); TILE_ROWS]); tiles_for::<B>(rows, bpr * B::VALUES)];
    pack_tiles(blocks, bpr, &mut tiles);
    let mut out = vec![0.0; n * rows];
    f(
        Tiled::new(&tiles, rows, bpr).expect("tiles"),
        x,
        OutCols::new(&mut out, n, rows),
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

/// `b` as `k × width` (columns contiguous) against the scalar twin, at widths with and without
/// a partial column tile and row counts with and without a partial row tile; both sums are
/// within `k·u·Σ|x||b|` of exact. Rows split across "threads" give exactly the whole result.
#[test]
fn f32_matmul_t_matches_scalar() {
    let paths = simd_paths();
    let mut rng = rng(17);
    for width in [1, 7, 24, 37, 64, 100] {
        for k in [0, 1, 5, 64, 150] {
            for n in [1, 3, 4, 9, 17] {
                let b = uniform(&mut rng, k * width, -1.0, 1.0);
                let x = uniform(&mut rng, n * k, -1.0, 1.0);
                let mut want = vec![0.0; n * width];
                (SCALAR.matmul_f32_t)(&b, &x, OutCols::new(&mut want, n, width));
                let budget = |i: usize| {
                    let (t, c) = (i / width, i % width);
                    let mag: f64 = (0..k)
                        .map(|j| f64::from(x[t * k + j] * b[j * width + c]).abs())
                        .sum();
                    2.0 * k as f64 * U * mag
                };
                for kern in &paths {
                    let what = format!("{} f32_t {n}x{k}·{k}x{width}", kern.isa);
                    let mut got = vec![f32::NAN; n * width];
                    (kern.matmul_f32_t)(&b, &x, OutCols::new(&mut got, n, width));
                    assert_within(&what, &got, &want, budget);
                    if n < 2 {
                        continue;
                    }
                    let rows = n / 2;
                    let mut parts = vec![f32::NAN; n * width];
                    let (top, bottom) = parts.split_at_mut(rows * width);
                    (kern.matmul_f32_t)(&b, &x[..rows * k], OutCols::new(top, rows, width));
                    (kern.matmul_f32_t)(&b, &x[rows * k..], OutCols::new(bottom, n - rows, width));
                    assert_bits_eq(&format!("{what} split at row {rows}"), &parts, &got);
                }
            }
        }
    }
}
