//! AVX2 tile kernels of the 5-bit and K-quant types. Their tiles keep the q4 tile's order of
//! the low four bits (see `layout::kquant`), so each sub-block of 32 values is a q4 tile with
//! extra bits OR-ed into its nibble registers, and K-quant scales applied per sub-block.

use core::arch::x86_64::*;

use super::groups::Group;
use super::matmul::{
    GROUP, group4, load32, nibble_dots, nibble_quants, nibbles, prefetch_sub_block, scale_group,
    scale_group_min, scale_into, scales,
};
use crate::layout::{SUB_BLOCKS, TileQ2K, TileQ3K, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K};
use crate::view::BlockQ8Act;

/// Byte `p` is `value` where bit `p` of `word` is set, else 0: a fifth-bit word (see
/// `layout::kquant`) lined up with a 32-byte chunk register.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn word_bits(word: u32, value: i8) -> __m256i {
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(word as i32), spread);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(value))
}

/// A 5-bit tile's quants (0..=31) as chunk registers: `[lo, hi]` of chunk `c` at `2c`, `2c + 1`
/// (the quants of activations `4c..4c + 4` and `16 + 4c..16 + 4c + 4`, see [`nibbles`]).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q5_quants(qs: &[u8; 128], qh: &[u32; 8]) -> [__m256i; 8] {
    let chunks = qs.as_chunks::<32>().0;
    let mut q = [_mm256_setzero_si256(); 8];
    for (c, pair) in q.as_chunks_mut::<2>().0.iter_mut().enumerate() {
        let (lo, hi) = nibbles(&chunks[c]);
        *pair = [
            _mm256_or_si256(lo, word_bits(qh[c], 0x10)),
            _mm256_or_si256(hi, word_bits(qh[4 + c], 0x10)),
        ];
    }
    q
}

/// Per token, eight i32 lanes: row `r`'s 5-bit quants `q` (from [`q5_quants`]) dotted with
/// the block.
///
/// Range: a `maddubs` lane is <= 2·31·127 = 7874, so the low and high halves of two chunks sum
/// to <= 31496 in i16; widened once per two chunks (half the `madd`s of widening every chunk).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q5_dots_of<const NT: usize>(q: &[__m256i; 8], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
    let mut acc = [_mm256_setzero_si256(); NT];
    for pair in 0..2 {
        let mut p = [_mm256_setzero_si256(); NT];
        for c in 2 * pair..2 * pair + 2 {
            let (lo, hi) = (q[2 * c], q[2 * c + 1]);
            for (p, at) in p.iter_mut().zip(a) {
                *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(lo, group4(at, c)));
                *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(hi, group4(at, 4 + c)));
            }
        }
        for (s, p) in acc.iter_mut().zip(p) {
            *s = _mm256_add_epi32(*s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        }
    }
    acc
}

/// Per token, eight i32 lanes: row `r`'s 5-bit quants (0..=31) dotted with the block.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q5_dots<const NT: usize>(qs: &[u8; 128], qh: &[u32; 8], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
    q5_dots_of(&q5_quants(qs, qh), a)
}

/// One Q5_0 tile (`d·(q − 16)`) times `NT` tokens: the −16 folds in as `−16·sum(a)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_0<const NT: usize>(tile: &TileQ5_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    let mut dots = q5_dots(&tile.qs, &tile.qh, a.map(|a| &a.qs));
    for (s, at) in dots.iter_mut().zip(a) {
        *s = _mm256_sub_epi32(*s, _mm256_set1_epi32(16 * at.sum));
    }
    scale_into(scales(&tile.d), a, dots, acc);
}

/// One Q5_1 tile (`d·q + m`) times `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_1<const NT: usize>(tile: &TileQ5_1, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    scale_into(
        scales(&tile.d),
        a,
        q5_dots(&tile.qs, &tile.qh, a.map(|a| &a.qs)),
        acc,
    );
    let m = scales(&tile.m);
    for (acc, at) in acc.iter_mut().zip(a) {
        *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(at.d * at.sum as f32), *acc);
    }
}

/// One Q5_0 tile, its quants `q` unpacked by [`q5_quants`], times a group (scaled sums
/// `−16·d_t·sum_t`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q5_0(tile: &TileQ5_0, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
    scale_group(scales(&tile.d), g, q5_dots_of(q, g.qs.each_ref()), acc);
}

