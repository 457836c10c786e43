//! The prompt matmul loop of the AVX2 path: tokens in groups of four whose activation blocks
//! are copied once per chunk into one [`Group`] per block, with the per-token values the
//! block's scaling needs (scale, and the weights' offset or minimum times the scaled sum)
//! ready as floats. Every tile row of the chunk then goes over the groups: the broadcasts
//! come from one address, and each token's scaling is a convert and two FMAs, where
//! building `8·sum` or `d·sum` in a register per block and token costs three to four more
//! operations. Each tile row's quants are unpacked once per chunk into a second stack buffer
//! that every group then reads: for the 5-bit types, unpacking a register (nibbles plus a fifth
//! bit spread from a word) cost six operations against eight for the four tokens' products.
//! A K-quant tile spans a super-block, so it takes eight groups, one per sub-block, whose
//! tokens also carry their 16-value half sums. Tokens past the last whole group take the tile
//! kernels of [`crate::simd::tiles`].

use core::arch::x86_64::*;
use core::mem::{MaybeUninit, offset_of};

use super::matmul::{GROUP, load32};
use crate::layout::TILE_ROWS;
use crate::simd::tiles::{self, CHUNK_BYTES, TileKernel, store_sums};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// One block of four tokens' activations and their per-token floats.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct Group {
    /// Token `t`'s quants.
    pub qs: [[i8; 32]; GROUP],
    /// Token `t`'s scale `d_t`.
    pub d: [f32; GROUP],
    /// Token `t`'s `k · d_t · sum_t`, for the `k` the kernel asks for (the
    /// weights' offset: Q4_0's −8, Q5_0's −16; 1 where the tile has minimums, 0 for Q8_0).
    pub ds: [f32; GROUP],
    /// Token `t`'s sums of quants 0..16 and 16..32 as an i16 pair (low, high), in the groups
    /// of K-quant tiles (zero in the others): what the types with a scale per 16 values
    /// multiply by their offsets or minimums.
    pub halves: [i32; GROUP],
    /// Token `t`'s `d_t · (sum of quants 0..16)`, in the groups of K-quant tiles (zero in the
    /// others): with `ds` at `k = 1`, the scaled sums that minimums per 16 values multiply.
    pub lo: [f32; GROUP],
}

/// One token's floats of a [`Group`], each in all eight lanes.
#[derive(Clone, Copy)]
pub(crate) struct TokenFloats {
    /// The scale `d_t`.
    pub d: __m256,
    /// The scaled sum `k · d_t · sum_t`.
    pub ds: __m256,
    /// The scaled low-half sum (K-quant groups).
    pub lo: __m256,
}

