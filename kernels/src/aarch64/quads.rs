//! The prompt (batch) matmul loop of the SDOT and SMMLA paths: tokens in quads of four whose
//! activation blocks are interleaved once per product ([`Quad`]), so the inner loop loads them
//! as whole registers, with the four tokens' scales and sums in one vector each.
//!
//! Order: for each band of tile rows ([`BAND_BYTES`] of weights), for each quad, for each
//! chunk of up to [`CHUNK`] blocks (interleaved into a stack buffer), for each tile row of the
//! band, the quad kernel runs over the chunk's tiles; the chunk's sums go to the output
//! (stored, then added for later chunks). The weights stay in the file's tile
//! layout (zero copy); tokens past the last whole quad take the one-token kernel of
//! [`crate::simd::tiles`].

use core::arch::aarch64::*;

use super::neon::matmul::Acc;
use crate::layout::TILE_ROWS;
use crate::simd::tiles::{self, TileKernel};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// Tokens per quad.
pub(crate) const QUAD: usize = 4;
/// Blocks interleaved at a time (a 5 KiB stack buffer).
const CHUNK: usize = 32;
/// Weight bytes of the band of tile rows that all quads pass over before the next band: the
/// band stays in a core's L2 (256-512 KiB on the A76 / A78 / N1) instead of being read from
/// memory once per quad; the activations are interleaved once per band.
const BAND_BYTES: usize = 256 << 10;

/// One block of four tokens' activations. Byte `32o + 16p + 8i + j` of `qs` is element
/// `8o + j` of token `2p + i`: register `2o + p` (16 bytes) is octet `o` of token pair `p`,
/// SMMLA's operand shape, and its 32-bit lane `2i + h` is elements `8o + 4h..8o + 4h + 4` of
/// token `2p + i`, SDOT's by-element operand.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Quad {
    /// The interleaved quants.
    pub qs: [i8; 128],
    /// The four tokens' scales.
    pub d: [f32; QUAD],
    /// The four tokens' sums of quants.
    pub sum: [i32; QUAD],
}

impl Quad {
    const ZERO: Self = Self {
        qs: [0; 128],
        d: [0.0; QUAD],
        sum: [0; QUAD],
    };

    /// The eight 16-byte registers of `qs`.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn regs(&self) -> [int8x16_t; 8] {
        // SAFETY: `qs` is 128 readable bytes, 64 at each offset used.
        let (a, b) = unsafe {
            (
                vld1q_s8_x4(self.qs.as_ptr()),
                vld1q_s8_x4(self.qs.as_ptr().add(64)),
            )
        };
        [a.0, a.1, a.2, a.3, b.0, b.1, b.2, b.3]
    }

    /// The four tokens' scales.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn scales(&self) -> float32x4_t {
        // SAFETY: `d` is 4 readable f32.
        unsafe { vld1q_f32(self.d.as_ptr()) }
    }

    /// The four tokens' sums.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn sums(&self) -> int32x4_t {
        // SAFETY: `sum` is 4 readable i32.
        unsafe { vld1q_s32(self.sum.as_ptr()) }
    }

    /// Interleaves one block of four tokens.
    #[target_feature(enable = "neon")]
    #[inline]
    fn set(&mut self, a: [&BlockQ8Act; QUAD]) {
        // SAFETY: each `qs` is 32 readable bytes.
        let halves = a.map(|a| unsafe {
            [
                vld1q_s64(a.qs.as_ptr().cast()),
                vld1q_s64(a.qs.as_ptr().add(16).cast()),
            ]
        });
        let mut regs = [vdupq_n_s64(0); 8];
        for p in 0..2 {
            let [x, y] = [halves[2 * p], halves[2 * p + 1]];
            for h in 0..2 {
                regs[4 * h + p] = vzip1q_s64(x[h], y[h]);
                regs[4 * h + 2 + p] = vzip2q_s64(x[h], y[h]);
            }
        }
        for (i, r) in regs.iter().enumerate() {
            // SAFETY: `qs` holds 16 writable bytes at `16i` for `i < 8`.
            unsafe { vst1q_s64(self.qs.as_mut_ptr().add(16 * i).cast(), *r) };
        }
        self.d = a.map(|a| a.d);
        self.sum = a.map(|a| a.sum);
    }
}

