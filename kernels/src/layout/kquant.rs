//! The 5-bit and K-quant blocks (GGUF `Q5_0`, `Q5_1`, `Q4_K`, `Q5_K`, `Q6_K`) and their tiles.
//!
//! Every tile keeps, for each 32 values of a row (a *sub-block*; a K-quant super-block of
//! [`QK_K`] values has eight), the q4 tile order of the low four bits: byte `c * 32 + r * 4 + j`
//! of a sub-block's 128 bytes holds element `c * 4 + j` of row `r` in its low nibble and
//! element `16 + c * 4 + j` in its high nibble (see [`super`]). The kernels therefore read
//! every type's low bits like q4 tiles, and add what each type has on top:
//!
//! - a fifth bit (Q5_0, Q5_1, Q5_K): eight 32-bit words per sub-block. Word `c` (0..4) has bit
//!   `r * 4 + j` set when element `c * 4 + j` of row `r` has its fifth bit; word `4 + c` the
//!   same for element `16 + c * 4 + j`. Expanded bit by bit, a word lines up with a 32-byte chunk.
//! - two more bits (Q6_K): 64 bytes per sub-block. Byte `k * 32 + r * 4 + j` holds, for chunk
//!   `c = 2k + s`, bits 4..6 of element `c * 4 + j` at bits `4s..4s + 2` and bits 4..6 of
//!   element `16 + c * 4 + j` at bits `4s + 2..4s + 4`.
//! - K-quant scales unpacked from their 6-bit fields to one byte each, sub-block major
//!   (`sc[j * 8 + r]`), so eight rows' scales are one 8-byte load. This costs Q4_K and Q5_K
//!   4 bytes per 256 values (2.8% and 2.3%); everything else is the GGUF bytes rearranged, and
//!   `extract` gives back the GGUF block bit for bit.
//!
//! The 2- and 3-bit types (Q2_K, Q3_K, in [`q2_q3`]) have no nibbles: their low two bits are
//! stored as Q6_K's high two bits are (a *2-bit plane*, [`plane_bits`]), Q3_K's third bit as
//! the fifth-bit words.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::{GROUP, QK, QuantBlock, TILE_ROWS, extract_bytes, f16_to_f32, interleave_bytes};

mod q2_q3;
pub use q2_q3::*;

/// Values per K-quant super-block.
pub const QK_K: usize = 256;
/// 32-value sub-blocks per super-block.
pub const SUB_BLOCKS: usize = QK_K / QK;

/// GGUF `Q5_0` block: 32 5-bit values and an f16 scale; value = `d * (q - 16)`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Little-endian u32: bit `j` is the fifth bit of element `j`.
    pub qh: [u8; 4],
    /// Low four bits: byte `j` holds element `j` (low nibble) and `j + 16` (high nibble).
    pub qs: [u8; QK / 2],
}

/// GGUF `Q5_1` block: 32 5-bit values, an f16 scale and minimum; value = `d * q + m`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Minimum, f16 bits.
    pub m: u16,
    /// As in [`BlockQ5_0`].
    pub qh: [u8; 4],
    /// As in [`BlockQ5_0`].
    pub qs: [u8; QK / 2],
}

/// GGUF `Q4_K` super-block: 256 4-bit values in eight sub-blocks of 32, each with a 6-bit
/// scale and minimum; value = `d * sc[j] * q - dmin * m[j]` (ggml's `dequantize_row_q4_K`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale of the scales, f16 bits.
    pub d: u16,
    /// Super-block scale of the minimums, f16 bits.
    pub dmin: u16,
    /// The eight 6-bit scales and minimums, packed as ggml's `get_scale_min_k4` reads them.
    pub scales: [u8; 12],
    /// Byte `32 g + l`: element `64 g + l` (low nibble) and `64 g + 32 + l` (high nibble).
    pub qs: [u8; QK_K / 2],
}

