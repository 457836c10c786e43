//! The 2- and 3-bit K-quant super-blocks (GGUF `Q2_K`, `Q3_K`) and their tiles: sixteen groups
//! of 16 values per super-block, each with its own scale (and, for Q2_K, minimum).
//!
//! A tile keeps, per sub-block of 32 values, the low two bits as a 2-bit plane (64 bytes, laid
//! out as Q6_K's high bits, see [`super::plane_bits`]) and Q3_K's third bit as eight fifth-bit
//! words (as Q5_K's). Scales are per group, at [`super::group_scale_pos`] like Q6_K's: Q3_K's
//! 6-bit scales unpacked to one signed byte each (`scale − 32`, 4 bytes more per 256 values:
//! 3.6 %), Q2_K's scale-and-minimum bytes as they are (the tile is the GGUF bytes rearranged).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{QK_K, SUB_BLOCKS, group_scale_pos, high_bit_words, interleave_plane, plane_bits, row_high_bits};
use crate::layout::{QK, QuantBlock, TILE_ROWS, f16_to_f32};

/// GGUF `Q3_K` super-block: 256 3-bit values in sixteen groups of 16 with a 6-bit scale each;
/// value = `d * (sc[e / 16] − 32) * (q − 4)` (ggml's `dequantize_row_q3_K`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ3K {
    /// Bit `j` of byte `l`: third bit of element `32 j + l`.
    pub hmask: [u8; QK_K / 8],
    /// Low two bits: byte `32 n + l` holds element `128 n + 32 k + l` at bits `2k, 2k + 1`.
    pub qs: [u8; QK_K / 4],
    /// The sixteen 6-bit scales, packed as ggml's `dequantize_row_q3_K` reads them.
    pub scales: [u8; 12],
    /// Super-block scale, f16 bits.
    pub d: u16,
}

/// GGUF `Q2_K` super-block: 256 2-bit values in sixteen groups of 16 with a 4-bit scale and
/// minimum each; value = `d * (s & 15) * q − dmin * (s >> 4)`, `s = scales[e / 16]`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ2K {
    /// Scale (low nibble) and minimum (high nibble) of each group of 16.
    pub scales: [u8; QK_K / 16],
    /// As [`BlockQ3K::qs`].
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the minimums, f16 bits.
    pub dmin: u16,
}

/// Eight rows × one Q3_K super-block, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ3K {
    /// Super-block scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Group scales minus 32 (−32..=31), at [`super::group_scale_pos`].
    pub sc: [i8; SUB_BLOCKS * TILE_ROWS * 2],
    /// Sub-block `j`'s 2-bit plane of low bits at `j * 64`.
    pub qs: [u8; TILE_ROWS * QK_K / 4],
    /// Sub-block `j`'s third bits at `j * 8`, in chunk order (as Q5_K's fifth bits).
    pub qh: [u32; SUB_BLOCKS * 8],
}

/// Eight rows × one Q2_K super-block, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ2K {
    /// Super-block scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Super-block minimum scales, f16 bits.
    pub dmin: [u16; TILE_ROWS],
    /// Group scale (low nibble) and minimum (high nibble), at [`super::group_scale_pos`].
    pub sc: [u8; SUB_BLOCKS * TILE_ROWS * 2],
    /// Sub-block `j`'s 2-bit plane at `j * 64`.
    pub qs: [u8; TILE_ROWS * QK_K / 4],
}

/// Byte index in `qs` and shift of element `e`'s two low bits (Q2_K and Q3_K alike).
fn k2_pos(e: usize) -> (usize, usize) {
    (32 * (e / 128) + e % 32, 2 * ((e / 32) % 4))
}

/// Element `e`'s two low bits.
fn k2_bits(qs: &[u8; QK_K / 4], e: usize) -> u8 {
    let (at, shift) = k2_pos(e);
    (qs[at] >> shift) & 3
}

/// Sets element `e`'s two low bits (they must be zero before).
fn set_k2_bits(qs: &mut [u8; QK_K / 4], e: usize, q: u8) {
    let (at, shift) = k2_pos(e);
    qs[at] |= q << shift;
}