/// One Q5_1 tile, its quants `q` unpacked by [`q5_quants`], times a group (scaled sums
/// `d_t·sum_t`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q5_1(tile: &TileQ5_1, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
    scale_group_min(
        scales(&tile.d),
        scales(&tile.m),
        g,
        q5_dots_of(q, g.qs.each_ref()),
        acc,
    );
}

/// Eight bytes as f32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn u8x8(v: &[u8; 8]) -> __m256 {
    // SAFETY: `v` is 8 readable bytes; loadl reads exactly 8, unaligned.
    let v = unsafe { _mm_loadl_epi64(v.as_ptr().cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
}

/// In decode (one token), prefetches sub-block `j`'s share of the weights ahead of a K-quant
/// tile (see `matmul::BURST_BYTES`); token groups read each tile from cache for four tokens and
/// prefetch nothing.
#[target_feature(enable = "avx2")]
#[inline]
fn decode_prefetch<T, const NT: usize>(tile: &T, j: usize) {
    if NT == 1 {
        prefetch_sub_block(tile, j);
    }
}

/// `acc[t] +=` sub-block `j` of a Q4_K / Q5_K tile times token `t`, from its integer dots:
/// `(d·sc_j)·d_a·dot − (dmin·m_j)·d_a·sum(a)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn scale_k4_sub<const NT: usize>(
    (d, dmin): (__m256, __m256),
    (sc, m): (&[u8; 8], &[u8; 8]),
    a: [&BlockQ8Act; NT],
    dots: [__m256i; NT],
    acc: &mut [__m256; NT],
) {
    scale_into(_mm256_mul_ps(d, u8x8(sc)), a, dots, acc);
    let mins = _mm256_mul_ps(dmin, u8x8(m));
    for (acc, at) in acc.iter_mut().zip(a) {
        *acc = _mm256_fnmadd_ps(mins, _mm256_set1_ps(at.d * at.sum as f32), *acc);
    }
}

/// One Q4_K tile times `NT` tokens' super-blocks, with the nibble dots `dots` of an ISA.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q4_k_with<const NT: usize>(
    tile: &TileQ4K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
    dots: impl Fn(&[u8; 128], [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let ds = (scales(&tile.d), scales(&tile.dmin));
    let (sc, m) = (tile.sc.as_chunks::<8>().0, tile.m.as_chunks::<8>().0);
    for (j, qs) in tile.qs.as_chunks::<128>().0.iter().enumerate() {
        decode_prefetch::<_, NT>(tile, j);
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, dots(qs, aj), acc);
    }
}

/// Sub-block `j` of a Q4_K tile unpacked: its nibbles (see `nibble_quants`) and the rows'
/// scale `d·sc_j` and minimum `dmin·m_j` as floats.
pub(crate) type Q4KSub = ([__m256i; 8], [__m256; 2]);

/// Sub-block `j` of a Q4_K tile, unpacked for [`group_q4_k`].
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(crate) fn q4_k_sub(tile: &TileQ4K, j: usize) -> Q4KSub {
    let (sc, m) = (&tile.sc.as_chunks::<8>().0[j], &tile.m.as_chunks::<8>().0[j]);
    (
        nibble_quants(&tile.qs.as_chunks::<128>().0[j]),
        [
            _mm256_mul_ps(scales(&tile.d), u8x8(sc)),
            _mm256_mul_ps(scales(&tile.dmin), u8x8(m)),
        ],
    )
}

/// A Q4_K tile, its sub-blocks unpacked by [`q4_k_sub`] (all the kernel reads of it), times a
/// group per sub-block (scaled sums `−d_t·sum_t`): `(d·sc_j)·d_t·dot − (dmin·m_j)·d_t·sum_t`,
/// with an ISA's nibble dots `dots` (see [`super::matmul::nibble_dots_of`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q4_k(
    q: &[Q4KSub; SUB_BLOCKS],
    g: &[Group; SUB_BLOCKS],
    acc: &mut [__m256; GROUP],
    dots: impl Fn(&[__m256i; 8], [&[i8; 32]; GROUP]) -> [__m256i; GROUP],
) {
    for ((q, [dw, mins]), g) in q.iter().zip(g) {
        scale_group_min(*dw, *mins, g, dots(q, g.qs.each_ref()), acc);
    }
}