/// GGUF `Q5_K` super-block: [`BlockQ4K`] plus a fifth bit; value = `d * sc[j] * q - dmin * m[j]`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ5K {
    /// As in [`BlockQ4K`].
    pub d: u16,
    /// As in [`BlockQ4K`].
    pub dmin: u16,
    /// As in [`BlockQ4K`].
    pub scales: [u8; 12],
    /// Bit `j` of byte `l`: fifth bit of element `32 j + l`.
    pub qh: [u8; QK_K / 8],
    /// As in [`BlockQ4K`].
    pub qs: [u8; QK_K / 2],
}

/// GGUF `Q6_K` super-block: 256 6-bit values in sixteen groups of 16 with an int8 scale each;
/// value = `d * scales[e / 16] * (q - 32)`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BlockQ6K {
    /// Low four bits (layout: see [`BlockQ6K::quant`]).
    pub ql: [u8; QK_K / 2],
    /// High two bits.
    pub qh: [u8; QK_K / 4],
    /// Scales of the groups of 16.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 bits.
    pub d: u16,
}

macro_rules! zero_default {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                Self::new_zeroed()
            }
        }
    )*};
}
zero_default!(
    BlockQ4K, BlockQ5K, BlockQ6K, BlockQ3K, BlockQ2K, TileQ4K, TileQ5K, TileQ6K, TileQ3K, TileQ2K, TileQ5_0,
    TileQ5_1
);

/// Eight rows × one block of Q5_0 weights, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ5_0 {
    /// Scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Fifth bits, in chunk order.
    pub qh: [u32; 8],
    /// Low four bits, interleaved as in a q4 tile.
    pub qs: [u8; TILE_ROWS * QK / 2],
}

/// Eight rows × one block of Q5_1 weights, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ5_1 {
    /// Scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Minimums of the eight rows, f16 bits.
    pub m: [u16; TILE_ROWS],
    /// Fifth bits, in chunk order.
    pub qh: [u32; 8],
    /// Low four bits, interleaved as in a q4 tile.
    pub qs: [u8; TILE_ROWS * QK / 2],
}

/// Eight rows × one Q4_K super-block, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ4K {
    /// Super-block scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// Super-block minimum scales, f16 bits.
    pub dmin: [u16; TILE_ROWS],
    /// 6-bit scales: `sc[j * 8 + r]` for sub-block `j` of row `r`.
    pub sc: [u8; SUB_BLOCKS * TILE_ROWS],
    /// 6-bit minimums, ordered like `sc`.
    pub m: [u8; SUB_BLOCKS * TILE_ROWS],
    /// Sub-block `j`'s low four bits at `j * 128`, interleaved as in a q4 tile.
    pub qs: [u8; TILE_ROWS * QK_K / 2],
}

/// Eight rows × one Q5_K super-block: [`TileQ4K`] plus fifth bits.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ5K {
    /// As in [`TileQ4K`].
    pub d: [u16; TILE_ROWS],
    /// As in [`TileQ4K`].
    pub dmin: [u16; TILE_ROWS],
    /// As in [`TileQ4K`].
    pub sc: [u8; SUB_BLOCKS * TILE_ROWS],
    /// As in [`TileQ4K`].
    pub m: [u8; SUB_BLOCKS * TILE_ROWS],
    /// Sub-block `j`'s fifth bits at `j * 8`, in chunk order.
    pub qh: [u32; SUB_BLOCKS * 8],
    /// As in [`TileQ4K`].
    pub qs: [u8; TILE_ROWS * QK_K / 2],
}

/// Eight rows × one Q6_K super-block, interleaved (see the module docs).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TileQ6K {
    /// Super-block scales of the eight rows, f16 bits.
    pub d: [u16; TILE_ROWS],
    /// `sc[j * 16 + r * 2 + h]`: scale of values `16 h..16 h + 16` of sub-block `j`, row `r`.
    pub sc: [i8; SUB_BLOCKS * TILE_ROWS * 2],
    /// Sub-block `j`'s low four bits at `j * 128`, interleaved as in a q4 tile.
    pub ql: [u8; TILE_ROWS * QK_K / 2],
    /// Sub-block `j`'s high two bits at `j * 64` (see the module docs).
    pub qh: [u8; TILE_ROWS * QK_K / 4],
}

