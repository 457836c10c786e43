//! AVX2 integer dot products of weight tiles with q8 activation blocks.
//!
//! A 32-byte tile chunk is one register whose 32-bit lane `r` holds four quants of row `r`;
//! the matching four activations are broadcast to all lanes, `maddubs` multiplies u8 × i8
//! into pairwise i16 sums and `madd` with ones widens to one i32 per lane: eight rows at
//! once, no horizontal sums. The activation quants are assumed in `-127..=127`, as
//! [`crate::scalar::quantize_q8_act`] makes them.

use core::arch::x86_64::*;

use zerocopy::IntoBytes;

use super::groups::Group;
use crate::layout::{SUB_BLOCKS, TILE_ROWS, TileQ4_0, TileQ4_1, TileQ8_0};
use crate::view::BlockQ8Act;

/// Tokens per group in the matmuls (see `simd::tiles`).
pub(crate) const GROUP: usize = 4;

/// Loads 32 bytes.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn load32(bytes: &[u8; 32]) -> __m256i {
    // SAFETY: `bytes` is 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// The eight f16 scales of a tile as f32 lanes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(crate) fn scales(d: &[u16; TILE_ROWS]) -> __m256 {
    // SAFETY: `d` is 16 readable bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(d.as_ptr().cast()) })
}

/// Activation quants `4g..4g + 4` broadcast to every 32-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn group4(qs: &[i8; 32], g: usize) -> __m256i {
    // One 4-byte load whether or not `g` is a constant (built byte by byte, a loop over `g`
    // left unrolled became four byte loads and shifts).
    let groups: &[[u8; 4]; 8] = zerocopy::transmute_ref!(qs);
    _mm256_set1_epi32(i32::from_le_bytes(groups[g]))
}

/// The low and the high nibbles of a 32-byte chunk of a q4 tile, as bytes (0..=15): the
/// quants of activations `4c..4c + 4` and of `16 + 4c..16 + 4c + 4`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn nibbles(chunk: &[u8; 32]) -> (__m256i, __m256i) {
    let mask = _mm256_set1_epi8(0x0f);
    let w = load32(chunk);
    (
        _mm256_and_si256(w, mask),
        _mm256_and_si256(_mm256_srli_epi16::<4>(w), mask),
    )
}

/// A q4 tile's nibbles (0..=15) as chunk registers: `[lo, hi]` of chunk `c` at `2c`, `2c + 1`
/// (see [`nibbles`]).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn nibble_quants(qs: &[u8; 128]) -> [__m256i; 8] {
    let mut q = [_mm256_setzero_si256(); 8];
    for (pair, chunk) in q.as_chunks_mut::<2>().0.iter_mut().zip(qs.as_chunks::<32>().0) {
        let (lo, hi) = nibbles(chunk);
        *pair = [lo, hi];
    }
    q
}

/// Per token, eight i32 lanes: row `r`'s nibbles `q` (from [`nibble_quants`]) dotted with the
/// block.
///
/// Range: `maddubs(nibble, a)` is a sum of two products of magnitude <= 15·128, so <= 3840;
/// eight of them (four chunks, low and high nibbles) sum to <= 30720 < 32767 in i16.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn nibble_dots_of<const NT: usize>(q: &[__m256i; 8], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
    let mut acc = [_mm256_setzero_si256(); NT];
    for c in 0..4 {
        for (s, at) in acc.iter_mut().zip(a) {
            *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(q[2 * c], group4(at, c)));
            *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(q[2 * c + 1], group4(at, 4 + c)));
        }
    }
    acc.map(|s| _mm256_madd_epi16(s, _mm256_set1_epi16(1)))
}

/// Per token, eight i32 lanes: row `r`'s nibbles (unsigned, 0..=15) dotted with the block.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn nibble_dots<const NT: usize>(qs: &[u8; 128], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
    nibble_dots_of(&nibble_quants(qs), a)
}