/// One Q4_K tile times `NT` tokens' super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q4_k<const NT: usize>(
    tile: &TileQ4K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    block_q4_k_with(tile, a, acc, |qs, aj| nibble_dots(qs, aj.map(|a| &a.qs)));
}

/// One Q5_K tile times `NT` tokens' super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_k<const NT: usize>(
    tile: &TileQ5K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    block_q5_k_with(tile, a, acc, |qs, qh, aj| q5_dots(qs, qh, aj.map(|a| &a.qs)));
}

/// One Q5_K tile times `NT` tokens' super-blocks, with the 5-bit dots `dots` of an ISA.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_k_with<const NT: usize>(
    tile: &TileQ5K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
    dots: impl Fn(&[u8; 128], &[u32; 8], [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let ds = (scales(&tile.d), scales(&tile.dmin));
    let (sc, m) = (tile.sc.as_chunks::<8>().0, tile.m.as_chunks::<8>().0);
    let qh = tile.qh.as_chunks::<8>().0;
    for (j, qs) in tile.qs.as_chunks::<128>().0.iter().enumerate() {
        decode_prefetch::<_, NT>(tile, j);
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, dots(qs, &qh[j], aj), acc);
    }
}

/// Per sub-block `j` of a token's super-block, element `j`: the sums of its activation quants
/// 0..16 and 16..32 as an i16 pair (low, high), the form [`scaled_half_sums`] multiplies by
/// the rows' scale pairs. Made once per tile for all eight sub-blocks (about 26 instructions,
/// against some 13 per sub-block summing each half on its own).
#[target_feature(enable = "avx2")]
#[inline]
fn half_sum_pairs(a: &[BlockQ8Act; SUB_BLOCKS]) -> [i32; SUB_BLOCKS] {
    let ones = _mm256_set1_epi8(1);
    // Lane k of `x[j]`: the sum of quants 4k..4k + 4 of block j (lanes 0..4 the low half).
    let mut x = [_mm256_setzero_si256(); SUB_BLOCKS];
    for (x, a) in x.iter_mut().zip(a) {
        let q = load32(zerocopy::transmute_ref!(&a.qs));
        *x = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), _mm256_set1_epi16(1));
    }
    // Pairwise sums within 128-bit halves, twice: `q0` holds the low-half sums of blocks 0..4
    // in its low 128 bits and their high-half sums in its high 128 bits; `q1` those of 4..8.
    let q0 = _mm256_hadd_epi32(_mm256_hadd_epi32(x[0], x[1]), _mm256_hadd_epi32(x[2], x[3]));
    let q1 = _mm256_hadd_epi32(_mm256_hadd_epi32(x[4], x[5]), _mm256_hadd_epi32(x[6], x[7]));
    let lo = _mm256_permute2x128_si256::<0x20>(q0, q1);
    let hi = _mm256_permute2x128_si256::<0x31>(q0, q1);
    // |sum| <= 16·127: each fits its i16.
    let pairs = _mm256_blend_epi16::<0xAA>(lo, _mm256_slli_epi32::<16>(hi));
    let mut out = [0; SUB_BLOCKS];
    // SAFETY: `out` holds 8 i32; storeu has no alignment requirement.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), pairs) };
    out
}

/// [`half_sum_pairs`] of each token's super-block (a loop: as an array `map`, LLVM called the
/// closure out of line).
#[target_feature(enable = "avx2")]
#[inline]
fn half_sums_of<const NT: usize>(a: [&[BlockQ8Act; SUB_BLOCKS]; NT]) -> [[i32; SUB_BLOCKS]; NT] {
    let mut pairs = [[0; SUB_BLOCKS]; NT];
    for (p, a) in pairs.iter_mut().zip(a) {
        *p = half_sum_pairs(a);
    }
    pairs
}

/// Chunk registers of a sub-block's unsigned quants: `(lo, hi)` for chunk `c` hold, per row
/// lane, the quants of activations `4c..4c + 4` and `16 + 4c..16 + 4c + 4` (as q4 nibbles).
pub(crate) type QuantChunks = [(__m256i, __m256i); 4];

