//! AVX2 tile kernels of the 5-bit and K-quant types. Their tiles keep the q4 tile's order of
//! the low four bits (see `layout::kquant`), so each sub-block of 32 values is a q4 tile with
//! extra bits OR-ed into its nibble registers, and K-quant scales applied per sub-block.

use core::arch::x86_64::*;

use super::matmul::{group4, load32, nibble_dots, nibbles, scale_into, scales};
use crate::layout::{SUB_BLOCKS, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K};
use crate::view::BlockQ8Act;

/// Byte `p` is `0x10` where bit `p` of `word` is set: a fifth-bit word (see `layout::kquant`)
/// lined up with a 32-byte chunk register.
#[target_feature(enable = "avx2")]
#[inline]
fn fifth_bits(word: u32) -> __m256i {
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(word as i32), spread);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Per token, eight i32 lanes: row `r`'s 5-bit quants (0..=31) dotted with the block.
///
/// Range: a `maddubs` lane is <= 2·31·127 = 7874, low plus high <= 15748 in i16; widened per chunk.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn q5_dots<const NT: usize>(qs: &[u8], qh: &[u32], a: [&BlockQ8Act; NT]) -> [__m256i; NT] {
    let mut acc = [_mm256_setzero_si256(); NT];
    for (c, chunk) in qs.as_chunks::<32>().0.iter().take(4).enumerate() {
        let (lo, hi) = nibbles(chunk);
        let lo = _mm256_or_si256(lo, fifth_bits(qh[c]));
        let hi = _mm256_or_si256(hi, fifth_bits(qh[4 + c]));
        for (s, at) in acc.iter_mut().zip(a) {
            let p = _mm256_add_epi16(
                _mm256_maddubs_epi16(lo, group4(&at.qs, c)),
                _mm256_maddubs_epi16(hi, group4(&at.qs, 4 + c)),
            );
            *s = _mm256_add_epi32(*s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
        }
    }
    acc
}

/// One Q5_0 tile (`d·(q − 16)`) times `NT` tokens: the −16 folds in as `−16·sum(a)`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_0<const NT: usize>(tile: &TileQ5_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    let mut dots = q5_dots(&tile.qs, &tile.qh, a);
    for (s, at) in dots.iter_mut().zip(a) {
        *s = _mm256_sub_epi32(*s, _mm256_set1_epi32(16 * at.sum));
    }
    scale_into(scales(&tile.d), a, dots, acc);
}

/// One Q5_1 tile (`d·q + m`) times `NT` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_1<const NT: usize>(tile: &TileQ5_1, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
    scale_into(scales(&tile.d), a, q5_dots(&tile.qs, &tile.qh, a), acc);
    let m = scales(&tile.m);
    for (acc, at) in acc.iter_mut().zip(a) {
        *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(at.d * at.sum as f32), *acc);
    }
}

/// Eight bytes as f32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn u8x8(v: &[u8; 8]) -> __m256 {
    // SAFETY: `v` is 8 readable bytes; loadl reads exactly 8, unaligned.
    let v = unsafe { _mm_loadl_epi64(v.as_ptr().cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
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
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, dots(qs, aj), acc);
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
    block_q4_k_with(tile, a, acc, |qs, aj| nibble_dots(qs, aj));
}

/// One Q5_K tile times `NT` tokens' super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q5_k<const NT: usize>(
    tile: &TileQ5K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    let ds = (scales(&tile.d), scales(&tile.dmin));
    let (sc, m) = (tile.sc.as_chunks::<8>().0, tile.m.as_chunks::<8>().0);
    let qh = tile.qh.as_chunks::<8>().0;
    for (j, qs) in tile.qs.as_chunks::<128>().0.iter().enumerate() {
        let aj = a.map(|x| &x[j]);
        scale_k4_sub(ds, (&sc[j], &m[j]), aj, q5_dots(qs, &qh[j], aj), acc);
    }
}

/// Sum of a block's activation quants 0..16: `psadbw` of the quants biased to unsigned.
#[target_feature(enable = "avx2")]
#[inline]
fn low_half_sum(a: &BlockQ8Act) -> i32 {
    // SAFETY: `qs` is 32 readable bytes; loadu has no alignment requirement.
    let q = unsafe { _mm_loadu_si128(a.qs.as_ptr().cast()) };
    let sad = _mm_sad_epu8(_mm_xor_si128(q, _mm_set1_epi8(i8::MIN)), _mm_setzero_si128());
    _mm_cvtsi128_si32(sad) + _mm_extract_epi16::<4>(sad) - 16 * 128
}

/// One Q6_K tile times `NT` tokens' super-blocks. Per sub-block the 6-bit quants are the
/// nibbles with two high bits OR-ed in; `madd` with each row's two scales (as i16 pairs) both
/// widens and scales, and the −32 folds in as `−32·(sc_lo·sum_lo + sc_hi·sum_hi)`.
///
/// Range: a `maddubs` lane is <= 2·63·127 = 16002; times a scale (|sc| <= 128) and summed over
/// four chunks, each i32 lane stays below 2^24.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) fn block_q6_k<const NT: usize>(
    tile: &TileQ6K,
    a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
    acc: &mut [__m256; NT],
) {
    let d = scales(&tile.d);
    let mask = _mm256_set1_epi8(0x30);
    let (ql, qh) = (tile.ql.as_chunks::<128>().0, tile.qh.as_chunks::<64>().0);
    let sc_all = tile.sc.as_chunks::<16>().0;
    for j in 0..SUB_BLOCKS {
        let aj = a.map(|x| &x[j]);
        // SAFETY: a 16-byte array; loadu has no alignment requirement.
        let sc = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(sc_all[j].as_ptr().cast()) });
        // Lane r holds (sc_lo, sc_hi) of row r; duplicate each into both i16 halves.
        let sc_lo = _mm256_shufflehi_epi16::<0xA0>(_mm256_shufflelo_epi16::<0xA0>(sc));
        let sc_hi = _mm256_shufflehi_epi16::<0xF5>(_mm256_shufflelo_epi16::<0xF5>(sc));
        let high = qh[j].as_chunks::<32>().0;
        let high = [load32(&high[0]), load32(&high[1])];
        let mut dots = [_mm256_setzero_si256(); NT];
        for (c, chunk) in ql[j].as_chunks::<32>().0.iter().enumerate() {
            let (lo, hi) = nibbles(chunk);
            let h = high[c / 2];
            let (hl, hh) = match c % 2 {
                0 => (_mm256_slli_epi16::<4>(h), _mm256_slli_epi16::<2>(h)),
                _ => (h, _mm256_srli_epi16::<2>(h)),
            };
            let lo = _mm256_or_si256(lo, _mm256_and_si256(hl, mask));
            let hi = _mm256_or_si256(hi, _mm256_and_si256(hh, mask));
            for (s, at) in dots.iter_mut().zip(aj) {
                let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, group4(&at.qs, c)), sc_lo);
                let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, group4(&at.qs, 4 + c)), sc_hi);
                *s = _mm256_add_epi32(*s, _mm256_add_epi32(pl, ph));
            }
        }
        for (s, at) in dots.iter_mut().zip(aj) {
            let lo = low_half_sum(at);
            let sums = _mm256_set1_epi32(((at.sum - lo) << 16) | (lo & 0xffff));
            *s = _mm256_sub_epi32(*s, _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc, sums)));
        }
        scale_into(d, aj, dots, acc);
    }
}