/// `acc[t] += (dw · d_t) · isum[t]`, the per-block scaling of the q4_0 and q8_0 products.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn scale_into<const NT: usize>(
    dw: __m256,
    a: [&BlockQ8Act; NT],
    isum: [__m256i; NT],
    acc: &mut [__m256; NT],
) {
    for ((acc, at), s) in acc.iter_mut().zip(a).zip(isum) {
        *acc = _mm256_fmadd_ps(
            _mm256_mul_ps(dw, _mm256_set1_ps(at.d)),
            _mm256_cvtepi32_ps(s),
            *acc,
        );
    }
}

/// How far ahead of the tile being multiplied to prefetch weights.
const PREFETCH_BYTES: usize = 2048;

/// Tiles larger than this (the K-quant super-block tiles, 672 to 1,680 bytes) are prefetched
/// by their kernels a sub-block's share at a time ([`prefetch_sub_block`]), not all at once
/// here: a Q6_K tile's 27 prefetches in a row stall decode (one thread streamed q6_k at
/// ~9 GB/s with them, ~16 GB/s spread over the sub-blocks).
const BURST_BYTES: usize = 512;

/// Prefetches the cache lines `PREFETCH_BYTES` past `tile` (the tiles are read in order) for
/// tiles up to [`BURST_BYTES`]. Out-of-order execution alone keeps too few lines in flight to
/// stream weights at full memory bandwidth in decode, where each tile takes tens of instructions.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn prefetch_ahead<T>(tile: &T) {
    if size_of::<T>() > BURST_BYTES {
        return;
    }
    let ahead = (tile as *const T).cast::<i8>().wrapping_add(PREFETCH_BYTES);
    for line in (0..size_of::<T>()).step_by(64) {
        // A hint: it never faults, whatever the address.
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
    }
}

/// For a tile over [`BURST_BYTES`] of `SUB_BLOCKS` sub-blocks: prefetches sub-block `j`'s share
/// (an eighth) of the bytes `PREFETCH_BYTES` past `tile`. The shares of consecutive `j` and
/// tiles are contiguous, so every line is fetched once a share starts in or before it.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn prefetch_sub_block<T>(tile: &T, j: usize) {
    let share = size_of::<T>().div_ceil(SUB_BLOCKS);
    let ahead = (tile as *const T)
        .cast::<i8>()
        .wrapping_add(PREFETCH_BYTES + j * share);
    for line in (0..share).step_by(64) {
        // A hint: it never faults, whatever the address.
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
    }
}

/// `acc[t] +=` a Q4_0 tile (`d·(q − 8)`) times token `t`, from the dots of its unsigned
/// nibbles: the −8 folds in as `−8·sum(a)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn scale_q4_0<const NT: usize>(
    tile: &TileQ4_0,
    a: [&BlockQ8Act; NT],
    mut dots: [__m256i; NT],
    acc: &mut [__m256; NT],
) {
    for (s, at) in dots.iter_mut().zip(a) {
        *s = _mm256_sub_epi32(*s, _mm256_set1_epi32(8 * at.sum));
    }
    scale_into(scales(&tile.d), a, dots, acc);
}

/// `acc[t] +=` a Q4_1 tile (`d·q + m`) times token `t`, from the dots of its nibbles: the
/// minimum folds in as `m·d_a·sum(a)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn scale_q4_1<const NT: usize>(
    tile: &TileQ4_1,
    a: [&BlockQ8Act; NT],
    dots: [__m256i; NT],
    acc: &mut [__m256; NT],
) {
    scale_into(scales(&tile.d), a, dots, acc);
    let m = scales(&tile.m);
    for (acc, at) in acc.iter_mut().zip(a) {
        *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(at.d * at.sum as f32), *acc);
    }
}

/// One Q4_0 tile times `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q4_0<const NT: usize>(tile: &TileQ4_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    scale_q4_0(tile, a, nibble_dots(&tile.qs, a.map(|a| &a.qs)), acc);
}

/// `acc[t] += dw ⊙ (d_t·dot_t + ds_t)`: the per-block scaling of a [`Group`], whose scaled
/// sums `ds_t` carry the weights' offset (Q4_0's −8) or are zero.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn scale_group(dw: __m256, g: &Group, dots: [__m256i; GROUP], acc: &mut [__m256; GROUP]) {
    g.each_token(dots, acc, |t, dot, acc| {
        *acc = _mm256_fmadd_ps(dw, _mm256_fmadd_ps(t.d, _mm256_cvtepi32_ps(dot), t.ds), *acc);
    });
}