/// Per token, eight i32 lanes: `Σ_h s_h · Σ q·a` over the two halves (16 values) of a
/// sub-block, for quants `q` and each row's scale pair `s` (lane `r`: `(s_lo, s_hi)` as i16).
/// Half by half, the `maddubs` products of `SPAN` consecutive chunks are summed in i16, then
/// widened and scaled by one `madd` (fewer `madd`s the larger `SPAN`; one i16 sum per token live).
///
/// Range: a `maddubs` lane is <= 2·q_max·127; `SPAN` of them must stay <= 32767 in i16: `SPAN`
/// 2 for 6-bit quants (2·2·63·127 = 32004), 4 for 3-bit ones (4·2·7·127 = 7112). Times |s| <= 128
/// and summed over four chunks and both halves, each i32 lane stays below 2^24.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn scaled_half_dots<const SPAN: usize, const NT: usize>(
    q: &QuantChunks,
    s: __m256i,
    a: [&[i8; 32]; NT],
) -> [__m256i; NT] {
    dots_by_half::<SPAN, NT>(q, half_scales(s), a)
}

/// The scale pairs `s` (lane `r`: row `r`'s `(s_lo, s_hi)` as i16) as one register per half,
/// each scale in both i16 of its lane: what [`dots_by_half`] multiplies by.
#[target_feature(enable = "avx2")]
#[inline]
fn half_scales(s: __m256i) -> [__m256i; 2] {
    [
        _mm256_shufflehi_epi16::<0xA0>(_mm256_shufflelo_epi16::<0xA0>(s)),
        _mm256_shufflehi_epi16::<0xF5>(_mm256_shufflelo_epi16::<0xF5>(s)),
    ]
}

/// [`scaled_half_dots`] with the scales split by [`half_scales`].
#[target_feature(enable = "avx2")]
#[inline]
fn dots_by_half<const SPAN: usize, const NT: usize>(
    q: &QuantChunks,
    [s_lo, s_hi]: [__m256i; 2],
    a: [&[i8; 32]; NT],
) -> [__m256i; NT] {
    let mut dots = [_mm256_setzero_si256(); NT];
    for (half, scale) in [(0, s_lo), (1, s_hi)] {
        for first in (0..4).step_by(SPAN) {
            let mut p = [_mm256_setzero_si256(); NT];
            for (c, &(lo, hi)) in q.iter().enumerate().skip(first).take(SPAN) {
                let quants = if half == 0 { lo } else { hi };
                for (p, at) in p.iter_mut().zip(a) {
                    *p = _mm256_add_epi16(*p, _mm256_maddubs_epi16(quants, group4(at, 4 * half + c)));
                }
            }
            for (d, p) in dots.iter_mut().zip(p) {
                *d = _mm256_add_epi32(*d, _mm256_madd_epi16(p, scale));
            }
        }
    }
    dots
}

/// Per token, eight i32 lanes: `Σ_h s_h · Σ a` over the halves of a sub-block, for each row's
/// scale pair `s` (as in [`scaled_half_dots`]) and the token's half sums `pairs` (one element
/// of [`half_sum_pairs`]).
#[target_feature(enable = "avx2")]
#[inline]
fn scaled_half_sums<const NT: usize>(s: __m256i, pairs: [i32; NT]) -> [__m256i; NT] {
    pairs.map(|p| _mm256_madd_epi16(s, _mm256_set1_epi32(p)))
}

/// The signed group scales of a sub-block (16 bytes at `layout::kquant`'s `group_scale_pos`)
/// as i16 pairs, lane `r` holding row `r`'s.
#[target_feature(enable = "avx2")]
#[inline]
fn signed_pairs(sc: &[i8; 16]) -> __m256i {
    // SAFETY: a 16-byte array; loadu has no alignment requirement.
    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(sc.as_ptr().cast()) })
}