/// The q4 bytes of 32 values `q(0..32)`: byte `i` is `q(i)` low, `q(i + 16)` high.
fn q4_bytes(q: impl Fn(usize) -> u8) -> [u8; QK / 2] {
    core::array::from_fn(|i| (q(i) & 0x0f) | ((q(i + 16) & 0x0f) << 4))
}

/// Value `i` (0..32) of a sub-block's q4 bytes.
fn q4_value(bytes: &[u8; QK / 2], i: usize) -> u8 {
    (bytes[i % 16] >> (4 * (i / 16))) & 0x0f
}

/// Interleaves one sub-block's q4 bytes of the eight rows into 128 tile bytes.
fn interleave_q4(rows: &[[u8; QK / 2]; TILE_ROWS], out: &mut [u8]) {
    interleave_bytes(rows.each_ref().map(|r| &r[..]), out);
}

/// Row `r`'s q4 bytes back out of 128 tile bytes.
fn extract_q4(tile: &[u8], r: usize) -> [u8; QK / 2] {
    let mut b = [0; QK / 2];
    extract_bytes(tile, r, &mut b);
    b
}

/// Tile byte position of element `i` (0..32) of row `r` in a sub-block: chunk `c`, byte in chunk.
fn chunk_pos(r: usize, i: usize) -> (usize, usize) {
    ((i % 16) / GROUP, r * GROUP + i % GROUP)
}

/// Fifth-bit words (module docs) from each row's 32-bit mask.
fn high_bit_words(rows: [u32; TILE_ROWS]) -> [u32; 8] {
    let mut words = [0; 8];
    for (r, &bits) in rows.iter().enumerate() {
        for i in 0..QK {
            let (c, p) = chunk_pos(r, i);
            words[(i / 16) * 4 + c] |= ((bits >> i) & 1) << p;
        }
    }
    words
}

/// Row `r`'s 32-bit fifth-bit mask back out of the words.
fn row_high_bits(words: &[u32], r: usize) -> u32 {
    (0..QK).fold(0, |bits, i| {
        let (c, p) = chunk_pos(r, i);
        bits | (((words[(i / 16) * 4 + c] >> p) & 1) << i)
    })
}

/// Byte (of a sub-block's 64) and shift of element `i` (0..32) of row `r` in a 2-bit plane
/// (module docs: byte `k * 32 + r * 4 + j`, chunk `c = 2k + s`).
fn plane_pos(r: usize, i: usize) -> (usize, usize) {
    let (c, p) = chunk_pos(r, i);
    ((c / 2) * 32 + p, 4 * (c % 2) + 2 * (i / 16))
}

/// The two bits of element `i` (0..32) of row `r` in a sub-block's 64-byte 2-bit plane.
pub fn plane_bits(plane: &[u8], r: usize, i: usize) -> u8 {
    let (at, shift) = plane_pos(r, i);
    (plane[at] >> shift) & 3
}

/// A sub-block's 2-bit plane of the eight rows' values `q(r, i)` (low two bits used).
fn interleave_plane(q: impl Fn(usize, usize) -> u8, plane: &mut [u8]) {
    for r in 0..TILE_ROWS {
        for i in 0..QK {
            let (at, shift) = plane_pos(r, i);
            plane[at] |= (q(r, i) & 3) << shift;
        }
    }
}

/// Index in a tile's `sc` of the scale of group `g` (16 values) of a super-block of row `r`:
/// `sc[j * 16 + r * 2 + h]` for half `h` of sub-block `j`.
fn group_scale_pos(r: usize, g: usize) -> usize {
    (g / 2) * 16 + r * 2 + g % 2
}

impl QuantBlock for BlockQ5_0 {
    type Tile = TileQ5_0;
    const QS_BYTES: usize = QK / 2;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ5_0 {
        let mut tile = TileQ5_0 {
            d: blocks.map(|b| b.d),
            qh: high_bit_words(blocks.map(|b| u32::from_le_bytes(b.qh))),
            qs: [0; TILE_ROWS * QK / 2],
        };
        interleave_q4(&blocks.map(|b| b.qs), &mut tile.qs);
        tile
    }

