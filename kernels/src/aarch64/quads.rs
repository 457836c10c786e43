//! The prompt (batch) matmul loop of the SDOT and SMMLA paths: tokens in quads of four whose
//! activation blocks are interleaved once per product ([`Quad`]), so the inner loop loads them
//! as whole registers, with the four tokens' scales and sums in one vector each and the
//! registers the integer dots start from (Q4_0's offsets, or zeros) ready to load in pairs.
//! A kernel takes a pass of one quad against a whole tile (eight rows), or of two or four
//! quads against half a tile (four rows): the half tile's registers are prepared once for
//! eight or sixteen tokens, and the sums stay in registers ([`PassKernel`]).
//!
//! Order: for each band of tile rows ([`BAND_BYTES`] of weights), for each pass, for each
//! chunk of up to [`CHUNK_BYTES`] of interleaved blocks (a stack buffer), for each tile row
//! of the band and each part of it, the pass kernel runs over the chunk's tiles; the chunk's sums go
//! to the output (stored, then added for later chunks). The weights stay in the file's tile
//! layout (zero copy); tokens past the last whole pass take the tile kernels of
//! [`crate::simd::tiles`].

use core::arch::aarch64::*;

use super::neon::matmul::Acc;
use crate::layout::TILE_ROWS;
use crate::simd::tiles::{self, TileKernel, store_sums};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// Tokens per quad.
pub(crate) const QUAD: usize = 4;
/// Bytes of interleaved quads at a time: half of a 64 KiB L1 data cache (A76, A78, N1), so
/// that they stay there while every tile row of the band goes over them (19 blocks for
/// four-quad passes, 39 for two, 78 for one).
const CHUNK_BYTES: usize = 32 << 10;
/// Quads in a chunk's stack buffer.
const CHUNK_QUADS: usize = CHUNK_BYTES / size_of::<Quad>();
/// Weight bytes of the band of tile rows that all passes go over before the next band: the
/// band stays in a core's L2 (256-512 KiB on the A76 / A78 / N1) instead of being read from
/// memory once per pass; the activations are interleaved once per band.
const BAND_BYTES: usize = 256 << 10;

/// One block of four tokens' activations, with every per-token value a kernel needs laid
/// out as the registers it uses, so that a kernel loads them in pairs at fixed offsets (one
/// instruction per two registers, where building them costs a `dup`, `movi` or `mov` each).
/// Byte `32o + 16p + 8i + j` of `qs` is element `8o + j` of token `2p + i`: register `2o + p`
/// (16 bytes) is octet `o` of token pair `p`, SMMLA's operand shape, and its 32-bit lane
/// `2i + h` is elements `8o + 4h..8o + 4h + 4` of token `2p + i`, SDOT's by-element operand.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub(crate) struct Quad {
    /// The interleaved quants.
    pub qs: [i8; 128],
    /// The four tokens' scales `d_t` (SDOT multiplies by lane).
    pub d: [f32; QUAD],
    /// Where SDOT's integer dots start: `starts[h][t]` is token `t`'s `offset · sum_t` in
    /// every lane, for row group `h` (Q4_0's −8 times the quants, zero for other types).
    pub starts: [[[i32; 4]; QUAD]; 2],
    /// The four tokens' scaled sums `d_t · sum_t` (Q4_1's minimums).
    pub dsum: [f32; QUAD],
    /// SMMLA's scales: `[d_t, d_t', d_t, d_t']` for token pair `p` = (t, t').
    pub d_pairs: [[f32; 4]; 2],
    /// Where SMMLA's integer dots start: `start_pairs[p][k]` is `[s_t, s_t', s_t, s_t']` for
    /// token pair `p` and row pair `k`.
    pub start_pairs: [[[i32; 4]; 2]; 2],
    /// SMMLA's scaled sums, as `d_pairs`.
    pub dsum_pairs: [[f32; 4]; 2],
}

/// `N` registers of four i32.
#[target_feature(enable = "neon")]
#[inline]
fn load_i32<const N: usize>(v: &[[i32; 4]; N]) -> [int32x4_t; N] {
    let mut regs = [vdupq_n_s32(0); N];
    for (r, v) in regs.iter_mut().zip(v) {
        // SAFETY: `v` is 4 readable i32.
        *r = unsafe { vld1q_s32(v.as_ptr()) };
    }
    regs
}

