//! Weight layouts: the GGUF-compatible row-major blocks the converter reads, and the
//! row-interleaved tiles the matmul kernels consume.
//!
//! A quantized matrix of `rows × cols` (cols a multiple of [`QK`]) is stored as tile rows of
//! [`TILE_ROWS`] consecutive matrix rows. Tile row `tr`, block column `b` is tile
//! `tiles[tr * blocks_per_row + b]`. Inside a tile the eight rows' quantized bytes are
//! interleaved in groups of [`GROUP`] bytes, so that one 32-byte load holds the same four
//! columns of all eight rows (one AVX2 register, or two NEON registers of four rows each,
//! which is exactly the operand shape of SDOT by element):
//!
//! - q8: byte `c * 32 + r * 4 + j` (chunk `c` in 0..8) is element `b * 32 + c * 4 + j` of row `r`.
//! - q4: byte `c * 32 + r * 4 + j` (chunk `c` in 0..4) is byte `c * 4 + j` of that row's GGUF
//!   block: its low nibble is element `c * 4 + j`, its high nibble element `16 + c * 4 + j`.
//!
//! Repacking is a permutation of bytes: GGUF Q8_0, Q4_0 and Q4_1 values pass through unchanged.
//! Rows past the end of the matrix in the last tile are zero (scale 0, quants 0).
//!
//! All of this is the only place that knows the layout; everything else goes through
//! [`pack_tiles`] and [`dequantize_row`].

use half::f16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

mod kquant;
pub use kquant::*;

/// Values per quantization block.
pub const QK: usize = 32;
/// Matrix rows interleaved in one tile.
pub const TILE_ROWS: usize = 8;
/// Bytes of one row kept together inside a tile.
pub const GROUP: usize = 4;

/// GGUF `Q8_0` block: 32 int8 values and an f16 scale; value = `d * q`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Quantized values.
    pub qs: [i8; QK],
}

/// GGUF `Q4_0` block: 32 4-bit values and an f16 scale; value = `d * (q - 8)`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Byte `j`: element `j` in the low nibble, element `j + 16` in the high nibble.
    pub qs: [u8; QK / 2],
}

/// GGUF `Q4_1` block: 32 4-bit values, an f16 scale and an f16 minimum; value = `d * q + m`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Block minimum, f16 bits.
    pub m: u16,
    /// Byte `j`: element `j` in the low nibble, element `j + 16` in the high nibble.
    pub qs: [u8; QK / 2],
}

/// Eight rows × one block of q8 weights, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ8_0 {
    /// Scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Interleaved quants.
    pub qs: [i8; TILE_ROWS * QK],
}

/// Eight rows × one block of q4 weights (`d * (q - 8)`), interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ4_0 {
    /// Scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Interleaved nibbles.
    pub qs: [u8; TILE_ROWS * QK / 2],
}

/// Eight rows × one block of q4 weights with minimum (`d * q + m`), interleaved.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ4_1 {
    /// Scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Minimums of the eight rows, f16 bits.
    pub m: [u16; TILE_ROWS],
    /// Interleaved nibbles.
    pub qs: [u8; TILE_ROWS * QK / 2],
}

/// A GGUF-compatible block type and the tile type it is interleaved into.
pub trait QuantBlock: Copy + Default {
    /// The interleaved tile of [`TILE_ROWS`] blocks.
    type Tile: Copy;
    /// Quantized bytes per block.
    const QS_BYTES: usize;
    /// Values per block: [`QK`], or [`QK_K`] for the K-quant super-blocks.
    const VALUES: usize = QK;
    /// Builds a tile from one block per row (missing rows are zero).
    fn interleave(blocks: &[Self; TILE_ROWS]) -> Self::Tile;
    /// Takes row `r`'s block back out of a tile.
    fn extract(tile: &Self::Tile, r: usize) -> Self;
    /// Writes the block's [`Self::VALUES`] values into `out` (that long).
    fn dequantize(&self, out: &mut [f32]);
}

/// Copies each row's quants, `GROUP` bytes at a time, into the interleaved order.
fn interleave_bytes(rows: [&[u8]; TILE_ROWS], out: &mut [u8]) {
    for (r, src) in rows.iter().enumerate() {
        for (g, group) in src.chunks_exact(GROUP).enumerate() {
            let at = g * TILE_ROWS * GROUP + r * GROUP;
            out[at..at + GROUP].copy_from_slice(group);
        }
    }
}

