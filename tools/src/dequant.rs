//! Decoding source tensor data (GGML block types and plain floats) into f32 values, following
//! the reference `dequantize_row_*` functions of ggml.

use anyhow::{Result, bail, ensure};
use half::{bf16, f16};

use crate::gguf::GgmlType;

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Whether [`dequantize`] can decode this type.
pub fn is_supported(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q2K | Q3K | Q4K | Q5K | Q6K
    )
}

/// Decodes `bytes` (whole blocks of `ty`, as GGUF and safetensors store them) into `out`,
/// which must hold exactly the number of values the bytes encode.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let Some((per_block, block_bytes)) = ty.block().filter(|_| is_supported(ty)) else {
        bail!("cannot decode {ty} data")
    };
    let (per_block, block_bytes) = (per_block as usize, block_bytes as usize);
    ensure!(
        bytes.len().is_multiple_of(block_bytes) && bytes.len() / block_bytes * per_block == out.len(),
        "{} bytes of {ty} do not hold {} values",
        bytes.len(),
        out.len()
    );
    let decode: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => |b, o| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, o| o[0] = half(b, 0),
        GgmlType::BF16 => |b, o| o[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q2K => q2_k,
        GgmlType::Q3K => q3_k,
        GgmlType::Q4K => q4_k,
        GgmlType::Q5K => q5_k,
        GgmlType::Q6K => q6_k,
        _ => unreachable!("is_supported"),
    };
    for (block, o) in bytes
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(per_block))
    {
        decode(block, o);
    }
    Ok(())
}

fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    for (o, &q) in o.iter_mut().zip(&b[2..34]) {
        *o = d * f32::from(q as i8);
    }
}

/// Low nibbles are values `0..16`, high nibbles values `16..32`, each `d * q + m`.
fn nibbles(qs: &[u8], d: f32, m: f32, o: &mut [f32]) {
    for (j, &q) in qs.iter().enumerate() {
        o[j] = d * f32::from(q & 0x0f) + m;
        o[j + 16] = d * f32::from(q >> 4) + m;
    }
}

fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    nibbles(&b[2..18], d, -8.0 * d, o);
}

fn q4_1(b: &[u8], o: &mut [f32]) {
    nibbles(&b[4..20], half(b, 0), half(b, 2), o);
}

/// Q5 blocks: nibbles plus a fifth bit per value from the 32-bit `qh`; value `d * q + m`.
fn five_bit(qh: &[u8], qs: &[u8], d: f32, m: f32, o: &mut [f32]) {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    for (j, &q) in qs.iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        o[j] = d * ((u32::from(q & 0x0f) | h0) as f32) + m;
        o[j + 16] = d * ((u32::from(q >> 4) | h1) as f32) + m;
    }
}

fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = half(b, 0);
    five_bit(&b[2..6], &b[6..22], d, -16.0 * d, o);
}

fn q5_1(b: &[u8], o: &mut [f32]) {
    five_bit(&b[4..8], &b[8..24], half(b, 0), half(b, 2), o);
}

fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (half(b, 80), half(b, 82));
    let mut y = o.chunks_exact_mut(16);
    let mut is = 0;
    for q in qs.chunks_exact(32) {
        for shift in (0..8).step_by(2) {
            for half_q in q.chunks_exact(16) {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * f32::from(sc & 0x0f), dmin * f32::from(sc >> 4));
                for (v, &q) in y.next().expect("16 groups").iter_mut().zip(half_q) {
                    *v = dl * f32::from((q >> shift) & 3) - ml;
                }
            }
        }
    }
}

fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, packed) = (&b[..32], &b[32..96], &b[96..108]);
    let d_all = half(b, 108);
    // The 16 six-bit scales: low four bits from bytes 0..8, high two bits from bytes 8..12.
    let scales: [i32; 16] = core::array::from_fn(|i| {
        let low = if i < 8 {
            packed[i] & 0x0f
        } else {
            packed[i - 8] >> 4
        };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        i32::from(low | (high << 4)) - 32
    });
    let mut y = o.chunks_exact_mut(16);
    let (mut is, mut m) = (0, 1u8);
    for q in qs.chunks_exact(32) {
        for shift in (0..8).step_by(2) {
            for (h, half_q) in q.chunks_exact(16).enumerate() {
                let dl = d_all * scales[is] as f32;
                is += 1;
                let hm = &hmask[h * 16..][..16];
                for ((v, &q), &hb) in y.next().expect("16 groups").iter_mut().zip(half_q).zip(hm) {
                    let high = if hb & m != 0 { 0 } else { 4 };
                    *v = dl * (i32::from((q >> shift) & 3) - high) as f32;
                }
            }
            m <<= 1;
        }
    }
}

/// The `j`-th six-bit (scale, min) pair of a Q4_K/Q5_K super-block.
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (f32::from(d), f32::from(m))
}

/// Q4_K and Q5_K: eight sub-blocks of 32 with six-bit scales and mins; `qh` adds a fifth bit.
fn k_quant_4_5(b: &[u8], qh: Option<&[u8]>, qs: &[u8], o: &mut [f32]) {
    let (d, dmin, scales) = (half(b, 0), half(b, 2), &b[4..16]);
    for (j, y) in o.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(j, scales);
        let (dl, ml) = (d * sc, dmin * m);
        let (q, shift) = (&qs[(j / 2) * 32..][..32], 4 * (j % 2));
        for (l, v) in y.iter_mut().enumerate() {
            let high = qh.map_or(0, |qh| ((qh[l] >> j) & 1) << 4);
            *v = dl * f32::from(((q[l] >> shift) & 0x0f) | high) - ml;
        }
    }
}

fn q4_k(b: &[u8], o: &mut [f32]) {
    k_quant_4_5(b, None, &b[16..144], o);
}

fn q5_k(b: &[u8], o: &mut [f32]) {
    k_quant_4_5(b, Some(&b[16..48]), &b[48..176], o);
}

fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, sc) = (&b[..128], &b[128..192], &b[192..208]);
    let d = half(b, 208);
    for (n, y) in o.chunks_exact_mut(128).enumerate() {
        let (ql, qh, sc) = (&ql[n * 64..], &qh[n * 32..], &sc[n * 8..]);
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0f) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, q) in q.into_iter().enumerate() {
                y[l + 32 * k] = d * f32::from(sc[is + 2 * k] as i8) * (i32::from(q) - 32) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_matches_the_reference_formula() {
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        b[2] = 0x1f; // element 0: q = 15, element 16: q = 1
        let mut out = [0.0; 32];
        dequantize(GgmlType::Q4_0, &b, &mut out).unwrap();
        assert_eq!(out[0], 0.5 * 7.0);
        assert_eq!(out[16], 0.5 * -7.0);
        assert_eq!(out[1], 0.5 * -8.0);
    }

    #[test]
    fn wrong_lengths_and_unknown_types_are_errors() {
        let mut out = [0.0; 32];
        assert!(dequantize(GgmlType::Q8_0, &[0; 33], &mut out).is_err());
        assert!(dequantize(GgmlType::Q8_0, &[0; 68], &mut out).is_err());
        let err = dequantize(GgmlType::Other(99), &[0; 34], &mut out).unwrap_err();
        assert!(err.to_string().contains("ggml type 99"), "{err}");
        assert!(dequantize(GgmlType::I32, &[0; 128], &mut out).is_err());
    }
}