/// `N` registers of four f32.
#[target_feature(enable = "neon")]
#[inline]
fn load_f32<const N: usize>(v: &[[f32; 4]; N]) -> [float32x4_t; N] {
    let mut regs = [vdupq_n_f32(0.0); N];
    for (r, v) in regs.iter_mut().zip(v) {
        // SAFETY: `v` is 4 readable f32.
        *r = unsafe { vld1q_f32(v.as_ptr()) };
    }
    regs
}

impl Quad {
    const ZERO: Self = Self {
        qs: [0; 128],
        d: [0.0; QUAD],
        dsum: [0.0; QUAD],
        d_pairs: [[0.0; 4]; 2],
        dsum_pairs: [[0.0; 4]; 2],
        starts: [[[0; 4]; QUAD]; 2],
        start_pairs: [[[0; 4]; 2]; 2],
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
        load_f32(&[self.d])[0]
    }

    /// The four tokens' scaled sums.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn scaled_sums(&self) -> float32x4_t {
        load_f32(&[self.dsum])[0]
    }

    /// SMMLA's scales per token pair.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn scale_pairs(&self) -> [float32x4_t; 2] {
        load_f32(&self.d_pairs)
    }

    /// SMMLA's scaled sums per token pair.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn scaled_sum_pairs(&self) -> [float32x4_t; 2] {
        load_f32(&self.dsum_pairs)
    }

    /// SDOT's starting dots for `H` row groups: `[t][h]`.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn starts<const H: usize>(&self) -> [[int32x4_t; H]; QUAD] {
        let mut starts = [[vdupq_n_s32(0); H]; QUAD];
        for (h, group) in self.starts[..H].iter().enumerate() {
            for (t, s) in load_i32(group).into_iter().enumerate() {
                starts[t][h] = s;
            }
        }
        starts
    }

    /// SMMLA's starting dots: `[p][k]`.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn start_pairs(&self) -> [[int32x4_t; 2]; 2] {
        self.start_pairs.map(|pair| load_i32(&pair))
    }

    /// Interleaves one block of four tokens for `operands`' kernels, for weights whose quants
    /// are `offset` plus what the kernel multiplies (Q4_0's −8, else 0).
    #[target_feature(enable = "neon")]
    #[inline]
    fn set(&mut self, a: [&BlockQ8Act; QUAD], offset: i32, operands: Operands) {
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
        let (d, sum) = (
            [a[0].d, a[1].d, a[2].d, a[3].d],
            [a[0].sum, a[1].sum, a[2].sum, a[3].sum],
        );
        // SAFETY: both arrays are 4 readable values.
        let (d, sum) = unsafe { (vld1q_f32(d.as_ptr()), vld1q_s32(sum.as_ptr())) };
        let (dsum, start) = (vmulq_f32(d, vcvtq_f32_s32(sum)), vmulq_n_s32(sum, offset));
        match operands {
            Operands::Sdot => {
                store_f32(&mut self.d, d);
                store_f32(&mut self.dsum, dsum);
                let lanes = [
                    vdupq_laneq_s32::<0>(start),
                    vdupq_laneq_s32::<1>(start),
                    vdupq_laneq_s32::<2>(start),
                    vdupq_laneq_s32::<3>(start),
                ];
                for group in &mut self.starts {
                    for (s, lane) in group.iter_mut().zip(lanes) {
                        store_i32(s, lane);
                    }
                }
            }
            Operands::Smmla => {
                let pairs = |v: int32x4_t| {
                    let v = vreinterpretq_s64_s32(v);
                    [vdupq_laneq_s64::<0>(v), vdupq_laneq_s64::<1>(v)].map(|p| vreinterpretq_s32_s64(p))
                };
                let [d, dsum] = [d, dsum].map(|v| pairs(vreinterpretq_s32_f32(v)));
                for p in 0..2 {
                    store_f32(&mut self.d_pairs[p], vreinterpretq_f32_s32(d[p]));
                    store_f32(&mut self.dsum_pairs[p], vreinterpretq_f32_s32(dsum[p]));
                }
                for (pair, start) in self.start_pairs.iter_mut().zip(pairs(start)) {
                    for s in pair {
                        store_i32(s, start);
                    }
                }
            }
        }
    }
}

