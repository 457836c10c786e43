//! The loop nest of the quantized matmuls, shared by every SIMD path.
//!
//! For each tile row (eight weight rows), tokens go in groups of `G`: a group's kernel reads
//! each weight tile once, unpacks it once and multiplies it with all `G` tokens' activation
//! blocks (this is where prefill speed comes from); leftover tokens go one by one. A tile
//! row (at most a few tens of KiB) stays in cache while all tokens pass over it. Each
//! accumulator `A` holds one token's eight row sums; lane `r` is row `r`, so nothing is
//! reduced across lanes.

use crate::layout::{SUB_BLOCKS, TILE_ROWS};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// The per-ISA parts of a quantized matmul over tiles `T` with accumulators `A`.
pub(crate) struct TileKernel<A, BG, B1, F> {
    /// The accumulator before any block.
    pub zero: A,
    /// Adds one tile times the blocks of `G` tokens into their accumulators.
    pub group: BG,
    /// The same for one token.
    pub single: B1,
    /// The eight row sums of an accumulator.
    pub finish: F,
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]`, see [`crate::scalar::matmul_q8_0`]. `X` is what one
/// tile multiplies of a token: a [`BlockQ8Act`], or a K-quant super-block's eight of them
/// (see [`super_blocks`]).
#[inline(always)]
pub(crate) fn matmul<T, X, A, BG, B1, F, const G: usize>(
    w: Tiled<'_, T>,
    x: &[X],
    mut out: OutCols<'_>,
    k: TileKernel<A, BG, B1, F>,
) where
    A: Copy,
    BG: Fn(&T, [&X; G], &mut [A; G]),
    B1: Fn(&T, [&X; 1], &mut [A; 1]),
    F: Fn(A) -> [f32; TILE_ROWS],
{
    let bpr = w.blocks_per_row();
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    let n = out.n();
    let token = |t: usize| &x[t * bpr..][..bpr];
    for tr in 0..w.tile_rows() {
        let tiles = w.tile_row(tr);
        let rows = tr * TILE_ROWS..(tr * TILE_ROWS + TILE_ROWS).min(w.rows());
        let mut store = |t: usize, acc: A| {
            let sums = (k.finish)(acc);
            let row = &mut out.row(t)[rows.clone()];
            // A whole tile row is one fixed-size store, not a `memcpy` call per token.
            match <&mut [f32; TILE_ROWS]>::try_from(&mut *row) {
                Ok(full) => *full = sums,
                Err(_) => row.copy_from_slice(&sums[..row.len()]),
            }
        };
        let mut t = 0;
        while n - t >= G {
            let acc = tile_row(tiles, core::array::from_fn(|i| token(t + i)), k.zero, &k.group);
            acc.into_iter().enumerate().for_each(|(i, a)| store(t + i, a));
            t += G;
        }
        for t in t..n {
            let [acc] = tile_row(tiles, [token(t)], k.zero, &k.single);
            store(t, acc);
        }
    }
}

/// The activations of a K-quant matmul grouped by super-block (eight blocks each).
///
/// # Panics
/// If `x` is not whole super-blocks.
#[inline(always)]
pub(crate) fn super_blocks(x: &[BlockQ8Act]) -> &[[BlockQ8Act; SUB_BLOCKS]] {
    let (blocks, rest) = x.as_chunks::<SUB_BLOCKS>();
    assert!(rest.is_empty(), "activations are not whole super-blocks");
    blocks
}

/// Accumulates one tile row against `NT` tokens' activation rows.
#[inline(always)]
fn tile_row<T, X, A: Copy, const NT: usize>(
    tiles: &[T],
    acts: [&[X]; NT],
    zero: A,
    block: &impl Fn(&T, [&X; NT], &mut [A; NT]),
) -> [A; NT] {
    let mut acc = [zero; NT];
    for (b, tile) in tiles.iter().enumerate() {
        block(tile, acts.map(|a| &a[b]), &mut acc);
    }
    acc
}
