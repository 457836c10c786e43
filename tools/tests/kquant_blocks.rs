//! GGUF Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K blocks as the converter stores them (tiled by
//! `quantize::tile`) mean what ggml means by them: the kernels' scalar reference product, and
//! the tiles' own dequantization, against `dequant::dequantize` (a transcription of ggml's
//! `dequantize_row_*`) on random blocks. The SIMD kernels are held to the scalar one in
//! `kernels/tests/matmul.rs`.

use edgelm_kernels::dispatch::MatmulQuantFn;
use edgelm_kernels::layout::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, QK, QuantBlock, dequantize_row,
};
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols, SCALAR, Tiled};
use edgelm_tools::dequant::dequantize;
use edgelm_tools::gguf::GgmlType;
use edgelm_tools::quantize::tile;
use half::f16;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Deterministic bytes.
fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (s >> 16) as u8
        })
        .collect()
}

/// `rows × (per_row blocks)` random blocks whose f16 fields at `halves` (byte offsets in a
/// block) are small positive scales, so that values stay finite.
fn random_blocks(ty: GgmlType, rows: usize, per_row: usize, halves: &[usize], seed: u32) -> Vec<u8> {
    let (_, size) = ty.block().unwrap();
    let mut bytes = noise(rows * per_row * size as usize, seed);
    for block in bytes.chunks_exact_mut(size as usize) {
        for (i, &at) in halves.iter().enumerate() {
            let v = f16::from_f32(1e-3 * (1.0 + block[at] as f32 / 64.0) * (i + 1) as f32);
            block[at..at + 2].copy_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    bytes
}

fn check<B: QuantBlock + FromBytes + IntoBytes + Immutable>(
    ty: GgmlType,
    halves: &[usize],
    kernel: fn(&Kernels) -> MatmulQuantFn<B::Tile>,
) where
    B::Tile: FromBytes + IntoBytes + Immutable,
{
    let (rows, per_row, n) = (13, 2, 3);
    let cols = per_row * B::VALUES;
    let raw = random_blocks(ty, rows, per_row, halves, 7);
    let mut want_w = vec![0.0; rows * cols];
    dequantize(ty, &raw, &mut want_w).unwrap();
    let blocks: Vec<B> = raw
        .chunks_exact(size_of::<B>())
        .map(|c| B::read_from_bytes(c).unwrap())
        .collect();
    let bytes = tile(&blocks, per_row);
    let tiles = <[B::Tile]>::ref_from_bytes(&bytes).unwrap();
    let w = Tiled::new(tiles, rows, per_row).unwrap();
    // The tiles dequantize to ggml's values, bit for bit.
    for r in 0..rows {
        let mut row = vec![0.0; cols];
        dequantize_row::<B>(tiles, per_row, r, &mut row);
        assert_eq!(row, want_w[r * cols..][..cols], "{ty} row {r}");
    }
    // The scalar product equals the f64 product of ggml's values with the activations'
    // values, up to f32 rounding: per 32 values at most a few roundings of magnitude Σ|w||x|.
    let x: Vec<f32> = noise(n * cols, 3)
        .iter()
        .map(|&b| b as f32 / 64.0 - 2.0)
        .collect();
    let mut xq = vec![BlockQ8Act::default(); n * cols / QK];
    (SCALAR.quantize_q8_act)(&x, &mut xq);
    let xv: Vec<f64> = xq
        .iter()
        .flat_map(|b| b.qs.map(|q| f64::from(b.d) * f64::from(q)))
        .collect();
    let mut got = vec![0.0; n * rows];
    kernel(&SCALAR)(w, &xq, OutCols::new(&mut got, n, rows));
    for t in 0..n {
        for r in 0..rows {
            let (wr, xt) = (&want_w[r * cols..][..cols], &xv[t * cols..][..cols]);
            let exact: f64 = wr.iter().zip(xt).map(|(&a, b)| f64::from(a) * b).sum();
            let mag: f64 = wr.iter().zip(xt).map(|(&a, b)| (f64::from(a) * b).abs()).sum();
            let budget = (cols / QK + 6) as f64 * f64::from(f32::EPSILON) * mag;
            let err = (f64::from(got[t * rows + r]) - exact).abs();
            assert!(
                err <= budget,
                "{ty} t={t} r={r}: {} vs {exact}, error {err:e} > {budget:e}",
                got[t * rows + r]
            );
        }
    }
}

#[test]
fn q5_0_blocks_mean_what_ggml_means() {
    check::<BlockQ5_0>(GgmlType::Q5_0, &[0], |k| k.matmul_q5_0);
}

#[test]
fn q5_1_blocks_mean_what_ggml_means() {
    check::<BlockQ5_1>(GgmlType::Q5_1, &[0, 2], |k| k.matmul_q5_1);
}

#[test]
fn q4_k_blocks_mean_what_ggml_means() {
    check::<BlockQ4K>(GgmlType::Q4K, &[0, 2], |k| k.matmul_q4_k);
}

#[test]
fn q5_k_blocks_mean_what_ggml_means() {
    check::<BlockQ5K>(GgmlType::Q5K, &[0, 2], |k| k.matmul_q5_k);
}

#[test]
fn q6_k_blocks_mean_what_ggml_means() {
    check::<BlockQ6K>(GgmlType::Q6K, &[208], |k| k.matmul_q6_k);
}

#[test]
fn q3_k_blocks_mean_what_ggml_means() {
    check::<BlockQ3K>(GgmlType::Q3K, &[108], |k| k.matmul_q3_k);
}

#[test]
fn q2_k_blocks_mean_what_ggml_means() {
    check::<BlockQ2K>(GgmlType::Q2K, &[80, 82], |k| k.matmul_q2_k);
}