/// One Q4_0 tile, its nibbles `q` unpacked by [`nibble_quants`], times a group (scaled sums
/// `−8·d_t·sum_t`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q4_0(tile: &TileQ4_0, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
    scale_group(scales(&tile.d), g, nibble_dots_of(q, g.qs.each_ref()), acc);
}

/// `acc[t] += dw ⊙ d_t·dot_t + m ⊙ ds_t`: the per-block scaling of a [`Group`] against a
/// tile with minimums `m` (Q4_1, scaled sums `d_t·sum_t`).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn scale_group_min(
    dw: __m256,
    m: __m256,
    g: &Group,
    dots: [__m256i; GROUP],
    acc: &mut [__m256; GROUP],
) {
    g.each_token(dots, acc, |t, dot, acc| {
        let scaled = _mm256_mul_ps(t.d, _mm256_cvtepi32_ps(dot));
        *acc = _mm256_fmadd_ps(m, t.ds, _mm256_fmadd_ps(dw, scaled, *acc));
    });
}

/// One Q4_1 tile, its nibbles `q` unpacked by [`nibble_quants`], times a group.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q4_1(tile: &TileQ4_1, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
    let dots = nibble_dots_of(q, g.qs.each_ref());
    scale_group_min(scales(&tile.d), scales(&tile.m), g, dots, acc);
}

/// One Q8_0 tile times a group (scaled sums zero).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q8_0(tile: &TileQ8_0, g: &Group, acc: &mut [__m256; GROUP]) {
    scale_group(scales(&tile.d), g, signed_dots(tile, g.qs.each_ref()), acc);
}

/// One Q4_1 tile times `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q4_1<const NT: usize>(tile: &TileQ4_1, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    scale_q4_1(tile, a, nibble_dots(&tile.qs, a.map(|a| &a.qs)), acc);
}

/// `Σ |w|·(a with w's sign)` in i32 lanes: the sign trick, since `maddubs` needs one unsigned
/// operand. Range: |w| <= 128 and |a| <= 127, so each i16 pair sum is <= 2·128·127 = 32512.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn signed_dot_i16(w: __m256i, w_abs: __m256i, a: __m256i) -> __m256i {
    _mm256_madd_epi16(
        _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(a, w)),
        _mm256_set1_epi16(1),
    )
}

/// Per token, eight i32 lanes: row `r`'s quants dotted with the block.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn signed_dots<const NT: usize>(tile: &TileQ8_0, a: [&[i8; 32]; NT]) -> [__m256i; NT] {
    let mut dots = [_mm256_setzero_si256(); NT];
    for (c, chunk) in tile.qs.as_bytes().as_chunks::<32>().0.iter().enumerate() {
        let w = load32(chunk);
        let w_abs = _mm256_abs_epi8(w);
        for (s, at) in dots.iter_mut().zip(a) {
            *s = _mm256_add_epi32(*s, signed_dot_i16(w, w_abs, group4(at, c)));
        }
    }
    dots
}

/// One Q8_0 tile times `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q8_0<const NT: usize>(tile: &TileQ8_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    scale_into(scales(&tile.d), a, signed_dots(tile, a.map(|a| &a.qs)), acc);
}

/// The eight row sums of an accumulator.
#[target_feature(enable = "avx")]
#[inline]
pub(crate) fn finish(acc: __m256) -> [f32; TILE_ROWS] {
    let mut out = [0.0; TILE_ROWS];
    // SAFETY: `out` holds 8 f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

/// `Σ k·q` of two q8 blocks as eight i32 partial sums (the key quants in `-127..=127`, as
/// [`crate::scalar::quantize_q8_kv`] makes them).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn block_dot_q8(k: &[i8; 32], q: &[i8; 32]) -> __m256i {
    let k = load32(zerocopy::transmute_ref!(k));
    signed_dot_i16(k, _mm256_abs_epi8(k), load32(zerocopy::transmute_ref!(q)))
}