/// `acc[t] += d·d_t·Σ_h s_h·(Σ q·a − 2^shift · Σ a)` for one sub-block of a tile with signed
/// scales per 16 values and quants offset by `2^SHIFT` (Q6_K: 32, Q3_K: 4); `pairs` are the
/// tokens' half sums of the sub-block (see [`half_sum_pairs`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn offset_sub<const SHIFT: i32, const NT: usize>(
    d: __m256,
    sc: &[i8; 16],
    q: &QuantChunks,
    (a, pairs): ([&BlockQ8Act; NT], [i32; NT]),
    acc: &mut [__m256; NT],
    half_dots: &impl Fn(&QuantChunks, __m256i, [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let s = signed_pairs(sc);
    scale_into(d, a, offset_dots::<SHIFT, NT>(s, half_dots(q, s, a), pairs), acc);
}

/// Per token, eight i32 lanes: `Σ_h s_h·(Σ q·a − 2^SHIFT · Σ a)` from the scaled half dots
/// `dots` (`Σ_h s_h·Σ q·a`) of a sub-block with scale pairs `s`, and the tokens' half sums
/// `pairs` (see [`half_sum_pairs`]).
#[target_feature(enable = "avx2")]
#[inline]
fn offset_dots<const SHIFT: i32, const NT: usize>(
    s: __m256i,
    mut dots: [__m256i; NT],
    pairs: [i32; NT],
) -> [__m256i; NT] {
    for (d, sums) in dots.iter_mut().zip(scaled_half_sums(s, pairs)) {
        *d = _mm256_sub_epi32(*d, _mm256_slli_epi32::<SHIFT>(sums));
    }
    dots
}

/// One Q6_K tile times `NT` tokens' super-blocks: per sub-block the 6-bit quants are the
/// nibbles with two high bits OR-ed in, and the −32 folds in as `−32·(sc_lo·sum_lo + sc_hi·sum_hi)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q6_k<const NT: usize>(
    tile: &TileQ6K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    block_q6_k_with(tile, a, acc, |q, s, aj| {
        scaled_half_dots::<2, NT>(q, s, aj.map(|a| &a.qs))
    });
}

/// [`block_q6_k`] with the scaled half dots `half_dots` of an ISA (see [`scaled_half_dots`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q6_k_with<const NT: usize>(
    tile: &TileQ6K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
    half_dots: impl Fn(&QuantChunks, __m256i, [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let chunks = |j| q6_chunks(tile, j);
    block_offset::<5, _, NT>(tile, (&tile.d, &tile.sc), chunks, (a, acc), half_dots);
}

/// `acc[t] +=` a tile with signed scales `sc` per 16 values, super-block scales `d` and quants
/// offset by `2^SHIFT` (Q6_K: 32, Q3_K: 4), sub-block `j`'s quants unpacked by `chunks(j)`,
/// times `NT` tokens' super-blocks `a` (see [`offset_sub`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block_offset<const SHIFT: i32, T, const NT: usize>(
    tile: &T,
    (d, sc): (&[u16; 8], &[i8; 128]),
    chunks: impl Fn(usize) -> QuantChunks,
    (a, acc): ([&[BlockQ8Act; SUB_BLOCKS]; NT], &mut [__m256; NT]),
    half_dots: impl Fn(&QuantChunks, __m256i, [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let d = scales(d);
    let pairs = half_sums_of(a);
    for (j, sc) in sc.as_chunks::<16>().0.iter().enumerate() {
        decode_prefetch::<_, NT>(tile, j);
        let aj = (a.map(|x| &x[j]), pairs.map(|p| p[j]));
        offset_sub::<SHIFT, NT>(d, sc, &chunks(j), aj, acc, &half_dots);
    }
}

/// Sub-block `j` of a Q6_K tile as quant chunks (0..=63): the nibbles with the two high bits
/// OR-ed in.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q6_chunks(tile: &TileQ6K, j: usize) -> QuantChunks {
    let mask = _mm256_set1_epi8(0x30);
    let high = tile.qh.as_chunks::<64>().0[j].as_chunks::<32>().0;
    let high = [load32(&high[0]), load32(&high[1])];
    let low = tile.ql.as_chunks::<128>().0[j].as_chunks::<32>().0;
    core::array::from_fn(|c| {
        let (lo, hi) = nibbles(&low[c]);
        let h = high[c / 2];
        let (hl, hh) = match c % 2 {
            0 => (_mm256_slli_epi16::<4>(h), _mm256_slli_epi16::<2>(h)),
            _ => (h, _mm256_srli_epi16::<2>(h)),
        };
        (
            _mm256_or_si256(lo, _mm256_and_si256(hl, mask)),
            _mm256_or_si256(hi, _mm256_and_si256(hh, mask)),
        )
    })
}

/// `acc[t] +=` a tile with signed scales `sc` per 16 values, super-block scales `d` and quants
/// `q` offset by `2^SHIFT` (Q6_K: 32, unpacked by [`q6_chunks`]; Q3_K: 4, by [`q3_chunks`])
/// times a group per sub-block (scaled sums zero): the group form of [`offset_sub`], with the
/// tokens' half sums from the groups and an ISA's scaled half dots `half_dots` (see
/// [`scaled_half_dots`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_offset<const SHIFT: i32>(
    (d, sc): (&[u16; 8], &[i8; 128]),
    q: &[QuantChunks; SUB_BLOCKS],
    g: &[Group; SUB_BLOCKS],
    acc: &mut [__m256; GROUP],
    half_dots: impl Fn(&QuantChunks, __m256i, [&[i8; 32]; GROUP]) -> [__m256i; GROUP],
) {
    let d = scales(d);
    for ((sc, q), g) in sc.as_chunks::<16>().0.iter().zip(q).zip(g) {
        let s = signed_pairs(sc);
        let dots = half_dots(q, s, g.qs.each_ref());
        scale_group(d, g, offset_dots::<SHIFT, GROUP>(s, dots, g.halves), acc);
    }
}