    fn extract(tile: &TileQ5_0, r: usize) -> Self {
        BlockQ5_0 {
            d: tile.d[r],
            qh: row_high_bits(&tile.qh, r).to_le_bytes(),
            qs: extract_q4(&tile.qs, r),
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_to_f32(self.d);
        let qh = u32::from_le_bytes(self.qh);
        for (i, o) in out[..QK].iter_mut().enumerate() {
            let q = q4_value(&self.qs, i) | (((qh >> i) & 1) << 4) as u8;
            *o = d * (f32::from(q) - 16.0);
        }
    }
}

impl QuantBlock for BlockQ5_1 {
    type Tile = TileQ5_1;
    const QS_BYTES: usize = QK / 2;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ5_1 {
        let mut tile = TileQ5_1 {
            d: blocks.map(|b| b.d),
            m: blocks.map(|b| b.m),
            qh: high_bit_words(blocks.map(|b| u32::from_le_bytes(b.qh))),
            qs: [0; TILE_ROWS * QK / 2],
        };
        interleave_q4(&blocks.map(|b| b.qs), &mut tile.qs);
        tile
    }

    fn extract(tile: &TileQ5_1, r: usize) -> Self {
        BlockQ5_1 {
            d: tile.d[r],
            m: tile.m[r],
            qh: row_high_bits(&tile.qh, r).to_le_bytes(),
            qs: extract_q4(&tile.qs, r),
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (f16_to_f32(self.d), f16_to_f32(self.m));
        let qh = u32::from_le_bytes(self.qh);
        for (i, o) in out[..QK].iter_mut().enumerate() {
            let q = q4_value(&self.qs, i) | (((qh >> i) & 1) << 4) as u8;
            *o = d * f32::from(q) + m;
        }
    }
}

/// The eight 6-bit scales and minimums of a K-quant super-block (ggml's `get_scale_min_k4`).
pub fn unpack_scales_k4(q: &[u8; 12]) -> ([u8; SUB_BLOCKS], [u8; SUB_BLOCKS]) {
    let sc = core::array::from_fn(|j| match j {
        0..4 => q[j] & 63,
        _ => (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
    });
    let m = core::array::from_fn(|j| match j {
        0..4 => q[j + 4] & 63,
        _ => (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
    });
    (sc, m)
}

/// The inverse of [`unpack_scales_k4`] (scales and minimums below 64).
pub fn pack_scales_k4(sc: &[u8; SUB_BLOCKS], m: &[u8; SUB_BLOCKS]) -> [u8; 12] {
    let mut q = [0; 12];
    for j in 0..4 {
        q[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
    q
}

/// Low four bits of element `e` of a Q4_K / Q5_K super-block's `qs`.
fn k4_nibble(qs: &[u8; QK_K / 2], e: usize) -> u8 {
    (qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0f
}

/// Sets element `e`'s low four bits (the nibble must be zero before).
fn set_k4_nibble(qs: &mut [u8; QK_K / 2], e: usize, q: u8) {
    qs[32 * (e / 64) + e % 32] |= q << (4 * ((e / 32) % 2));
}

/// The parts of a Q4_K / Q5_K tile shared by both: scales, minimums and low bits.
struct K4Parts {
    d: [u16; TILE_ROWS],
    dmin: [u16; TILE_ROWS],
    sc: [u8; SUB_BLOCKS * TILE_ROWS],
    m: [u8; SUB_BLOCKS * TILE_ROWS],
    qs: [u8; TILE_ROWS * QK_K / 2],
}

impl K4Parts {
    fn interleave(rows: [(u16, u16, &[u8; 12], &[u8; QK_K / 2]); TILE_ROWS]) -> Self {
        let mut p = K4Parts {
            d: rows.map(|r| r.0),
            dmin: rows.map(|r| r.1),
            sc: [0; SUB_BLOCKS * TILE_ROWS],
            m: [0; SUB_BLOCKS * TILE_ROWS],
            qs: [0; TILE_ROWS * QK_K / 2],
        };
        for (r, row) in rows.iter().enumerate() {
            let (sc, m) = unpack_scales_k4(row.2);
            for j in 0..SUB_BLOCKS {
                p.sc[j * TILE_ROWS + r] = sc[j];
                p.m[j * TILE_ROWS + r] = m[j];
            }
        }
        for j in 0..SUB_BLOCKS {
            let subs = rows.map(|row| q4_bytes(|i| k4_nibble(row.3, 32 * j + i)));
            interleave_q4(&subs, &mut p.qs[j * 128..][..128]);
        }
        p
    }

    /// Row `r`'s `(d, dmin, scales, qs)`.
    fn extract(
        d: &[u16],
        dmin: &[u16],
        sc: &[u8],
        m: &[u8],
        qs: &[u8],
        r: usize,
    ) -> (u16, u16, [u8; 12], [u8; 128]) {
        let scales = pack_scales_k4(
            &core::array::from_fn(|j| sc[j * TILE_ROWS + r]),
            &core::array::from_fn(|j| m[j * TILE_ROWS + r]),
        );
        let mut out = [0; QK_K / 2];
        for j in 0..SUB_BLOCKS {
            let bytes = extract_q4(&qs[j * 128..][..128], r);
            for i in 0..QK {
                set_k4_nibble(&mut out, 32 * j + i, q4_value(&bytes, i));
            }
        }
        (d[r], dmin[r], scales, out)
    }
}

/// Writes `d * sc[j] * q(e) - dmin * m[j]` for the 256 values of a Q4_K / Q5_K super-block.
fn dequantize_k4(d: u16, dmin: u16, scales: &[u8; 12], q: impl Fn(usize) -> u8, out: &mut [f32]) {
    let (d, dmin) = (f16_to_f32(d), f16_to_f32(dmin));
    let (sc, m) = unpack_scales_k4(scales);
    for (e, o) in out[..QK_K].iter_mut().enumerate() {
        let (d1, m1) = (d * f32::from(sc[e / 32]), dmin * f32::from(m[e / 32]));
        *o = d1 * f32::from(q(e)) - m1;
    }
}

impl QuantBlock for BlockQ4K {
    type Tile = TileQ4K;
    const QS_BYTES: usize = QK_K / 2;
    const VALUES: usize = QK_K;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ4K {
        let p = K4Parts::interleave(blocks.each_ref().map(|b| (b.d, b.dmin, &b.scales, &b.qs)));
        TileQ4K {
            d: p.d,
            dmin: p.dmin,
            sc: p.sc,
            m: p.m,
            qs: p.qs,
        }
    }

    fn extract(t: &TileQ4K, r: usize) -> Self {
        let (d, dmin, scales, qs) = K4Parts::extract(&t.d, &t.dmin, &t.sc, &t.m, &t.qs, r);
        BlockQ4K { d, dmin, scales, qs }
    }

    fn dequantize(&self, out: &mut [f32]) {
        dequantize_k4(self.d, self.dmin, &self.scales, |e| k4_nibble(&self.qs, e), out);
    }
}

impl QuantBlock for BlockQ5K {
    type Tile = TileQ5K;
    const QS_BYTES: usize = QK_K / 2 + QK_K / 8;
    const VALUES: usize = QK_K;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ5K {
        let p = K4Parts::interleave(blocks.each_ref().map(|b| (b.d, b.dmin, &b.scales, &b.qs)));
        let mut qh = [0; SUB_BLOCKS * 8];
        for (j, words) in qh.chunks_exact_mut(8).enumerate() {
            let rows = blocks.map(|b| (0..QK).fold(0u32, |m, l| m | (u32::from((b.qh[l] >> j) & 1) << l)));
            words.copy_from_slice(&high_bit_words(rows));
        }
        TileQ5K {
            d: p.d,
            dmin: p.dmin,
            sc: p.sc,
            m: p.m,
            qh,
            qs: p.qs,
        }
    }

    fn extract(t: &TileQ5K, r: usize) -> Self {
        let (d, dmin, scales, qs) = K4Parts::extract(&t.d, &t.dmin, &t.sc, &t.m, &t.qs, r);
        let mut qh = [0u8; QK_K / 8];
        for (j, words) in t.qh.chunks_exact(8).enumerate() {
            let bits = row_high_bits(words, r);
            for (l, h) in qh.iter_mut().enumerate() {
                *h |= (((bits >> l) & 1) as u8) << j;
            }
        }
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let q = |e: usize| k4_nibble(&self.qs, e) | (((self.qh[e % 32] >> (e / 32)) & 1) << 4);
        dequantize_k4(self.d, self.dmin, &self.scales, q, out);
    }
}

impl BlockQ6K {
    /// Byte index in `ql`, its shift, byte index in `qh` and its shift, of element `e`.
    fn positions(e: usize) -> (usize, u32, usize, u32) {
        let (n, l, part) = (e / 128, e % 32, (e % 128) / 32);
        (
            64 * n + 32 * (part % 2) + l,
            4 * (part / 2) as u32,
            32 * n + l,
            2 * part as u32,
        )
    }

    /// Element `e`'s unsigned 6-bit quant (value `d * scales[e / 16] * (q - 32)`).
    pub fn quant(&self, e: usize) -> u8 {
        let (l, ls, h, hs) = Self::positions(e);
        ((self.ql[l] >> ls) & 0x0f) | (((self.qh[h] >> hs) & 3) << 4)
    }

    /// Sets element `e`'s quant (its bits must be zero before).
    fn set_quant(&mut self, e: usize, q: u8) {
        let (l, ls, h, hs) = Self::positions(e);
        self.ql[l] |= (q & 0x0f) << ls;
        self.qh[h] |= (q >> 4) << hs;
    }
}

impl QuantBlock for BlockQ6K {
    type Tile = TileQ6K;
    const QS_BYTES: usize = QK_K / 2 + QK_K / 4;
    const VALUES: usize = QK_K;

    fn interleave(blocks: &[Self; TILE_ROWS]) -> TileQ6K {
        let mut t = TileQ6K {
            d: blocks.map(|b| b.d),
            ..TileQ6K::default()
        };
        for (r, b) in blocks.iter().enumerate() {
            for (g, &s) in b.scales.iter().enumerate() {
                t.sc[group_scale_pos(r, g)] = s;
            }
        }
        for j in 0..SUB_BLOCKS {
            let subs = blocks.map(|b| q4_bytes(|i| b.quant(32 * j + i)));
            interleave_q4(&subs, &mut t.ql[j * 128..][..128]);
            let high = |r: usize, i: usize| blocks[r].quant(32 * j + i) >> 4;
            interleave_plane(high, &mut t.qh[j * 64..][..64]);
        }
        t
    }

    fn extract(t: &TileQ6K, r: usize) -> Self {
        let mut b = BlockQ6K {
            d: t.d[r],
            ..BlockQ6K::default()
        };
        for (g, s) in b.scales.iter_mut().enumerate() {
            *s = t.sc[group_scale_pos(r, g)];
        }
        for j in 0..SUB_BLOCKS {
            let bytes = extract_q4(&t.ql[j * 128..][..128], r);
            let qh = &t.qh[j * 64..][..64];
            for i in 0..QK {
                let high = plane_bits(qh, r, i);
                b.set_quant(32 * j + i, q4_value(&bytes, i) | (high << 4));
            }
        }
        b
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_to_f32(self.d);
        for (e, o) in out[..QK_K].iter_mut().enumerate() {
            let q = i32::from(self.quant(e)) - 32;
            *o = d * f32::from(self.scales[e / 16]) * q as f32;
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::super::{pack_tiles, unpack_row};
    use super::*;

    /// Deterministic bytes.
    fn noise(n: usize, seed: u32) -> std::vec::Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (s >> 16) as u8
            })
            .collect()
    }

    /// Random blocks packed into tiles (a partial last tile) come back bit for bit, and
    /// dequantize as the blocks do.
    fn round_trip<B: QuantBlock + FromBytes + IntoBytes + Immutable>(seed: u32)
    where
        B::Tile: FromBytes,
    {
        let (rows, bpr) = (11, 2);
        let bytes = noise(rows * bpr * size_of::<B>(), seed);
        let blocks: std::vec::Vec<B> = bytes
            .chunks_exact(size_of::<B>())
            .map(|c| B::read_from_bytes(c).unwrap())
            .collect();
        let mut tiles = std::vec![B::Tile::new_zeroed(); rows.div_ceil(TILE_ROWS) * bpr];
        pack_tiles(&blocks, bpr, &mut tiles);
        for row in 0..rows {
            let mut out = std::vec![B::default(); bpr];
            unpack_row(&tiles, bpr, row, &mut out);
            assert_eq!(out.as_bytes(), blocks[row * bpr..][..bpr].as_bytes(), "row {row}");
        }
        let mut out = std::vec![B::default(); bpr];
        unpack_row(&tiles, bpr, 15, &mut out);
        assert!(out.as_bytes().iter().all(|&b| b == 0), "padding row");
    }

    #[test]
    fn sizes_match_gguf() {
        assert_eq!(size_of::<BlockQ5_0>(), 22);
        assert_eq!(size_of::<BlockQ5_1>(), 24);
        assert_eq!(size_of::<BlockQ4K>(), 144);
        assert_eq!(size_of::<BlockQ5K>(), 176);
        assert_eq!(size_of::<BlockQ6K>(), 210);
        assert_eq!(size_of::<BlockQ3K>(), 110);
        assert_eq!(size_of::<BlockQ2K>(), 84);
        assert_eq!(size_of::<TileQ5_0>(), 8 * 22);
        assert_eq!(size_of::<TileQ5_1>(), 8 * 24);
        assert_eq!(size_of::<TileQ4K>(), 8 * 148);
        assert_eq!(size_of::<TileQ5K>(), 8 * 180);
        assert_eq!(size_of::<TileQ6K>(), 8 * 210);
        assert_eq!(size_of::<TileQ3K>(), 8 * 114);
        assert_eq!(size_of::<TileQ2K>(), 8 * 84);
    }

    #[test]
    fn tiles_round_trip_bit_for_bit() {
        round_trip::<BlockQ5_0>(1);
        round_trip::<BlockQ5_1>(2);
        round_trip::<BlockQ4K>(3);
        round_trip::<BlockQ5K>(4);
        round_trip::<BlockQ6K>(5);
        round_trip::<BlockQ3K>(6);
        round_trip::<BlockQ2K>(7);
    }

    #[test]
    fn k4_scales_round_trip() {
        for seed in 0..50 {
            let q: [u8; 12] = noise(12, seed).try_into().unwrap();
            let (sc, m) = unpack_scales_k4(&q);
            assert_eq!(pack_scales_k4(&sc, &m), q);
        }
    }

    #[test]
    fn q3_k_scales_round_trip() {
        for seed in 0..50 {
            let q: [u8; 12] = noise(12, seed).try_into().unwrap();
            let sc = unpack_scales_q3k(&q);
            assert!(sc.iter().all(|s| (-32..32).contains(s)));
            assert_eq!(pack_scales_q3k(&sc), q);
        }
    }

    #[test]
    fn q6_k_follows_ggml_dequantize_row() {
        // ggml's dequantize_row_q6_K, transcribed loop for loop.
        let b = BlockQ6K::read_from_bytes(&noise(210, 9)[..]).unwrap();
        let mut want = [0.0f32; QK_K];
        let d = f16_to_f32(b.d);
        for n in 0..2 {
            let (ql, qh, sc) = (&b.ql[64 * n..], &b.qh[32 * n..], &b.scales[8 * n..]);
            let y = &mut want[128 * n..];
            for l in 0..32 {
                let is = l / 16;
                let q = |lo: u8, hi: u8| i32::from(lo | (hi << 4)) - 32;
                let q1 = q(ql[l] & 0xf, qh[l] & 3);
                let q2 = q(ql[l + 32] & 0xf, (qh[l] >> 2) & 3);
                let q3 = q(ql[l] >> 4, (qh[l] >> 4) & 3);
                let q4 = q(ql[l + 32] >> 4, (qh[l] >> 6) & 3);
                y[l] = d * f32::from(sc[is]) * q1 as f32;
                y[l + 32] = d * f32::from(sc[is + 2]) * q2 as f32;
                y[l + 64] = d * f32::from(sc[is + 4]) * q3 as f32;
                y[l + 96] = d * f32::from(sc[is + 6]) * q4 as f32;
            }
        }
        let mut got = [0.0f32; QK_K];
        b.dequantize(&mut got);
        assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits));
    }
}
