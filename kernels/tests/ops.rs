//! Every SIMD element-wise, normalization, rotary, conversion, quantization and attention
//! kernel against its scalar twin, on lengths with vector tails. Each budget says why.

mod common;

use common::{U, assert_bits_eq, assert_within, rng, simd_paths, uniform};
use edgelm_kernels::layout::{BlockQ8_0, QK};
use edgelm_kernels::{BlockQ8Act, SCALAR};
use half::f16;

/// Lengths around the vector widths (4 and 8) and model sizes.
const LENS: [usize; 10] = [1, 3, 4, 7, 8, 9, 31, 64, 100, 576];

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn quantize_q8_act_is_bit_exact() {
    let mut rng = rng(1);
    for blocks in [1, 2, 18] {
        let mut x = uniform(&mut rng, blocks * QK, -3.0, 3.0);
        // Exact ties (block max 127 makes the scale 1): round half away from zero; a zero block.
        x[..8].copy_from_slice(&[127.0, 0.5, -0.5, 1.5, -2.5, 126.5, -126.5, 0.0]);
        if blocks > 1 {
            x[QK..2 * QK].fill(0.0);
        }
        let mut want = vec![BlockQ8Act::default(); blocks];
        (SCALAR.quantize_q8_act)(&x, &mut want);
        assert_eq!(want[0].qs[..7], [127, 1, -1, 2, -3, 127, -127]);
        for k in simd_paths() {
            let mut got = vec![
                BlockQ8Act {
                    d: f32::NAN,
                    sum: 9,
                    qs: [9; QK]
                };
                blocks
            ];
            (k.quantize_q8_act)(&x, &mut got);
            assert_eq!(got, want, "{}", k.isa);
        }
    }
}

#[test]
fn quantize_q8_kv_is_bit_exact() {
    let mut rng = rng(2);
    for blocks in [1, 2, 4] {
        let mut x = uniform(&mut rng, blocks * QK, -8.0, 8.0);
        x[..4].copy_from_slice(&[127.0, 0.5, -2.5, 126.5]);
        // The scale's f16 rounding at the ends of its range: subnormal (1e-6 / 127) and
        // overflowing to infinity (1e7 / 127 > 65504).
        if blocks > 1 {
            x[QK..2 * QK].iter_mut().for_each(|v| *v *= 1e-6);
        }
        if blocks > 2 {
            x[2 * QK] = -1e7;
        }
        let mut want = vec![BlockQ8_0::default(); blocks];
        (SCALAR.quantize_q8_kv)(&x, &mut want);
        for k in simd_paths() {
            let mut got = vec![BlockQ8_0 { d: 1, qs: [9; QK] }; blocks];
            (k.quantize_q8_kv)(&x, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.d, g.qs), (w.d, w.qs), "{}", k.isa);
            }
        }
    }
}

#[test]
fn rms_norm_matches_scalar() {
    let mut rng = rng(3);
    for n in LENS {
        let (x, w) = (uniform(&mut rng, n, -4.0, 4.0), uniform(&mut rng, n, 0.5, 1.5));
        let mut want = vec![0.0; n];
        (SCALAR.rms_norm)(&x, &w, 1e-5, &mut want);
        for k in simd_paths() {
            let mut got = vec![0.0; n];
            (k.rms_norm)(&x, &w, 1e-5, &mut got);
            // Only the order of the sum of squares differs: each sum is within (n-1)u of
            // exact (positive terms); 1/sqrt halves that; the scaling is the same 2 products.
            assert_within(&format!("{} rms_norm n={n}", k.isa), &got, &want, |i| {
                (n as f64 + 4.0) * U * f64::from(want[i]).abs()
            });
        }
    }
}