/// Stores four f32.
#[target_feature(enable = "neon")]
#[inline]
fn store_f32(to: &mut [f32; 4], v: float32x4_t) {
    // SAFETY: `to` is 4 writable f32.
    unsafe { vst1q_f32(to.as_mut_ptr(), v) }
}

/// Stores four i32.
#[target_feature(enable = "neon")]
#[inline]
fn store_i32(to: &mut [i32; 4], v: int32x4_t) {
    // SAFETY: `to` is 4 writable i32.
    unsafe { vst1q_s32(to.as_mut_ptr(), v) }
}

/// Which instruction's operands a pass's quads are set up for: their scales, sums and
/// starting dots per token (SDOT by element) or per token pair (SMMLA).
#[derive(Clone, Copy)]
pub(crate) enum Operands {
    Sdot,
    Smmla,
}

/// Which half of a tile a pass kernel runs on: rows 0-3 or rows 4-7 (register `h` of each
/// chunk, see [`super::neon::matmul::load_chunk`]).
#[derive(Clone, Copy)]
pub(crate) enum Half {
    Low,
    High,
}

impl Half {
    /// Part `part` (0 or 1) of a two-quad pass.
    #[inline(always)]
    pub(crate) fn of(part: usize) -> Self {
        if part == 0 { Self::Low } else { Self::High }
    }

    /// Register `self` of a 32-byte tile chunk: its four rows' four bytes.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn load(self, chunk: &[u8; 32]) -> uint8x16_t {
        let half: &[u8; 16] = &chunk.as_chunks().0[self as usize];
        // SAFETY: `half` is 16 readable bytes.
        unsafe { vld1q_u8(half.as_ptr()) }
    }

    /// The four rows' values of eight f16 (tile scales or minimums), as f32.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn f16s(self, d: &[u16; TILE_ROWS]) -> float32x4_t {
        let half: &[u16; HALF] = &d.as_chunks().0[self as usize];
        // SAFETY: `half` is 4 readable u16.
        unsafe { vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(half.as_ptr()))) }
    }
}

/// Rows of a half tile.
pub(crate) const HALF: usize = TILE_ROWS / 2;

/// A pass's sums as `A` registers of four (eight rows × four tokens or four rows × eight
/// tokens in eight, four rows × sixteen tokens in sixteen), in the order the path's kernel
/// keeps them.
pub(crate) type PassAcc<const A: usize = 8> = [float32x4_t; A];

/// The per-path parts of the pass loop, for passes of `Q` quads: the weights' `offset` (see
/// [`Quad::set`]) and the [`Operands`]; `tile(t, part, quads, acc)` adds part `part` of
/// tile `t` (all eight rows for one quad, [`Half`] `part` for more) times the pass's quads
/// into a [`PassAcc`] (zero at the start); `finish` gives each token's sums of the part's
/// rows.
///
/// Two quads to a pass halve what preparing the weights costs per token (Q4's nibble
/// split, SMMLA's row-pair zips) while the 32 sums still fit in registers; Q4_0 on SDOT
/// takes four (64 sums in sixteen registers, which only its asm kernel keeps without
/// spilling); Q8_0 on SDOT has nothing to prepare and keeps whole tiles with one quad, which
/// loads fewer registers.
pub(crate) struct PassKernel<K, F, const Q: usize> {
    /// What the weight type adds to the quants the kernel multiplies: Q4_0's −8, else 0.
    pub offset: i32,
    /// The instruction the quads are set up for.
    pub operands: Operands,
    /// Adds one part of a tile times one pass of quads.
    pub tile: K,
    /// Each token's sums.
    pub finish: F,
}

/// A [`PassKernel`] of `$q` quads from the weights' `$offset`, the [`Operands`] variant,
/// a path's `$tile(t, part, quads, acc)` and `$finish(acc)`.
macro_rules! pass_kernel {
    ($q:expr, $offset:expr, $operands:ident, $tile:path, $finish:path) => {
        $crate::aarch64::quads::PassKernel::<_, _, $q> {
            offset: $offset,
            operands: $crate::aarch64::quads::Operands::$operands,
            tile: |t: &_, part: usize, q: &[$crate::aarch64::quads::Quad; $q], acc: &mut [_; _]| {
                $tile(t, part, q, acc)
            },
            finish: |acc| $finish(acc),
        }
    };
}
pub(crate) use pass_kernel;