impl Group {
    /// Four tokens' blocks, with `ds` scaled by `k`, and `halves` and `lo` where asked for.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new(a: [&BlockQ8Act; GROUP], k: f32, halves: bool) -> Self {
        let mut g = Self {
            qs: a.map(|a| a.qs),
            d: a.map(|a| a.d),
            ds: a.map(|a| k * a.d * a.sum as f32),
            halves: [0; GROUP],
            lo: [0.0; GROUP],
        };
        if halves {
            let (pairs, lo) = half_sums(a);
            g.halves = pairs;
            g.lo = core::array::from_fn(|t| a[t].d * lo[t] as f32);
        }
        g
    }

    /// Token `T`'s floats: one `vbroadcastss` from memory each (a load, no vector ALU work).
    #[target_feature(enable = "avx")]
    #[inline]
    fn floats<const T: usize>(&self) -> TokenFloats {
        TokenFloats {
            d: self.broadcast::<T, 0>(),
            ds: self.broadcast::<T, 1>(),
            lo: self.broadcast::<T, 2>(),
        }
    }

    /// Token `T`'s float of field `F` (`d`, `ds`, `lo`) in all eight lanes, at a fixed offset
    /// from the group. Written as asm because LLVM merges the broadcasts of neighbouring floats
    /// into an 8-byte load and a register broadcast (an ALU operation), and a pointer per float
    /// would cost an address computation each. Pure: an unused float is not loaded.
    #[target_feature(enable = "avx")]
    #[inline]
    fn broadcast<const T: usize, const F: usize>(&self) -> __m256 {
        const { assert!(T < GROUP) };
        const FIELDS: [usize; 3] = [offset_of!(Group, d), offset_of!(Group, ds), offset_of!(Group, lo)];
        let v: __m256;
        // SAFETY: the load reads 4 bytes inside `self` (a valid reference to a `Group`, at
        // float `T` of field `F`) and writes `v` only; AVX is enabled on this function.
        unsafe {
            core::arch::asm!(
                "vbroadcastss {v}, dword ptr [{g} + {o}]",
                g = in(reg) self,
                o = const FIELDS[F] + 4 * T,
                v = out(ymm_reg) v,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        v
    }

    /// Calls `token(floats_t, dots[t], &mut acc[t])` for each token `t`, with `floats_t` from
    /// [`Group::floats`] (one call per token: `T` is a constant).
    #[target_feature(enable = "avx")]
    #[inline]
    pub(crate) fn each_token(
        &self,
        dots: [__m256i; GROUP],
        acc: &mut [__m256; GROUP],
        token: impl Fn(TokenFloats, __m256i, &mut __m256),
    ) {
        let [a0, a1, a2, a3] = acc;
        token(self.floats::<0>(), dots[0], a0);
        token(self.floats::<1>(), dots[1], a1);
        token(self.floats::<2>(), dots[2], a2);
        token(self.floats::<3>(), dots[3], a3);
    }
}

/// Each token's sums of quants 0..16 and 16..32, as an i16 pair (low, high), and its low sums:
/// with vector sums, since pieces of a product on several threads each build their groups
/// (summed one quant at a time, that made Q2_K's product 20 % more work on two threads).
#[target_feature(enable = "avx2")]
#[inline]
fn half_sums(a: [&BlockQ8Act; GROUP]) -> ([i32; GROUP], [i32; GROUP]) {
    let ones = _mm256_set1_epi16(1);
    // Lane k of `x[t]`: the sum of token t's quants 4k..4k + 4 (lanes 0..4 the low half).
    let x = a.map(|a| {
        let q = load32(zerocopy::transmute_ref!(&a.qs));
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), ones)
    });
    // Pairwise sums within 128-bit halves, twice: the low half sums of tokens 0..4 in the low
    // 128 bits, their high half sums in the high 128 bits.
    let q = _mm256_hadd_epi32(_mm256_hadd_epi32(x[0], x[1]), _mm256_hadd_epi32(x[2], x[3]));
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    // |sum| <= 16·127: each fits its i16.
    let pairs = _mm_blend_epi16::<0xAA>(lo, _mm_slli_epi32::<16>(hi));
    let (mut p, mut l) = ([0; GROUP], [0; GROUP]);
    // SAFETY: both arrays hold 4 i32; storeu has no alignment requirement.
    unsafe {
        _mm_storeu_si128(p.as_mut_ptr().cast(), pairs);
        _mm_storeu_si128(l.as_mut_ptr().cast(), lo);
    }
    (p, l)
}

/// Groups in a chunk's stack buffer.
const CHUNK_GROUPS: usize = CHUNK_BYTES / size_of::<Group>();

/// Blocks of 32 values whose quants are unpacked at a time (see [`GroupKernel::unpack`]):
/// 32 KiB of 5-bit quants.
const UNPACKED_BLOCKS: usize = 128;

/// The per-type parts of the group loop: the factor `k` of [`Group::ds`], what the quants of
/// each of a tile's `S` blocks of 32 values (1, or a K-quant super-block's 8) unpack to once
/// per pass over a chunk's groups (`()` where the kernel unpacks them itself), and the kernel
/// that adds one tile, with its unpacked quants, times its `S` groups into four accumulators.
#[derive(Clone, Copy)]
pub(crate) struct GroupKernel<U, K> {
    /// The factor of the scaled sums.
    pub k: f32,
    /// Block `j` of a tile, unpacked: made once per tile row and chunk, read by every group.
    pub unpack: U,
    /// Adds one tile times its groups.
    pub tile: K,
}