/// A quad's 32 row sums (eight rows × four tokens), in the order the path's kernel keeps them.
pub(crate) type QuadAcc = [float32x4_t; 8];

/// The per-path parts of the quad loop: `tile` adds one tile times a quad into a
/// [`QuadAcc`] (zero at the start), `finish` gives the four tokens' eight row sums.
pub(crate) struct QuadKernel<K, F> {
    /// Adds one tile times one quad.
    pub tile: K,
    /// The four tokens' row sums.
    pub finish: F,
}

/// A [`QuadKernel`] from a path's `$tile(t, q, acc)` and `$finish(acc)`.
macro_rules! quad_kernel {
    ($tile:path, $finish:path) => {
        $crate::aarch64::quads::QuadKernel {
            tile: |t: &_, q: &$crate::aarch64::quads::Quad, acc: &mut $crate::aarch64::quads::QuadAcc| {
                $tile(t, q, acc)
            },
            finish: |acc| $finish(acc),
        }
    };
}
pub(crate) use quad_kernel;

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` (see [`crate::scalar::matmul_q8_0`]): whole quads of
/// tokens through `quad`, the rest (fewer than a group) through `tail`'s one-token kernel.
#[inline(always)]
pub(crate) fn matmul<T, K, F, BG, B1, FT>(
    w: Tiled<'_, T>,
    x: &[BlockQ8Act],
    mut out: OutCols<'_>,
    quad: QuadKernel<K, F>,
    tail: TileKernel<Acc, BG, B1, FT>,
) where
    K: Fn(&T, &Quad, &mut QuadAcc),
    F: Fn(QuadAcc) -> [[f32; TILE_ROWS]; QUAD],
    BG: Fn(&T, [&BlockQ8Act; QUAD], &mut [Acc; QUAD]),
    B1: Fn(&T, [&BlockQ8Act; 1], &mut [Acc; 1]),
    FT: Fn(Acc) -> [f32; TILE_ROWS],
{
    let bpr = w.blocks_per_row();
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    let whole = out.n() / QUAD * QUAD;
    let band = (BAND_BYTES / (size_of::<T>() * bpr).max(1)).max(1);
    let mut buf = [Quad::ZERO; CHUNK];
    for tr0 in (0..w.tile_rows()).step_by(band) {
        for t0 in (0..whole).step_by(QUAD) {
            for b0 in (0..bpr).step_by(CHUNK) {
                let quads = &mut buf[..CHUNK.min(bpr - b0)];
                for (b, q) in quads.iter_mut().enumerate() {
                    // SAFETY: NEON is part of every aarch64 target.
                    unsafe { q.set(core::array::from_fn(|i| &x[(t0 + i) * bpr + b0 + b])) };
                }
                for tr in tr0..(tr0 + band).min(w.tile_rows()) {
                    let tiles = &w.tile_row(tr)[b0..][..quads.len()];
                    // SAFETY: NEON is part of every aarch64 target.
                    let mut acc: QuadAcc = [unsafe { vdupq_n_f32(0.0) }; 8];
                    for (tile, q) in tiles.iter().zip(quads.iter()) {
                        (quad.tile)(tile, q, &mut acc);
                    }
                    let r0 = tr * TILE_ROWS;
                    for (i, sums) in (quad.finish)(acc).into_iter().enumerate() {
                        let dst = &mut out.row(t0 + i)[r0..];
                        if b0 == 0 {
                            tiles::store_sums(dst, sums);
                        } else {
                            dst.iter_mut().zip(sums).for_each(|(o, s)| *o += s);
                        }
                    }
                }
            }
        }
    }
    if whole < out.n() {
        tiles::matmul(w, &x[whole * bpr..], out.tokens_from(whole), tail);
    }
}
