//! The VNNI paths: AVX2 plus `vpdpbusd`, which multiplies four unsigned bytes by four signed
//! bytes and adds the sum into an i32 lane in one instruction, where AVX2 needs `vpmaddubsw`,
//! a widening `vpmaddwd` (or an i16 add) and an add. Two encodings of the same instruction on
//! 256-bit registers: AVX-VNNI (VEX: Alder Lake and later client cores, Zen 5) and
//! AVX512-VNNI with AVX512VL (EVEX: Ice Lake and later Xeons, Zen 4). The tile layout is the
//! AVX2 one (lane = row, four quants per lane), so a chunk of a tile and one broadcast group
//! of four activations make one `vpdpbusd` per token.
//!
//! Everything but the quantized matmuls is the AVX2 path's.

/// Defines one VNNI path: module `$module` with table `$table` for `$isa`, compiled with
/// `$features`, using `$dpbusd(acc, u8 × i8)`.
macro_rules! vnni_path {
    ($(#[$doc:meta])* $module:ident, $table:ident, $isa:expr, $features:literal, $dpbusd:ident) => {
        $(#[$doc])*
        pub(crate) mod $module {
            use core::arch::x86_64::*;

            use zerocopy::IntoBytes;

            use crate::dispatch::Kernels;
            use crate::layout::{SUB_BLOCKS, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5K, TileQ6K, TileQ8_0};
            use crate::simd::entries;
            use crate::simd::tiles::{TileKernel, matmul, super_blocks};
            use crate::x86_64::avx2::kquant::{
                QuantChunks, block_q2_k_with, block_q3_k_with, block_q4_k_with, block_q5_k_with, block_q6_k_with,
                group_offset, group_q4_k, q3_chunks, q4_k_sub, q6_chunks, word_bits,
            };
            use crate::view::{BlockQ8Act, OutCols, Tiled};
            use crate::x86_64::avx2::groups::{self, Group, GroupKernel};
            use crate::x86_64::avx2::matmul::{
                GROUP, finish, group4, load32, nibble_quants, nibbles, prefetch_ahead, scale_group, scale_group_min, scale_into,
                scale_q4_0, scale_q4_1, scales,
            };
            use crate::x86_64::avx2::{AVX2_KERNELS, tile_kernel};

            /// This path's table.
            pub(crate) static $table: Kernels = Kernels {
                isa: $isa,
                matmul_q8_0: matmul_q8_0_vnni,
                matmul_q4_0: matmul_q4_0_vnni,
                matmul_q4_1: matmul_q4_1_vnni,
                matmul_q4_k: matmul_q4_k_vnni,
                matmul_q5_k: matmul_q5_k_vnni,
                matmul_q6_k: matmul_q6_k_vnni,
                matmul_q3_k: matmul_q3_k_vnni,
                matmul_q2_k: matmul_q2_k_vnni,
                ..AVX2_KERNELS
            };

            /// `acc + Σ u·a` over each lane's four byte pairs (`u` unsigned, `a` signed).
            #[target_feature(enable = $features)]
            #[inline]
            fn dot_u8_i8(acc: __m256i, u: __m256i, a: __m256i) -> __m256i {
                $dpbusd(acc, u, a)
            }

            /// Per token, eight i32 lanes: row `r`'s nibbles `q` (0..=15, from `nibble_quants`)
            /// dotted with the block. The low and high nibbles add into accumulators of their
            /// own: one chain of eight `vpdpbusd` per token was bound by its latency, and made
            /// prompts (four tokens at a time) 14 % slower than AVX2's `vpmaddubsw` with i16
            /// sums on AVX-VNNI (docs/BENCHMARKS.md).
            #[target_feature(enable = $features)]
            #[inline]
            fn nibble_dots_of<const NT: usize>(q: &[__m256i; 8], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
                let mut lo = [_mm256_setzero_si256(); NT];
                let mut hi = [_mm256_setzero_si256(); NT];
                for c in 0..4 {
                    for ((l, h), at) in lo.iter_mut().zip(hi.iter_mut()).zip(a) {
                        *l = dot_u8_i8(*l, q[2 * c], group4(at, c));
                        *h = dot_u8_i8(*h, q[2 * c + 1], group4(at, 4 + c));
                    }
                }
                core::array::from_fn(|t| _mm256_add_epi32(lo[t], hi[t]))
            }

            /// Per token, eight i32 lanes: row `r`'s nibbles (0..=15) dotted with the block.
            #[target_feature(enable = $features)]
            #[inline]
            fn nibble_dots<const NT: usize>(qs: &[u8; 128], a: [&[i8; 32]; NT]) -> [__m256i; NT] {
                nibble_dots_of(&nibble_quants(qs), a)
            }

            /// One Q4_0 tile times `NT` tokens.
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q4_0<const NT: usize>(tile: &TileQ4_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
                scale_q4_0(tile, a, nibble_dots(&tile.qs, a.map(|a| &a.qs)), acc);
            }

            /// One Q4_1 tile times `NT` tokens.
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q4_1<const NT: usize>(tile: &TileQ4_1, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
                scale_q4_1(tile, a, nibble_dots(&tile.qs, a.map(|a| &a.qs)), acc);
            }

            /// One Q4_K tile times `NT` tokens' super-blocks (the AVX2 scaling, VNNI dots).
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q4_k<const NT: usize>(
                tile: &TileQ4K,
                a: [&[BlockQ8Act; SUB_BLOCKS]; NT],
                acc: &mut [__m256; NT],
            ) {
                block_q4_k_with(tile, a, acc, |qs, aj| nibble_dots(qs, aj.map(|a| &a.qs)));
            }

            /// Per token, eight i32 lanes: row `r`'s 5-bit quants (0..=31) dotted with the block.
            #[target_feature(enable = $features)]
            #[inline]
            fn q5_dots<const NT: usize>(qs: &[u8; 128], qh: &[u32; 8], a: [&BlockQ8Act; NT]) -> [__m256i; NT] {
                let mut acc = [_mm256_setzero_si256(); NT];
                for (c, chunk) in qs.as_chunks::<32>().0.iter().enumerate() {
                    let (lo, hi) = nibbles(chunk);
                    let lo = _mm256_or_si256(lo, word_bits(qh[c], 0x10));
                    let hi = _mm256_or_si256(hi, word_bits(qh[4 + c], 0x10));
                    for (s, at) in acc.iter_mut().zip(a) {
                        *s = dot_u8_i8(*s, lo, group4(&at.qs, c));
                        *s = dot_u8_i8(*s, hi, group4(&at.qs, 4 + c));
                    }
                }
                acc
            }

            /// Per token, eight i32 lanes: `Σ_h s_h · Σ q·a` over the halves of a sub-block (the
            /// AVX2 `scaled_half_dots`): each half's dot in its own accumulator, then times the
            /// half's scale (the i16 pairs of `s` sign-extended to i32). Range: a half's dot is
            /// <= 16·63·127 (6-bit quants), times |s| <= 128: below 2^24.
            #[target_feature(enable = $features)]
            #[inline]
            fn scaled_half_dots<const NT: usize>(
                q: &QuantChunks,
                s: __m256i,
                a: [&[i8; 32]; NT],
            ) -> [__m256i; NT] {
                let s_lo = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(s));
                let s_hi = _mm256_srai_epi32::<16>(s);
                let mut lo = [_mm256_setzero_si256(); NT];
                let mut hi = [_mm256_setzero_si256(); NT];
                for (c, &(ql, qh)) in q.iter().enumerate() {
                    for ((l, h), at) in lo.iter_mut().zip(hi.iter_mut()).zip(a) {
                        *l = dot_u8_i8(*l, ql, group4(at, c));
                        *h = dot_u8_i8(*h, qh, group4(at, 4 + c));
                    }
                }
                core::array::from_fn(|t| {
                    _mm256_add_epi32(_mm256_mullo_epi32(lo[t], s_lo), _mm256_mullo_epi32(hi[t], s_hi))
                })
            }

            /// One Q5_K tile times `NT` tokens' super-blocks (the AVX2 scaling, VNNI dots).
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q5_k<const NT: usize>(tile: &TileQ5K, a: [&[BlockQ8Act; SUB_BLOCKS]; NT], acc: &mut [__m256; NT]) {
                block_q5_k_with(tile, a, acc, |qs, qh, aj| q5_dots(qs, qh, aj));
            }

            /// One Q6_K tile times `NT` tokens' super-blocks (the AVX2 scaling, VNNI dots).
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q6_k<const NT: usize>(tile: &TileQ6K, a: [&[BlockQ8Act; SUB_BLOCKS]; NT], acc: &mut [__m256; NT]) {
                block_q6_k_with(tile, a, acc, |q, s, aj| scaled_half_dots(q, s, aj.map(|a| &a.qs)));
            }

            /// One Q3_K tile times `NT` tokens' super-blocks (the AVX2 scaling, VNNI dots).
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q3_k<const NT: usize>(tile: &TileQ3K, a: [&[BlockQ8Act; SUB_BLOCKS]; NT], acc: &mut [__m256; NT]) {
                block_q3_k_with(tile, a, acc, |q, s, aj| scaled_half_dots(q, s, aj.map(|a| &a.qs)));
            }

            /// One Q2_K tile times `NT` tokens' super-blocks (the AVX2 scaling, VNNI dots).
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q2_k<const NT: usize>(tile: &TileQ2K, a: [&[BlockQ8Act; SUB_BLOCKS]; NT], acc: &mut [__m256; NT]) {
                block_q2_k_with(tile, a, acc, |q, s, aj| scaled_half_dots(q, s, aj.map(|a| &a.qs)));
            }

            /// One Q8_0 tile times `NT` tokens. The signed weights are biased to unsigned
            /// (`w + 128`, an xor of the sign bit, once per chunk for every token); the bias
            /// comes back out as `128·sum(a)`. Range: |Σ| <= 32·255·127 fits an i32. Not
            /// through [`groups`]: the 512-bit kernel's sums are this one's bit for bit.
            #[target_feature(enable = $features)]
            #[inline]
            fn block_q8_0<const NT: usize>(tile: &TileQ8_0, a: [&BlockQ8Act; NT], acc: &mut [__m256; NT]) {
                let sign = _mm256_set1_epi8(i8::MIN);
                let mut dots = [_mm256_setzero_si256(); NT];
                for (c, chunk) in tile.qs.as_bytes().as_chunks::<32>().0.iter().enumerate() {
                    let w = _mm256_xor_si256(load32(chunk), sign);
                    for (s, at) in dots.iter_mut().zip(a) {
                        *s = dot_u8_i8(*s, w, group4(&at.qs, c));
                    }
                }
                for (s, at) in dots.iter_mut().zip(a) {
                    *s = _mm256_sub_epi32(*s, _mm256_set1_epi32(128 * at.sum));
                }
                scale_into(scales(&tile.d), a, dots, acc);
            }

            /// One Q4_0 tile, its nibbles `q` unpacked, times a group (scaled sums `−8·d_t·sum_t`).
            #[target_feature(enable = $features)]
            #[inline]
            fn group_q4_0(tile: &TileQ4_0, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
                scale_group(scales(&tile.d), g, nibble_dots_of(q, g.qs.each_ref()), acc);
            }

            /// One Q4_1 tile, its nibbles `q` unpacked, times a group (scaled sums `d_t·sum_t`).
            #[target_feature(enable = $features)]
            #[inline]
            fn group_q4_1(tile: &TileQ4_1, q: &[__m256i; 8], g: &Group, acc: &mut [__m256; GROUP]) {
                let dots = nibble_dots_of(q, g.qs.each_ref());
                scale_group_min(scales(&tile.d), scales(&tile.m), g, dots, acc);
            }

            entries! { $features;
                fn matmul_q8_0_vnni(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    matmul(w, x, out, tile_kernel!(block_q8_0))
                }
                fn matmul_q4_0_vnni(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    let group = GroupKernel {
                        k: -8.0,
                        unpack: |t: &TileQ4_0, _| nibble_quants(&t.qs),
                        tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q4_0(t, q, g, acc),
                    };
                    // SAFETY: this entry runs with AVX2 enabled.
                    unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_0), |x| x)) }
                }
                fn matmul_q4_1_vnni(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    let group = GroupKernel {
                        k: 1.0,
                        unpack: |t: &TileQ4_1, _| nibble_quants(&t.qs),
                        tile: |t: &_, [q]: &[_; 1], [g]: &[Group; 1], acc: &mut _| group_q4_1(t, q, g, acc),
                    };
                    // SAFETY: this entry runs with AVX2 enabled.
                    unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_1), |x| x)) }
                }
                fn matmul_q4_k_vnni(w: Tiled<'_, TileQ4K>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    let group = GroupKernel {
                        k: -1.0,
                        unpack: |t: &TileQ4K, j| q4_k_sub(t, j),
                        tile: |_: &_, q: &_, g: &_, acc: &mut _| group_q4_k(q, g, acc, |q, a| nibble_dots_of(q, a)),
                    };
                    // SAFETY: this entry runs with AVX2 enabled.
                    unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q4_k), super_blocks)) }
                }
                fn matmul_q5_k_vnni(w: Tiled<'_, TileQ5K>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    matmul(w, super_blocks(x), out, tile_kernel!(block_q5_k))
                }
                fn matmul_q6_k_vnni(w: Tiled<'_, TileQ6K>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    let group = GroupKernel {
                        k: 0.0,
                        unpack: |t: &TileQ6K, j| q6_chunks(t, j),
                        tile: |t: &TileQ6K, q: &_, g: &_, acc: &mut _| {
                            group_offset::<5>((&t.d, &t.sc), q, g, acc, |q, s, a| scaled_half_dots(q, s, a))
                        },
                    };
                    // SAFETY: this entry runs with AVX2 enabled.
                    unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q6_k), super_blocks)) }
                }
                fn matmul_q3_k_vnni(w: Tiled<'_, TileQ3K>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    let group = GroupKernel {
                        k: 0.0,
                        unpack: |t: &TileQ3K, j| q3_chunks(t, j),
                        tile: |t: &TileQ3K, q: &_, g: &_, acc: &mut _| {
                            group_offset::<2>((&t.d, &t.sc), q, g, acc, |q, s, a| scaled_half_dots(q, s, a))
                        },
                    };
                    // SAFETY: this entry runs with AVX2 enabled.
                    unsafe { groups::matmul(w, x, out, group, (tile_kernel!(block_q3_k), super_blocks)) }
                }
                // Q2_K prompts (whole groups of four tokens) take AVX2's group kernel: this
                // tile kernel ran them 5-14 % slower. Single tokens keep it (17-21 % faster).
                fn matmul_q2_k_vnni(w: Tiled<'_, TileQ2K>, x: &[BlockQ8Act], out: OutCols<'_>) {
                    if out.n() >= GROUP {
                        return (AVX2_KERNELS.matmul_q2_k)(w, x, out);
                    }
                    matmul(w, super_blocks(x), out, tile_kernel!(block_q2_k))
                }
            }
        }
    };
}

vnni_path! {
    /// AVX-VNNI (VEX-encoded `vpdpbusd`).
    avx_vnni, AVX_VNNI, crate::dispatch::Isa::AvxVnni, "avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32
}

vnni_path! {
    /// AVX512-VNNI on 256-bit registers (EVEX-encoded `vpdpbusd`, needs AVX512VL).
    avx512_vnni, AVX512_VNNI, crate::dispatch::Isa::Avx512Vnni,
    "avx2,fma,f16c,avx512f,avx512vl,avx512vnni", _mm256_dpbusd_epi32
}