/// A [`PassKernel::finish`] for two-quad passes whose `acc[t]` is token `t`'s four sums.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn finish_halves<const A: usize>(acc: PassAcc<A>) -> [[f32; HALF]; A] {
    let mut out = [[0.0; HALF]; A];
    for (o, v) in out.iter_mut().zip(acc) {
        // SAFETY: `o` holds 4 f32.
        unsafe { vst1q_f32(o.as_mut_ptr(), v) };
    }
    out
}

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` (see [`crate::scalar::matmul_q8_0`]): whole passes
/// of tokens through `pass`, the rest (fewer than a pass) through `tail`'s tile kernel.
#[inline(always)]
pub(crate) fn matmul<T, K, F, BG, B1, FT, const Q: usize, const A: usize, const N: usize, const M: usize>(
    w: Tiled<'_, T>,
    x: &[BlockQ8Act],
    mut out: OutCols<'_>,
    pass: PassKernel<K, F, Q>,
    tail: TileKernel<Acc, BG, B1, FT>,
) where
    K: Fn(&T, usize, &[Quad; Q], &mut PassAcc<A>),
    F: Fn(PassAcc<A>) -> [[f32; N]; M],
    BG: Fn(&T, [&BlockQ8Act; QUAD], &mut [Acc; QUAD]),
    B1: Fn(&T, [&BlockQ8Act; 1], &mut [Acc; 1]),
    FT: Fn(Acc) -> [f32; TILE_ROWS],
{
    let bpr = w.blocks_per_row();
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    // A pass is `M` tokens, a part `N` rows (a whole tile or half), its sums `A` registers.
    const { assert!(M == Q * QUAD && (N == TILE_ROWS || N == HALF) && 4 * A == M * N) };
    let whole = out.n() / M * M;
    if whole == 0 {
        // Fewer tokens than a pass (a decode step): no quads, no buffer to clear.
        return tiles::matmul(w, x, out, tail);
    }
    let band = (BAND_BYTES / (size_of::<T>() * bpr).max(1)).max(1);
    let mut buf = [Quad::ZERO; CHUNK_QUADS];
    let buf = buf.as_chunks_mut::<Q>().0;
    let chunk = buf.len();
    for tr0 in (0..w.tile_rows()).step_by(band) {
        for t0 in (0..whole).step_by(M) {
            for b0 in (0..bpr).step_by(chunk) {
                let passes = &mut buf[..chunk.min(bpr - b0)];
                for (b, quads) in passes.iter_mut().enumerate() {
                    for (i, q) in quads.iter_mut().enumerate() {
                        let t = t0 + i * QUAD;
                        // SAFETY: NEON is part of every aarch64 target.
                        unsafe {
                            q.set(
                                core::array::from_fn(|j| &x[(t + j) * bpr + b0 + b]),
                                pass.offset,
                                pass.operands,
                            )
                        };
                    }
                }
                for tr in tr0..(tr0 + band).min(w.tile_rows()) {
                    let tiles = &w.tile_row(tr)[b0..][..passes.len()];
                    for part in 0..TILE_ROWS / N {
                        // SAFETY: NEON is part of every aarch64 target.
                        let mut acc: PassAcc<A> = [unsafe { vdupq_n_f32(0.0) }; A];
                        for (tile, quads) in tiles.iter().zip(passes.iter()) {
                            (pass.tile)(tile, part, quads, &mut acc);
                        }
                        // A view of the pass's tokens only: local, so its fields stay in
                        // registers across the stores.
                        let mut dst = out.tokens(t0..t0 + M);
                        let (r0, add, sums) = (tr * TILE_ROWS + part * N, b0 > 0, (pass.finish)(acc));
                        if let Some(blocks) = dst.column_block::<N>(r0) {
                            for (o, s) in blocks.zip(sums) {
                                store_sums(o, s, add);
                            }
                        } else {
                            for (t, s) in sums.into_iter().enumerate() {
                                if let Some(row) = dst.row(t).get_mut(r0..) {
                                    store_sums(row, s, add);
                                }
                            }
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