/// The tile kernel for the tokens the groups leave, and the activations as it takes them (a
/// block, or a super-block, per tile).
pub(crate) type Tail<X, BG, B1, F> = (TileKernel<__m256, BG, B1, F>, fn(&[BlockQ8Act]) -> &[X]);

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` (see [`crate::scalar::matmul_q8_0`]) for tiles of `S`
/// blocks: whole groups through `group`; tokens past the last whole group, and rows too long
/// for one chunk, through `tail`.
///
/// # Safety
/// The CPU must have AVX2. (Not a `#[target_feature]` function: as one, LLVM kept it and the
/// kernels' closures out of line, a call per tile and group.)
#[inline(always)]
pub(crate) unsafe fn matmul<T, X, Q, U, K, BG, B1, F, const S: usize>(
    w: Tiled<'_, T>,
    x: &[BlockQ8Act],
    mut out: OutCols<'_>,
    group: GroupKernel<U, K>,
    (tail, acts): Tail<X, BG, B1, F>,
) where
    U: Fn(&T, usize) -> Q,
    K: Fn(&T, &[Q; S], &[Group; S], &mut [__m256; GROUP]),
    BG: Fn(&T, [&X; GROUP], &mut [__m256; GROUP]),
    B1: Fn(&T, [&X; 1], &mut [__m256; 1]),
    F: Fn(__m256) -> [f32; TILE_ROWS],
{
    let bpr = w.blocks_per_row() * S;
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    let whole = out.n() / GROUP * GROUP;
    if whole == 0 || bpr > CHUNK_GROUPS {
        return tiles::matmul(w, acts(x), out, tail);
    }
    // Not zeroed: every group a chunk reads is written first (zeroing cost as much as the
    // copy, 3.6 % of a pp128 pass's instructions); the same for the unpacked tiles.
    let mut buf = [const { MaybeUninit::<Group>::uninit() }; CHUNK_GROUPS];
    let mut unpacked = [const { MaybeUninit::<Q>::uninit() }; UNPACKED_BLOCKS];
    let per_pass = UNPACKED_BLOCKS / S;
    let per_chunk = CHUNK_GROUPS / bpr * GROUP;
    for t0 in (0..whole).step_by(per_chunk) {
        let t1 = (t0 + per_chunk).min(whole);
        let groups = &mut buf[..(t1 - t0) / GROUP * bpr];
        for (i, g) in groups.iter_mut().enumerate() {
            let (t, b) = (t0 + i / bpr * GROUP, i % bpr);
            let a = core::array::from_fn(|j| &x[(t + j) * bpr + b]);
            // SAFETY: the CPU has AVX2 (the caller's promise).
            g.write(unsafe { Group::new(a, group.k, S > 1) });
        }
        // SAFETY: the loop above wrote every group.
        let groups = unsafe { assume_init(groups) };
        for tr in 0..w.tile_rows() {
            let r0 = tr * TILE_ROWS;
            for (pass, tiles) in w.tile_row(tr).chunks(per_pass).enumerate() {
                let quants = &mut unpacked[..tiles.len() * S];
                for (i, q) in quants.iter_mut().enumerate() {
                    q.write((group.unpack)(&tiles[i / S], i % S));
                }
                // SAFETY: the loop above wrote every block's quants.
                let quants = unsafe { assume_init(quants) }.as_chunks::<S>().0;
                let first = pass * per_pass * S;
                for (gi, gs) in groups.chunks_exact(bpr).enumerate() {
                    let gs = gs[first..].as_chunks::<S>().0;
                    let mut acc = [tail.zero; GROUP];
                    for ((tile, q), g) in tiles.iter().zip(quants).zip(gs) {
                        (group.tile)(tile, q, g, &mut acc);
                    }
                    let t = t0 + gi * GROUP;
                    for (i, a) in acc.into_iter().enumerate() {
                        store_sums(&mut out.row(t + i)[r0..], (tail.finish)(a), pass > 0);
                    }
                }
            }
        }
    }
    if whole < out.n() {
        tiles::matmul(w, acts(&x[whole * bpr..]), out.tokens_from(whole), tail);
    }
}

/// `items` as initialized.
///
/// # Safety
/// Every element of `items` must have been written.
#[inline(always)]
unsafe fn assume_init<X>(items: &mut [MaybeUninit<X>]) -> &[X] {
    // SAFETY: every element is initialized (the caller's promise), and `MaybeUninit<X>` has
    // `X`'s layout.
    unsafe { &*(core::ptr::from_ref(items) as *const [X]) }
}