#[test]
fn layer_norm_matches_scalar() {
    let mut rng = rng(4);
    for n in LENS {
        let x = uniform(&mut rng, n, -1.0, 3.0);
        let (w, b) = (uniform(&mut rng, n, 0.5, 1.5), uniform(&mut rng, n, -1.0, 1.0));
        let mut want = vec![0.0; n];
        (SCALAR.layer_norm)(&x, &w, &b, 1e-5, &mut want);
        let mean = f64s(&x).iter().sum::<f64>() / n as f64;
        let var = f64s(&x).iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let s = 1.0 / (var + 1e-5).sqrt();
        let mean_abs = f64s(&x).iter().map(|v| v.abs()).sum::<f64>() / n as f64;
        for k in simd_paths() {
            let mut got = vec![0.0; n];
            (k.layer_norm)(&x, &w, &b, 1e-5, &mut got);
            // The mean differs by at most 2n·u·mean|x|, the variance relatively by ~4n·u
            // (so the scale by 2n·u); each output is (x − mean)·s·w + b with a few roundings.
            assert_within(&format!("{} layer_norm n={n}", k.isa), &got, &want, |i| {
                let xm = (f64::from(x[i]) - mean).abs();
                4.0 * (n as f64 + 4.0)
                    * U
                    * (f64::from(w[i]).abs() * s * (mean_abs + xm) + f64::from(b[i]).abs())
            });
        }
    }
}

#[test]
fn softmax_matches_scalar() {
    let mut rng = rng(5);
    for n in LENS {
        let mut x = uniform(&mut rng, n, -30.0, 30.0);
        if n > 2 {
            x[1] = f32::NEG_INFINITY; // a masked position
            x[2] = x[0] - 100.0; // underflows to 0 or a subnormal
        }
        let x_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for scale in [1.0, 0.125, 0.37] {
            let mut want = x.clone();
            (SCALAR.softmax)(&mut want, scale);
            for k in simd_paths() {
                let mut got = x.clone();
                (k.softmax)(&mut got, scale);
                // Vector exp is within 2 ulp (relative 2.4e-7) of libm; the sum's order adds
                // n·u; the final scaling is exact in both; subnormal terms (below 1.2e-38
                // before the scaling) may be flushed to 0.
                assert_within(
                    &format!("{} softmax n={n} scale={scale}", k.isa),
                    &got,
                    &want,
                    |i| {
                        let flushed = if f64::from(x[i] - x_max) * f64::from(scale) < -87.33 {
                            f64::from(want[i])
                        } else {
                            0.0
                        };
                        (n as f64 + 8.0) * U * f64::from(want[i]) + 3e-45 + flushed
                    },
                );
            }
        }
    }
}

/// The scale folded into softmax gives, bit for bit, what scaling the values first gives (the
/// prompt attention relies on it to skip a pass).
#[test]
fn softmax_scale_is_a_separate_multiply() {
    let mut rng = rng(7);
    for n in LENS {
        let mut x = uniform(&mut rng, n, -300.0, 300.0);
        if n > 1 {
            x[n / 2] = f32::NEG_INFINITY;
        }
        for scale in [0.125, 0.37, 1.0 / 11f32.sqrt()] {
            for k in [&SCALAR].into_iter().chain(simd_paths()) {
                let mut fused = x.clone();
                (k.softmax)(&mut fused, scale);
                let mut separate: Vec<f32> = x.iter().map(|v| v * scale).collect();
                (k.softmax)(&mut separate, 1.0);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&separate), "{} n={n} scale={scale}", k.isa);
            }
        }
    }
}

/// A unary in-place kernel against its scalar twin on a dense sweep plus random values.
fn check_unary(
    name: &str,
    pick: impl Fn(&edgelm_kernels::Kernels) -> fn(&mut [f32]),
    budget: impl Fn(f32, f32) -> f64,
) {
    let mut rng = rng(6);
    let mut x: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
    x.extend(uniform(&mut rng, 1001, -30.0, 30.0));
    x.extend([0.0, -0.0, 1e-30, -1e-30, 90.0, -90.0, 1e6, -1e6]);
    let mut want = x.clone();
    pick(&SCALAR)(&mut want);
    for k in simd_paths() {
        let mut got = x.clone();
        pick(k)(&mut got);
        assert_within(&format!("{} {name}", k.isa), &got, &want, |i| {
            budget(x[i], want[i])
        });
    }
}

#[test]
fn gelu_erf_matches_scalar() {
    // erf's absolute error is below 6e-7 (see simd::math), scaled by x/2; plus 4 roundings.
    check_unary(
        "gelu_erf",
        |k| k.gelu_erf,
        |x, y| 3e-7 * f64::from(x).abs() + 4.0 * U * f64::from(y).abs(),
    );
}