/// The sixteen 6-bit scales of a Q3_K super-block, minus 32.
pub fn unpack_scales_q3k(q: &[u8; 12]) -> [i8; 16] {
    core::array::from_fn(|i| {
        let low = if i < 8 { q[i] & 0x0f } else { q[i - 8] >> 4 };
        let high = (q[8 + i % 4] >> (2 * (i / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

/// The inverse of [`unpack_scales_q3k`] (scales in −32..=31).
pub fn pack_scales_q3k(sc: &[i8; 16]) -> [u8; 12] {
    let mut q = [0; 12];
    for (i, &s) in sc.iter().enumerate() {
        let s = (s + 32) as u8;
        q[i % 8] |= (s & 0x0f) << (4 * (i / 8));
        q[8 + i % 4] |= ((s >> 4) & 3) << (2 * (i / 4));
    }
    q
}

impl BlockQ3K {
    /// Element `e`'s unsigned 3-bit quant (value `d * (sc − 32) * (q − 4)`).
    pub fn quant(&self, e: usize) -> u8 {
        k2_bits(&self.qs, e) | (((self.hmask[e % 32] >> (e / 32)) & 1) << 2)
    }
}

impl QuantBlock for BlockQ3K {
    type Tile = TileQ3K;
    const QS_BYTES: usize = QK_K / 4 + QK_K / 8;
    const VALUES: usize = QK_K;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ3K {
        let mut t = TileQ3K {
            d: blocks.map(|b| b.d),
            ..TileQ3K::default()
        };
        for (r, b) in blocks.iter().enumerate() {
            for (g, s) in unpack_scales_q3k(&b.scales).into_iter().enumerate() {
                t.sc[group_scale_pos(r, g)] = s;
            }
        }
        for j in 0..SUB_BLOCKS {
            interleave_plane(|r, i| blocks[r].quant(32 * j + i), &mut t.qs[j * 64..][..64]);
            let rows =
                blocks.map(|b| (0..QK).fold(0u32, |m, i| m | (u32::from(b.quant(32 * j + i) >> 2) << i)));
            t.qh[j * 8..][..8].copy_from_slice(&high_bit_words(rows));
        }
        t
    }

    fn extract(t: &TileQ3K, r: usize) -> Self {
        let sc = core::array::from_fn(|g| t.sc[group_scale_pos(r, g)]);
        let mut b = BlockQ3K {
            scales: pack_scales_q3k(&sc),
            d: t.d[r],
            ..BlockQ3K::default()
        };
        for j in 0..SUB_BLOCKS {
            let high = row_high_bits(&t.qh[j * 8..][..8], r);
            for i in 0..QK {
                set_k2_bits(&mut b.qs, 32 * j + i, plane_bits(&t.qs[j * 64..][..64], r, i));
                b.hmask[i] |= (((high >> i) & 1) as u8) << j;
            }
        }
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_to_f32(self.d);
        let sc = unpack_scales_q3k(&self.scales);
        for (e, o) in out[..QK_K].iter_mut().enumerate() {
            let dl = d * f32::from(sc[e / 16]);
            *o = dl * (i32::from(self.quant(e)) - 4) as f32;
        }
    }
}

impl QuantBlock for BlockQ2K {
    type Tile = TileQ2K;
    const QS_BYTES: usize = QK_K / 4;
    const VALUES: usize = QK_K;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ2K {
        let mut t = TileQ2K {
            d: blocks.map(|b| b.d),
            dmin: blocks.map(|b| b.dmin),
            ..TileQ2K::default()
        };
        for (r, b) in blocks.iter().enumerate() {
            for (g, &s) in b.scales.iter().enumerate() {
                t.sc[group_scale_pos(r, g)] = s;
            }
        }
        for j in 0..SUB_BLOCKS {
            interleave_plane(
                |r, i| k2_bits(&blocks[r].qs, 32 * j + i),
                &mut t.qs[j * 64..][..64],
            );
        }
        t
    }

    fn extract(t: &TileQ2K, r: usize) -> Self {
        let mut b = BlockQ2K {
            scales: core::array::from_fn(|g| t.sc[group_scale_pos(r, g)]),
            d: t.d[r],
            dmin: t.dmin[r],
            ..BlockQ2K::default()
        };
        for j in 0..SUB_BLOCKS {
            for i in 0..QK {
                set_k2_bits(&mut b.qs, 32 * j + i, plane_bits(&t.qs[j * 64..][..64], r, i));
            }
        }
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (f16_to_f32(self.d), f16_to_f32(self.dmin));
        for (e, o) in out[..QK_K].iter_mut().enumerate() {
            let s = self.scales[e / 16];
            let (dl, ml) = (d * f32::from(s & 0x0f), dmin * f32::from(s >> 4));
            *o = dl * f32::from(k2_bits(&self.qs, e)) - ml;
        }
    }
}