/// A sub-block's 2-bit plane (see `layout::kquant`) as quant chunks of values 0..=3.
#[target_feature(enable = "avx2")]
#[inline]
fn plane_chunks(plane: &[u8; 64]) -> QuantChunks {
    let mask = _mm256_set1_epi8(3);
    let p = plane.as_chunks::<32>().0;
    let p = [load32(&p[0]), load32(&p[1])];
    core::array::from_fn(|c| {
        let v = p[c / 2];
        let (lo, hi) = match c % 2 {
            0 => (v, _mm256_srli_epi16::<2>(v)),
            _ => (_mm256_srli_epi16::<4>(v), _mm256_srli_epi16::<6>(v)),
        };
        (_mm256_and_si256(lo, mask), _mm256_and_si256(hi, mask))
    })
}

/// One Q3_K tile times `NT` tokens' super-blocks: the 3-bit quants (0..=7) are the plane's two
/// bits with the third OR-ed in, and the −4 folds in as in [`block_q6_k`].
///
/// Range: a `maddubs` lane is <= 2·7·128; times |sc| <= 32: far inside i32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q3_k<const NT: usize>(
    tile: &TileQ3K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    block_q3_k_with(tile, a, acc, |q, s, aj| {
        scaled_half_dots::<4, NT>(q, s, aj.map(|a| &a.qs))
    });
}

/// [`block_q3_k`] with the scaled half dots `half_dots` of an ISA (see [`scaled_half_dots`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q3_k_with<const NT: usize>(
    tile: &TileQ3K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
    half_dots: impl Fn(&QuantChunks, __m256i, [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let chunks = |j| q3_chunks(tile, j);
    block_offset::<2, _, NT>(tile, (&tile.d, &tile.sc), chunks, (a, acc), half_dots);
}

/// Sub-block `j` of a Q3_K tile as quant chunks (0..=7): the plane's two bits with the third
/// OR-ed in.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q3_chunks(tile: &TileQ3K, j: usize) -> QuantChunks {
    let q = plane_chunks(&tile.qs.as_chunks::<64>().0[j]);
    let qh = &tile.qh.as_chunks::<8>().0[j];
    core::array::from_fn(|c| {
        (
            _mm256_or_si256(q[c].0, word_bits(qh[c], 4)),
            _mm256_or_si256(q[c].1, word_bits(qh[4 + c], 4)),
        )
    })
}

/// One Q2_K tile times `NT` tokens' super-blocks: per sub-block, the dots scaled by the
/// groups' 4-bit scales (`d·d_t·Σ_h sc_h·Σ q·a`) less the minimums' share
/// (`dmin·d_t·Σ_h m_h·Σ a`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q2_k<const NT: usize>(
    tile: &TileQ2K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    block_q2_k_with(tile, a, acc, |q, s, aj| {
        scaled_half_dots::<4, NT>(q, s, aj.map(|a| &a.qs))
    });
}