#[test]
fn gelu_tanh_matches_scalar() {
    // tanh's absolute error is below 3e-7 (see simd::math), scaled by x/2; plus 6 roundings.
    check_unary(
        "gelu_tanh",
        |k| k.gelu_tanh,
        |x, y| 1.5e-7 * f64::from(x).abs() + 6.0 * U * f64::from(y).abs(),
    );
}

#[test]
fn swiglu_matches_scalar() {
    let mut rng = rng(7);
    let mut g: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
    g.extend([0.0, 88.5, -88.5, 200.0, -200.0]);
    let u = uniform(&mut rng, g.len(), -2.0, 2.0);
    let mut want = vec![0.0; g.len()];
    (SCALAR.swiglu)(&g, &u, &mut want);
    for k in simd_paths() {
        let mut got = vec![0.0; g.len()];
        (k.swiglu)(&g, &u, &mut got);
        // exp within 2 ulp, then 1 + e, a division and a product: 8 roundings relative
        // (e^-g overflows to +∞ in both below g = -88.72, giving ±0).
        assert_within(&format!("{} swiglu", k.isa), &got, &want, |i| {
            8.0 * U * f64::from(want[i]).abs()
        });
    }
}

#[test]
fn add_and_mul_are_exact() {
    let mut rng = rng(8);
    for n in LENS {
        let (a, b) = (uniform(&mut rng, n, -5.0, 5.0), uniform(&mut rng, n, -5.0, 5.0));
        let (mut want_add, mut want_mul) = (a.clone(), a.clone());
        (SCALAR.add)(&mut want_add, &b);
        (SCALAR.mul)(&mut want_mul, &b);
        for k in simd_paths() {
            let (mut add, mut mul) = (a.clone(), a.clone());
            (k.add)(&mut add, &b);
            (k.mul)(&mut mul, &b);
            assert_bits_eq(&format!("{} add n={n}", k.isa), &add, &want_add);
            assert_bits_eq(&format!("{} mul n={n}", k.isa), &mul, &want_mul);
        }
    }
}

#[test]
fn rope_is_exact() {
    let mut rng = rng(9);
    // (head_dim, rotated pairs): full and partial rotary, odd pair counts.
    for (d, half) in [
        (2, 1),
        (8, 4),
        (16, 8),
        (64, 32),
        (64, 16),
        (80, 20),
        (18, 9),
        (128, 64),
    ] {
        let x = uniform(&mut rng, d, -3.0, 3.0);
        let angles = uniform(&mut rng, half, -3.0, 3.0);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        for (name, pick) in [
            (
                "rope_neox",
                (|k| k.rope_neox) as fn(&edgelm_kernels::Kernels) -> fn(&mut [f32], &[f32], &[f32]),
            ),
            ("rope_interleaved", |k| k.rope_interleaved),
        ] {
            let mut want = x.clone();
            pick(&SCALAR)(&mut want, &cos, &sin);
            for k in simd_paths() {
                let mut got = x.clone();
                pick(k)(&mut got, &cos, &sin);
                assert_bits_eq(&format!("{} {name} d={d} pairs={half}", k.isa), &got, &want);
            }
        }
    }
}

#[test]
fn f32_to_f16_is_exact() {
    let mut rng = rng(10);
    let mut x = uniform(&mut rng, 1000, -70000.0, 70000.0);
    x.extend(uniform(&mut rng, 99, -1e-4, 1e-4)); // f16 subnormals
    x.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e-8,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0 + 1.0 / 2048.0,
    ]);
    for n in [x.len(), 7, 9] {
        let src = &x[..n];
        let mut want = vec![0; n];
        (SCALAR.f32_to_f16)(src, &mut want);
        for k in simd_paths() {
            let mut got = vec![0; n];
            (k.f32_to_f16)(src, &mut got);
            assert_eq!(got, want, "{} n={n}", k.isa);
        }
    }
}

fn to_f16(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| f16::from_f32(x).to_bits()).collect()
}