/// Inverse of [`interleave_bytes`] for row `r`.
fn extract_bytes(tile: &[u8], r: usize, out: &mut [u8]) {
    for (g, group) in out.chunks_exact_mut(GROUP).enumerate() {
        let at = g * TILE_ROWS * GROUP + r * GROUP;
        group.copy_from_slice(&tile[at..at + GROUP]);
    }
}

fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

impl QuantBlock for BlockQ8_0 {
    type Tile = TileQ8_0;
    const QS_BYTES: usize = QK;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ8_0 {
        let mut tile = TileQ8_0 {
            d: blocks.map(|b| b.d),
            qs: [0; TILE_ROWS * QK],
        };
        interleave_bytes(blocks.each_ref().map(|b| b.qs.as_bytes()), tile.qs.as_mut_bytes());
        tile
    }

    fn extract(tile: &TileQ8_0, r: usize) -> Self {
        let mut b = BlockQ8_0 {
            d: tile.d[r],
            qs: [0; QK],
        };
        extract_bytes(tile.qs.as_bytes(), r, b.qs.as_mut_bytes());
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_to_f32(self.d);
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * f32::from(q);
        }
    }
}

impl QuantBlock for BlockQ4_0 {
    type Tile = TileQ4_0;
    const QS_BYTES: usize = QK / 2;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ4_0 {
        let mut tile = TileQ4_0 {
            d: blocks.map(|b| b.d),
            qs: [0; TILE_ROWS * QK / 2],
        };
        interleave_bytes(blocks.each_ref().map(|b| &b.qs[..]), &mut tile.qs);
        tile
    }

    fn extract(tile: &TileQ4_0, r: usize) -> Self {
        let mut b = BlockQ4_0 {
            d: tile.d[r],
            qs: [0; QK / 2],
        };
        extract_bytes(&tile.qs, r, &mut b.qs);
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_to_f32(self.d);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = d * (f32::from(q & 0x0f) - 8.0);
            out[j + QK / 2] = d * (f32::from(q >> 4) - 8.0);
        }
    }
}

impl QuantBlock for BlockQ4_1 {
    type Tile = TileQ4_1;
    const QS_BYTES: usize = QK / 2;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ4_1 {
        let mut tile = TileQ4_1 {
            d: blocks.map(|b| b.d),
            m: blocks.map(|b| b.m),
            qs: [0; TILE_ROWS * QK / 2],
        };
        interleave_bytes(blocks.each_ref().map(|b| &b.qs[..]), &mut tile.qs);
        tile
    }

    fn extract(tile: &TileQ4_1, r: usize) -> Self {
        let mut b = BlockQ4_1 {
            d: tile.d[r],
            m: tile.m[r],
            qs: [0; QK / 2],
        };
        extract_bytes(&tile.qs, r, &mut b.qs);
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (f16_to_f32(self.d), f16_to_f32(self.m));
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = d * f32::from(q & 0x0f) + m;
            out[j + QK / 2] = d * f32::from(q >> 4) + m;
        }
    }
}

/// Number of tiles a `rows × cols` matrix of `QK`-wide blocks occupies (see [`tiles_for`]
/// for any block type).
pub const fn tile_count(rows: usize, cols: usize) -> usize {
    rows.div_ceil(TILE_ROWS) * (cols / QK)
}

/// Number of tiles a `rows × cols` matrix of blocks `B` occupies.
pub const fn tiles_for<B: QuantBlock>(rows: usize, cols: usize) -> usize {
    rows.div_ceil(TILE_ROWS) * (cols / B::VALUES)
}

/// Interleaves a row-major matrix of blocks (`rows` rows of `blocks_per_row` blocks) into
/// tiles. `out` must hold exactly `rows.div_ceil(TILE_ROWS) * blocks_per_row` tiles.
///
/// # Panics
/// If `blocks` or `out` have the wrong length.
pub fn pack_tiles<B: QuantBlock>(blocks: &[B], blocks_per_row: usize, out: &mut [B::Tile]) {
    let rows = blocks.len().checked_div(blocks_per_row).unwrap_or(0);
    assert_eq!(
        rows * blocks_per_row,
        blocks.len(),
        "block count is not rows × blocks_per_row"
    );
    assert_eq!(
        out.len(),
        rows.div_ceil(TILE_ROWS) * blocks_per_row,
        "wrong tile count"
    );
    for (tr, tile_row) in out.chunks_exact_mut(blocks_per_row.max(1)).enumerate() {
        for (b, tile) in tile_row.iter_mut().enumerate() {
            let group: [B; TILE_ROWS] = core::array::from_fn(|r| {
                let row = tr * TILE_ROWS + r;
                if row < rows {
                    blocks[row * blocks_per_row + b]
                } else {
                    B::default()
                }
            });
            *tile = B::interleave(&group);
        }
    }
}