/// [`block_q2_k`] with the scaled half dots `half_dots` of an ISA (see [`scaled_half_dots`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q2_k_with<const NT: usize>(
    tile: &TileQ2K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
    half_dots: impl Fn(&QuantChunks, __m256i, [&BlockQ8Act; NT]) -> [__m256i; NT],
) {
    let (d, dmin) = (scales(&tile.d), scales(&tile.dmin));
    let qs = tile.qs.as_chunks::<64>().0;
    let pairs = half_sums_of(a);
    for j in 0..SUB_BLOCKS {
        decode_prefetch::<_, NT>(tile, j);
        let aj = a.map(|x| &x[j]);
        let (scale, min) = q2_k_pairs(tile, j);
        scale_into(d, aj, half_dots(&plane_chunks(&qs[j]), scale, aj), acc);
        for ((acc, at), m) in acc
            .iter_mut()
            .zip(aj)
            .zip(scaled_half_sums(min, pairs.map(|p| p[j])))
        {
            let dm = _mm256_mul_ps(dmin, _mm256_set1_ps(at.d));
            *acc = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(m), *acc);
        }
    }
}

/// The scale and the minimum pairs of sub-block `j` of a Q2_K tile: lane `r` holds row `r`'s
/// (low, high) as i16, as [`scaled_half_dots`] and [`scaled_half_sums`] take them.
#[target_feature(enable = "avx2")]
#[inline]
fn q2_k_pairs(tile: &TileQ2K, j: usize) -> (__m256i, __m256i) {
    // SAFETY: a 16-byte array; loadu has no alignment requirement.
    let s = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(tile.sc.as_chunks::<16>().0[j].as_ptr().cast()) });
    (
        _mm256_and_si256(s, _mm256_set1_epi16(15)),
        _mm256_srli_epi16::<4>(s),
    )
}

/// Sub-block `j` of a Q2_K tile's scales, unpacked for [`group_q2_k`].
#[derive(Clone, Copy)]
pub(crate) struct Q2KSub {
    /// The rows' scales per half (see [`half_scales`]).
    s: [__m256i; 2],
    /// The rows' minimums as `dmin·m_hi` and `dmin·(m_lo − m_hi)`: what multiplies a token's
    /// `d_t·sum` and `d_t·sum_lo` (see [`Group::lo`]).
    mins: [__m256; 2],
}

/// Sub-block `j` of a Q2_K tile's scales, unpacked.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(crate) fn q2_k_sub(tile: &TileQ2K, j: usize) -> Q2KSub {
    let (scale, min) = q2_k_pairs(tile, j);
    let dmin = scales(&tile.dmin);
    let (m_lo, m_hi) = (
        _mm256_cvtepi32_ps(_mm256_and_si256(min, _mm256_set1_epi32(0xffff))),
        _mm256_cvtepi32_ps(_mm256_srli_epi32::<16>(min)),
    );
    Q2KSub {
        s: half_scales(scale),
        mins: [
            _mm256_mul_ps(dmin, m_hi),
            _mm256_mul_ps(dmin, _mm256_sub_ps(m_lo, m_hi)),
        ],
    }
}

/// A Q2_K tile, its sub-blocks' scales unpacked by [`q2_k_sub`], times a group per sub-block
/// (scaled sums `d_t·sum_t`): `d·d_t·Σ_h sc_h·Σ q·a − dmin·d_t·Σ_h m_h·Σ a`, the minimums' share
/// two FMAs per token from the group's scaled sums. The 2-bit planes are unpacked again for
/// each group (ALU operations only): unpacked once per chunk, four times the plane's bytes,
/// they made as many instructions and no faster code.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn group_q2_k(
    tile: &TileQ2K,
    q: &[Q2KSub; SUB_BLOCKS],
    g: &[Group; SUB_BLOCKS],
    acc: &mut [__m256; GROUP],
) {
    let d = scales(&tile.d);
    for ((plane, q), g) in tile.qs.as_chunks::<64>().0.iter().zip(q).zip(g) {
        let dots = dots_by_half::<4, GROUP>(&plane_chunks(plane), q.s, g.qs.each_ref());
        let [m_hi, m_diff] = q.mins;
        g.each_token(dots, acc, |t, dot, acc| {
            // The minimums after the dot: first, they were computed ahead of the dots and kept
            // live through them, which spilled the activations' broadcasts.
            let scaled = _mm256_fmadd_ps(d, _mm256_mul_ps(t.d, _mm256_cvtepi32_ps(dot)), *acc);
            *acc = _mm256_fnmadd_ps(m_diff, t.lo, _mm256_fnmadd_ps(m_hi, t.ds, scaled));
        });
    }
}