#[test]
fn f16_attention_matches_scalar() {
    let mut rng = rng(11);
    for d in [8, 13, 64, 80, 128] {
        for t in [1, 3, 17] {
            let q = uniform(&mut rng, d, -2.0, 2.0);
            let keys = to_f16(&uniform(&mut rng, t * d, -2.0, 2.0));
            let mut want = vec![0.0; t];
            (SCALAR.attn_scores_f16)(&q, &keys, 0.125, &mut want);
            let p = uniform(&mut rng, t, 0.0, 1.0);
            let values = to_f16(&uniform(&mut rng, t * d, -2.0, 2.0));
            let mut want_v = vec![0.0; d];
            (SCALAR.attn_values_f16)(&p, &values, &mut want_v);
            for k in simd_paths() {
                let mut got = vec![0.0; t];
                (k.attn_scores_f16)(&q, &keys, 0.125, &mut got);
                // Dots reordered: both within d·u·Σ|q·k| of exact.
                assert_within(
                    &format!("{} attn_scores_f16 d={d} t={t}", k.isa),
                    &got,
                    &want,
                    |i| {
                        let mag: f64 = (0..d)
                            .map(|j| (f64::from(q[j]) * f64::from(f16::from_bits(keys[i * d + j]))).abs())
                            .sum();
                        2.0 * (d as f64 + 1.0) * U * 0.125 * mag
                    },
                );
                let mut got_v = vec![f32::NAN; d];
                (k.attn_values_f16)(&p, &values, &mut got_v);
                // Fused vs separate multiply-adds over t rows: both within (t+1)·u·Σ|p·v|.
                assert_within(
                    &format!("{} attn_values_f16 d={d} t={t}", k.isa),
                    &got_v,
                    &want_v,
                    |j| {
                        let mag: f64 = (0..t)
                            .map(|i| (f64::from(p[i]) * f64::from(f16::from_bits(values[i * d + j]))).abs())
                            .sum();
                        2.0 * (t as f64 + 1.0) * U * mag
                    },
                );
            }
        }
    }
}

#[test]
fn q8_attention_matches_scalar() {
    let mut rng = rng(12);
    for blocks in [1, 2, 3, 4] {
        let d = blocks * QK;
        for t in [1, 3, 17] {
            let mut q = vec![BlockQ8Act::default(); blocks];
            (SCALAR.quantize_q8_act)(&uniform(&mut rng, d, -2.0, 2.0), &mut q);
            let mut keys = vec![BlockQ8_0::default(); t * blocks];
            (SCALAR.quantize_q8_kv)(&uniform(&mut rng, t * d, -2.0, 2.0), &mut keys);
            let mut values = vec![BlockQ8_0::default(); t * blocks];
            (SCALAR.quantize_q8_kv)(&uniform(&mut rng, t * d, -2.0, 2.0), &mut values);
            let p = uniform(&mut rng, t, 0.0, 1.0);
            let (mut want, mut want_v) = (vec![0.0; t], vec![0.0; d]);
            (SCALAR.attn_scores_q8)(&q, &keys, 0.125, &mut want);
            (SCALAR.attn_values_q8)(&p, &values, &mut want_v);
            let deq = |b: &BlockQ8_0, j: usize| f64::from(f16::from_bits(b.d).to_f32()) * f64::from(b.qs[j]);
            for k in simd_paths() {
                let mut got = vec![0.0; t];
                (k.attn_scores_q8)(&q, &keys, 0.125, &mut got);
                // Integer block dots are exact; float work per block as in the matmuls.
                assert_within(
                    &format!("{} attn_scores_q8 d={d} t={t}", k.isa),
                    &got,
                    &want,
                    |i| {
                        let mag: f64 = (0..d)
                            .map(|j| {
                                (deq(&keys[i * blocks + j / QK], j % QK)
                                    * f64::from(q[j / QK].d)
                                    * f64::from(q[j / QK].qs[j % QK]))
                                .abs()
                            })
                            .sum();
                        2.0 * (blocks as f64 + 3.0) * U * 0.125 * mag
                    },
                );
                let mut got_v = vec![f32::NAN; d];
                (k.attn_values_q8)(&p, &values, &mut got_v);
                assert_within(
                    &format!("{} attn_values_q8 d={d} t={t}", k.isa),
                    &got_v,
                    &want_v,
                    |j| {
                        let mag: f64 = (0..t)
                            .map(|i| (f64::from(p[i]) * deq(&values[i * blocks + j / QK], j % QK)).abs())
                            .sum();
                        2.0 * (t as f64 + 2.0) * U * mag
                    },
                );
            }
        }
    }
}
