//! The prompt's q8_0 product on 512-bit registers: two tile rows side by side, so one register
//! holds the same four columns of 16 weight rows (the low half from the first tile row's tile,
//! the high half from the second's; the layout of [`crate::layout`] is unchanged), and one
//! `vpdpbusd` with a broadcast of four activations makes 64 multiply-adds of 16 rows, where the
//! 256-bit kernel needs two. Eight tokens per group: per block and chunk, one weight register
//! feeds eight `vpdpbusd`; per block and token the float scaling (convert, scale, add) covers
//! 16 rows at once. The integer dots and the float steps are the 256-bit kernel's, in the same
//! order, so the sums are bit for bit those of the AVX512-VNNI path.

use core::arch::x86_64::*;

use zerocopy::IntoBytes;

use crate::dispatch::MatmulQuantFn;
use crate::layout::{TILE_ROWS, TileQ8_0};
use crate::simd::tiles::{CHUNK_BYTES, store_sums};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// Tokens per group.
const GROUP: usize = 8;

/// `out[t][r] = Σ_k W[r][k] · x[t][k]` (see [`crate::scalar::matmul_q8_0`]): whole groups of
/// tokens here, the rest (fewer than a group: decode, a prompt's last tokens) through `rest`,
/// the 256-bit kernel. Tokens go in chunks of about [`CHUNK_BYTES`] of activations, as in
/// [`crate::simd::tiles`]; for each pair of tile rows, every group of the chunk.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
pub(super) fn matmul(
    w: Tiled<'_, TileQ8_0>,
    x: &[BlockQ8Act],
    mut out: OutCols<'_>,
    rest: MatmulQuantFn<TileQ8_0>,
) {
    let bpr = w.blocks_per_row();
    assert_eq!(out.width(), w.rows(), "output width is not the weight rows");
    assert_eq!(x.len(), out.n() * bpr, "activations are not n × blocks_per_row");
    let whole = out.n() / GROUP * GROUP;
    let chunk = (CHUNK_BYTES / (bpr * size_of::<BlockQ8Act>()).max(1))
        .max(1)
        .next_multiple_of(GROUP);
    let last = w.tile_rows().saturating_sub(1);
    for t0 in (0..whole).step_by(chunk) {
        let t1 = (t0 + chunk).min(whole);
        for tr in (0..w.tile_rows()).step_by(2) {
            // An odd last tile row goes with itself; the copy's sums are not stored.
            let (lo, hi) = (w.tile_row(tr), w.tile_row((tr + 1).min(last)));
            let r0 = tr * TILE_ROWS;
            for t in (t0..t1).step_by(GROUP) {
                let acc = pair_row::<GROUP>(lo, hi, &x[t * bpr..][..GROUP * bpr]);
                for (i, acc) in acc.into_iter().enumerate() {
                    store16(&mut out.row(t + i)[r0..], acc);
                }
            }
        }
    }
    if whole < out.n() {
        rest(w, &x[whole * bpr..], out.tokens_from(whole));
    }
}

/// Two tile rows (`lo`, `hi`) times `G` tokens' activation rows (`a`, one after the other):
/// per token, the 16 row sums.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
fn pair_row<const G: usize>(lo: &[TileQ8_0], hi: &[TileQ8_0], a: &[BlockQ8Act]) -> [__m512; G] {
    let bpr = lo.len();
    let mut acc = [_mm512_setzero_ps(); G];
    for (b, (lo, hi)) in lo.iter().zip(hi).enumerate() {
        let mut blocks = [&a[b]; G];
        for (i, block) in blocks.iter_mut().enumerate().skip(1) {
            *block = &a[i * bpr + b];
        }
        pair_block(lo, hi, blocks, &mut acc);
    }
    acc
}

/// Two tiles (the same block column of two tile rows) times `G` tokens' blocks, added into
/// their accumulators. The signed weights are biased to unsigned (`w + 128`, an xor of the
/// sign bit) for `vpdpbusd`; the bias comes back out through the dots' starting value
/// `-128·sum(a)`. Range: |Σ| <= 32·255·127 fits an i32.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
#[inline]
fn pair_block<const G: usize>(lo: &TileQ8_0, hi: &TileQ8_0, a: [&BlockQ8Act; G], acc: &mut [__m512; G]) {
    let sign = _mm512_set1_epi8(i8::MIN);
    let mut dots = [_mm512_setzero_si512(); G];
    for (s, at) in dots.iter_mut().zip(a) {
        *s = _mm512_set1_epi32(-128 * at.sum);
    }
    let lo_chunks = lo.qs.as_bytes().as_chunks::<32>().0;
    let hi_chunks = hi.qs.as_bytes().as_chunks::<32>().0;
    for (c, (l, h)) in lo_chunks.iter().zip(hi_chunks).enumerate() {
        // SAFETY: `l` and `h` are 32 readable bytes each; loadu has no alignment requirement.
        let w = unsafe {
            let l = _mm256_loadu_si256(l.as_ptr().cast());
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(l), _mm256_loadu_si256(h.as_ptr().cast()))
        };
        let w = _mm512_xor_si512(w, sign);
        for (s, at) in dots.iter_mut().zip(a) {
            let group = i32::from_le_bytes(at.qs.as_bytes().as_chunks::<4>().0[c]);
            *s = _mm512_dpbusd_epi32(*s, w, _mm512_set1_epi32(group));
        }
    }
    // SAFETY: each `d` is 8 f16 (16 readable bytes).
    let dw = unsafe {
        let l = _mm_loadu_si128(lo.d.as_ptr().cast());
        _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(l),
            _mm_loadu_si128(hi.d.as_ptr().cast()),
        ))
    };
    for ((acc, at), s) in acc.iter_mut().zip(a).zip(dots) {
        *acc = _mm512_fmadd_ps(
            _mm512_mul_ps(dw, _mm512_set1_ps(at.d)),
            _mm512_cvtepi32_ps(s),
            *acc,
        );
    }
}

/// Writes 16 row sums at the start of `row`: the first tile row's eight, then the second's
/// where `row` reaches them (not for a last tile row paired with itself).
#[target_feature(enable = "avx512f")]
#[inline]
fn store16(row: &mut [f32], acc: __m512) {
    let mut sums = [0.0; 2 * TILE_ROWS];
    // SAFETY: `sums` holds 16 f32.
    unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), acc) };
    let (first, second) = sums.split_at(TILE_ROWS);
    store_sums::<TILE_ROWS>(row, first.try_into().expect("eight sums"), false);
    if let Some(row) = row.get_mut(TILE_ROWS..).filter(|r| !r.is_empty()) {
        store_sums::<TILE_ROWS>(row, second.try_into().expect("eight sums"), false);
    }
}