/// Takes row `row`'s blocks back out of a tiled matrix into `out` (`blocks_per_row` blocks).
///
/// # Panics
/// If `row` is outside the tiles or `out` has the wrong length.
pub fn unpack_row<B: QuantBlock>(tiles: &[B::Tile], blocks_per_row: usize, row: usize, out: &mut [B]) {
    assert_eq!(out.len(), blocks_per_row, "wrong block count");
    let tile_row = &tiles[(row / TILE_ROWS) * blocks_per_row..][..blocks_per_row];
    for (o, tile) in out.iter_mut().zip(tile_row) {
        *o = B::extract(tile, row % TILE_ROWS);
    }
}

/// Dequantizes row `row` of a tiled matrix into `out` (`blocks_per_row * B::VALUES` values).
///
/// # Panics
/// If `row` is outside the tiles or `out` has the wrong length.
pub fn dequantize_row<B: QuantBlock>(tiles: &[B::Tile], blocks_per_row: usize, row: usize, out: &mut [f32]) {
    assert_eq!(out.len(), blocks_per_row * B::VALUES, "wrong row length");
    let tile_row = &tiles[(row / TILE_ROWS) * blocks_per_row..][..blocks_per_row];
    for (chunk, tile) in out.chunks_exact_mut(B::VALUES).zip(tile_row) {
        B::extract(tile, row % TILE_ROWS).dequantize(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q4_blocks(rows: usize, bpr: usize) -> [BlockQ4_0; 64] {
        assert!(rows * bpr <= 64);
        core::array::from_fn(|i| BlockQ4_0 {
            d: i as u16 + 1,
            qs: core::array::from_fn(|j| (i * 16 + j) as u8),
        })
    }

    #[test]
    fn tile_sizes_match_the_format() {
        assert_eq!(size_of::<BlockQ8_0>(), 34);
        assert_eq!(size_of::<BlockQ4_0>(), 18);
        assert_eq!(size_of::<BlockQ4_1>(), 20);
        assert_eq!(size_of::<TileQ8_0>(), 272);
        assert_eq!(size_of::<TileQ4_0>(), 144);
        assert_eq!(size_of::<TileQ4_1>(), 160);
    }

    #[test]
    fn pack_then_unpack_is_identity_with_a_partial_tile() {
        let (rows, bpr) = (11, 3);
        let blocks = q4_blocks(rows, bpr);
        let blocks = &blocks[..rows * bpr];
        let zero = TileQ4_0 {
            d: [0; 8],
            qs: [0; 128],
        };
        let mut tiles = [zero; 6];
        pack_tiles(blocks, bpr, &mut tiles);
        for row in 0..16 {
            let mut out = [BlockQ4_0::default(); 3];
            unpack_row(&tiles, bpr, row, &mut out);
            for (b, o) in out.iter().enumerate() {
                if row < rows {
                    assert_eq!((o.d, o.qs), (blocks[row * bpr + b].d, blocks[row * bpr + b].qs));
                } else {
                    assert_eq!((o.d, o.qs), (0, [0; 16]), "padding row {row}");
                }
            }
        }
    }

    #[test]
    fn q4_tile_bytes_follow_the_documented_order() {
        let blocks = q4_blocks(8, 1);
        let mut tiles = [TileQ4_0 {
            d: [0; 8],
            qs: [0; 128],
        }];
        pack_tiles(&blocks[..8], 1, &mut tiles);
        for c in 0..4 {
            for (r, block) in blocks[..8].iter().enumerate() {
                for j in 0..4 {
                    assert_eq!(tiles[0].qs[c * 32 + r * 4 + j], block.qs[c * 4 + j]);
                }
            }
        }
    }

    #[test]
    fn dequantize_row_matches_block_dequantization() {
        let blocks: [BlockQ8_0; 9] = core::array::from_fn(|i| BlockQ8_0 {
            d: f16::from_f32(0.5 + i as f32).to_bits(),
            qs: core::array::from_fn(|j| (j as i8) - 16),
        });
        let mut tiles = [TileQ8_0 {
            d: [0; 8],
            qs: [0; 256],
        }; 2];
        pack_tiles(&blocks, 1, &mut tiles);
        let mut row = [0.0; 32];
        dequantize_row::<BlockQ8_0>(&tiles, 1, 8, &mut row);
        let mut want = [0.0; 32];
        blocks[8].dequantize(&mut want);
        assert_eq!(row, want);
    }
}
