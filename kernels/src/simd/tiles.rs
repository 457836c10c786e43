//! The loop nest of the quantized matmuls, shared by every SIMD path.
//!
//! For each tile row (eight weight rows), tokens go in groups of `G`: a group's kernel reads
//! each weight tile once, unpacks it once and multiplies it with all `G` tokens' activation
//! blocks (this is where prefill speed comes from); leftover tokens go one by one. A tile
//! row (at most a few tens of KiB) stays in cache while the tokens pass over it. Many tokens
//! (an encoder's 1500 audio frames, a long prompt) go in chunks of about
//! [`CHUNK_BYTES`] of activations, each chunk over every tile row: the chunk stays in L2
//! while the weights stream past it, instead of all the activations (megabytes) streaming
//! from L3 once per tile row. Each accumulator `A` holds one token's eight row sums; lane
//! `r` is row `r`, so nothing is reduced across lanes.

use crate::layout::{SUB_BLOCKS, TILE_ROWS};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// Activation bytes of one chunk of tokens (see the module's doc): well inside a core's L2
/// (256 KiB on the smallest targeted cores), with room for the weights passing through.
pub(crate) const CHUNK_BYTES: usize = 96 * 1024;

/// The per-ISA parts of a quantized matmul over tiles `T` with accumulators `A`.
#[derive(Clone, Copy)]
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
    if n == 0 {
        return;
    }
    let token = |t: usize| &x[t * bpr..][..bpr];
    let chunk = (CHUNK_BYTES / size_of_val(token(0)).max(1))
        .max(1)
        .next_multiple_of(G);
    for t0 in (0..n).step_by(chunk) {
        let t1 = (t0 + chunk).min(n);
        for tr in 0..w.tile_rows() {
            let tiles = w.tile_row(tr);
            let r0 = tr * TILE_ROWS;
            let mut store = |t: usize, acc: A| store_sums(&mut out.row(t)[r0..], (k.finish)(acc), false);
            let mut t = t0;
            while t1 - t >= G {
                let acc = tile_row(tiles, core::array::from_fn(|i| token(t + i)), k.zero, &k.group);
                for (i, &a) in acc.iter().enumerate() {
                    store(t + i, a);
                }
                t += G;
            }
            for t in t..t1 {
                let [acc] = tile_row(tiles, [token(t)], k.zero, &k.single);
                store(t, acc);
            }
        }
    }
}

/// Writes `sums` at the start of `row`, or with `add` adds them to what is there (a later
/// chunk of the same products); fewer where `row` is shorter (a last, partial tile row).
#[inline(always)]
pub(crate) fn store_sums<const N: usize>(row: &mut [f32], sums: [f32; N], add: bool) {
    match row.first_chunk_mut::<N>() {
        Some(whole) if add => whole.iter_mut().zip(sums).for_each(|(o, s)| *o += s),
        Some(whole) => *whole = sums,
        None => store_tail(row, &sums, add),
    }
}

/// [`store_sums`] for a row shorter than `N`. Out of line, so that the whole rows' stores
/// stay fixed lanes (merged with this copy of a computed length, it became a call to memcpy
/// per token and tile row).
#[cold]
#[inline(never)]
fn store_tail<const N: usize>(row: &mut [f32], sums: &[f32; N], add: bool) {
    for (o, s) in row.iter_mut().zip(sums) {
        *o = if add { *o + s } else { *s };
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
