//! GGML blocks rewritten as edgelm blocks without going through floats, where the values allow:
//! Q5_0 as Q8_0 (exact: the same scale, the 5-bit integers fit in 8), and Q4_K as Q4_1 (each
//! 32-value sub-block already is `scale · q + min` with 4-bit `q`; only the sub-block scale and
//! minimum are rounded to f16).

use edgelm::format::DType;
use edgelm_kernels::layout::{BlockQ4_1, BlockQ8_0};
use half::f16;
use zerocopy::IntoBytes;

use crate::dequant::scale_min_k4;
use crate::gguf::GgmlType;

/// The packed type `src` blocks are rewritten into by [`transcode`], if any.
pub fn target(src: GgmlType) -> Option<DType> {
    match src {
        GgmlType::Q5_0 => Some(DType::Q8_0),
        GgmlType::Q4K => Some(DType::Q4_1),
        _ => None,
    }
}

/// `bytes` (whole `src` blocks) as blocks of `dst`, or `None` when this pair has no direct
/// rewrite or the bytes are not whole blocks.
pub fn transcode(src: GgmlType, dst: DType, bytes: &[u8]) -> Option<Vec<u8>> {
    let (_, block_bytes) = src.block()?;
    let block_bytes = block_bytes as usize;
    if target(src) != Some(dst) || !bytes.len().is_multiple_of(block_bytes) {
        return None;
    }
    let blocks = bytes.chunks_exact(block_bytes);
    Some(match src {
        GgmlType::Q5_0 => blocks.map(q5_0_as_q8_0).collect::<Vec<_>>().as_bytes().to_vec(),
        GgmlType::Q4K => blocks
            .flat_map(q4_k_as_q4_1)
            .collect::<Vec<_>>()
            .as_bytes()
            .to_vec(),
        _ => return None,
    })
}

/// Q5_0: `d`, 32 high bits, 16 bytes of low nibbles (element `j` low, `j + 16` high);
/// value `d · (q - 16)`.
fn q5_0_as_q8_0(b: &[u8]) -> BlockQ8_0 {
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let mut qs = [0i8; 32];
    for (j, &byte) in b[6..22].iter().enumerate() {
        let high = |bit: usize| (((qh >> bit) & 1) << 4) as u8;
        qs[j] = ((byte & 0x0f) | high(j)) as i8 - 16;
        qs[j + 16] = ((byte >> 4) | high(j + 16)) as i8 - 16;
    }
    BlockQ8_0 {
        d: u16::from_le_bytes([b[0], b[1]]),
        qs,
    }
}

/// Q4_K: `d`, `dmin`, twelve bytes of 6-bit sub-block scales and minimums, then 128 bytes
/// holding sub-blocks `2i` (low nibbles) and `2i + 1` (high nibbles) of 32 bytes each; value
/// `d · sc · q - dmin · m` (ggml's `dequantize_row_q4_K`).
fn q4_k_as_q4_1(b: &[u8]) -> [BlockQ4_1; 8] {
    let half = |at: usize| f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32();
    let (d, dmin, scales, qs) = (half(0), half(2), &b[4..16], &b[16..144]);
    std::array::from_fn(|j| {
        let (sc, m) = scale_min_k4(j, scales);
        let (q, shift) = (&qs[(j / 2) * 32..][..32], 4 * (j % 2));
        let nibble = |l: usize| (q[l] >> shift) & 0x0f;
        BlockQ4_1 {
            d: f16::from_f32(d * sc).to_bits(),
            m: f16::from_f32(-dmin * m).to_bits(),
            qs: std::array::from_fn(|l| nibble(l) | (nibble(l + 16) << 4)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dequant::dequantize;

    /// Deterministic bytes.
    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (s >> 16) as u8
            })
            .collect()
    }

    fn decoded(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n];
        dequantize(ty, bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn q5_0_becomes_q8_0_exactly() {
        let mut src = noise(22 * 64, 1);
        for b in src.chunks_exact_mut(22) {
            b[..2].copy_from_slice(&f16::from_f32(0.013).to_bits().to_le_bytes());
        }
        let out = transcode(GgmlType::Q5_0, DType::Q8_0, &src).unwrap();
        let n = 32 * 64;
        assert_eq!(decoded(GgmlType::Q8_0, &out, n), decoded(GgmlType::Q5_0, &src, n));
    }

    #[test]
    fn q4_k_becomes_q4_1_up_to_f16_scales() {
        let mut src = noise(144 * 16, 2);
        for b in src.chunks_exact_mut(144) {
            b[..2].copy_from_slice(&f16::from_f32(0.0021).to_bits().to_le_bytes());
            b[2..4].copy_from_slice(&f16::from_f32(0.0017).to_bits().to_le_bytes());
        }
        let out = transcode(GgmlType::Q4K, DType::Q4_1, &src).unwrap();
        let n = 256 * 16;
        let (a, b) = (decoded(GgmlType::Q4_1, &out, n), decoded(GgmlType::Q4K, &src, n));
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(&b) {
            // f16 rounding of scale and minimum: 2^-11 of each, times q ≤ 15.
            assert!((x - y).abs() <= scale * 2e-3, "{x} vs {y}");
        }
        assert!(a != vec![0.0; n]);
    }

    #[test]
    fn other_pairs_and_partial_blocks_are_refused() {
        assert_eq!(transcode(GgmlType::Q5_0, DType::Q4_1, &[0; 22]), None);
        assert_eq!(transcode(GgmlType::Q6K, DType::Q8_0, &[0; 210]), None);
        assert_eq!(transcode(GgmlType::Q5_0, DType::Q8_0, &[0; 21]), None);
    }
}
