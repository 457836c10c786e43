//! The bfloat16 kernels ([`Kernels::bf16`]) against their scalar twins, and the scalar twins
//! against f32 arithmetic, each with an error budget; the rounding against `half`'s bfloat16.

mod common;

use common::{U, assert_bits_eq, assert_within, rng, uniform};
use edgelm_kernels::scalar::{bf16_from_f32, bf16_pairs, bf16_to_f32, matmul_bf16_t, softmax_bf16};
use edgelm_kernels::{Bf16Kernels, Isa, Kernels, OutCols, SCALAR};
use rand::RngExt;

/// Relative distance between bfloat16 neighbours at most (8-bit significand).
const BF16_ULP: f64 = 1.0 / 128.0;

/// The bfloat16 tables this CPU runs (none on most CPUs: the scalar checks still run).
fn bf16_paths() -> Vec<(Isa, &'static Bf16Kernels)> {
    let paths: Vec<_> = Isa::ALL
        .into_iter()
        .filter_map(Kernels::get)
        .filter_map(|k| Some((k.isa, k.bf16?)))
        .collect();
    let names: Vec<_> = paths.iter().map(|(isa, _)| isa.name()).collect();
    eprintln!("bfloat16 paths under test: {names:?}");
    paths
}

/// The values of bfloat16 pairs.
fn unpair(p: &[u32]) -> Vec<f32> {
    p.iter()
        .flat_map(|&p| [bf16_to_f32(p as u16), bf16_to_f32((p >> 16) as u16)])
        .collect()
}

#[test]
fn rounding_is_to_nearest_even_with_subnormals_flushed() {
    // Ties go to the even neighbour, either way; just past a tie rounds up.
    assert_eq!(bf16_from_f32(f32::from_bits(0x3f80_8000)), 0x3f80);
    assert_eq!(bf16_from_f32(f32::from_bits(0x3f81_8000)), 0x3f82);
    assert_eq!(bf16_from_f32(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(bf16_from_f32(f32::from_bits(0xbf81_8000)), 0xbf82);
    // Overflow to infinity; infinities and zeros kept; subnormals to a signed zero.
    assert_eq!(bf16_from_f32(f32::MAX), 0x7f80);
    assert_eq!(bf16_from_f32(f32::MIN), 0xff80);
    assert_eq!(bf16_from_f32(f32::NEG_INFINITY), 0xff80);
    assert_eq!(bf16_from_f32(-0.0), 0x8000);
    assert_eq!(bf16_from_f32(f32::from_bits(0x0000_8000)), 0);
    assert_eq!(bf16_from_f32(-f32::from_bits(0x007f_ffff)), 0x8000);
    assert!(bf16_to_f32(bf16_from_f32(f32::NAN)).is_nan());
    assert!(bf16_to_f32(bf16_from_f32(f32::from_bits(0x7f80_0001))).is_nan());
    // Every other finite value as `half` rounds it.
    let mut rng = rng(21);
    for _ in 0..100_000 {
        let x = f32::from_bits(rng.random::<u32>());
        if x.is_nan() || x.is_subnormal() {
            continue;
        }
        assert_eq!(bf16_from_f32(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
    }
    let mut pairs = [0; 2];
    bf16_pairs(&[1.0, -2.0, 3.0], &mut pairs);
    assert_eq!(pairs, [0xc000_3f80, 0x4040]);
}

/// `n × k` pairs of inputs, `k × width` pairs of `b`, and their values.
fn operands(seed: u64, n: usize, k: usize, width: usize) -> (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>) {
    let mut rng = rng(seed);
    let bf = uniform(&mut rng, 2 * k * width, -1.0, 1.0);
    let xf = uniform(&mut rng, 2 * n * k, -1.0, 1.0);
    let (mut b, mut x) = (vec![0; k * width], vec![0; n * k]);
    bf16_pairs(&bf, &mut b);
    bf16_pairs(&xf, &mut x);
    (b, x, bf, xf)
}

#[test]
fn scalar_matmul_is_the_f32_product_of_rounded_operands() {
    for (width, k, n) in [(1, 1, 1), (17, 5, 3), (64, 32, 4), (33, 75, 9)] {
        let (b, x, bf, xf) = operands(22, n, k, width);
        let mut got = vec![f32::NAN; n * width];
        matmul_bf16_t(&b, &x, OutCols::new(&mut got, n, width));
        // The f32 product of the unrounded operands: `b` as 2k rows of `width` (pair row j
        // holds rows 2j and 2j + 1, interleaved), `x` as rows of 2k.
        let bt: Vec<f32> = (0..2 * k)
            .flat_map(|r| (0..width).map(move |c| (r, c)))
            .map(|(r, c)| bf[2 * ((r / 2) * width + c) + r % 2])
            .collect();
        let mut want = vec![0.0; n * width];
        (SCALAR.matmul_f32_t)(&bt, &xf, OutCols::new(&mut want, n, width));
        // Each operand is within half a bfloat16 ulp; the sums add 2k·u each.
        let budget = |i: usize| {
            let (t, c) = (i / width, i % width);
            let mag: f64 = (0..2 * k)
                .map(|j| f64::from(xf[t * 2 * k + j] * bt[j * width + c]).abs())
                .sum();
            (BF16_ULP + 4.0 * k as f64 * U) * mag
        };
        assert_within(&format!("bf16 {n}x{k}·{k}x{width} vs f32"), &got, &want, budget);
    }
}

#[test]
fn matmul_matches_scalar() {
    let paths = bf16_paths();
    for width in [1, 15, 16, 64, 65, 100] {
        for k in [0, 1, 5, 32, 150] {
            for n in [1, 3, 4, 9, 17] {
                let (b, x, ..) = operands(23 + width as u64, n, k, width);
                let mut want = vec![0.0; n * width];
                matmul_bf16_t(&b, &x, OutCols::new(&mut want, n, width));
                let rounded = |v: &[u32]| unpair(v);
                let (bv, xv) = (rounded(&b), rounded(&x));
                // Exact products; only the order of the sums and flushed subnormal products
                // may differ.
                let budget = |i: usize| {
                    let (t, c) = (i / width, i % width);
                    let mag: f64 = (0..2 * k)
                        .map(|j| f64::from(xv[t * 2 * k + j] * bv[2 * ((j / 2) * width + c) + j % 2]).abs())
                        .sum();
                    4.0 * k as f64 * U * mag + 2.0 * k as f64 * f64::from(f32::MIN_POSITIVE)
                };
                for (isa, kern) in &paths {
                    let what = format!("{isa} bf16_t {n}x{k}·{k}x{width}");
                    let mut got = vec![f32::NAN; n * width];
                    (kern.matmul_t)(&b, &x, OutCols::new(&mut got, n, width));
                    assert_within(&what, &got, &want, budget);
                    if n < 2 {
                        continue;
                    }
                    let rows = n / 2;
                    let mut parts = vec![f32::NAN; n * width];
                    let (top, bottom) = parts.split_at_mut(rows * width);
                    (kern.matmul_t)(&b, &x[..rows * k], OutCols::new(top, rows, width));
                    (kern.matmul_t)(&b, &x[rows * k..], OutCols::new(bottom, n - rows, width));
                    assert_bits_eq(&format!("{what} split at row {rows}"), &parts, &got);
                }
            }
        }
    }
}

#[test]
fn pairs_match_scalar_exactly() {
    let paths = bf16_paths();
    let mut rng = rng(25);
    for n in [0, 1, 2, 31, 32, 33, 64, 100, 1501] {
        let mut x = uniform(&mut rng, n, -4.0, 4.0);
        // Ties, subnormals, infinities, a NaN and large values among them.
        let specials = [
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
            f32::from_bits(0x0000_1234),
            -f32::from_bits(0x0040_0000),
            f32::INFINITY,
            f32::NAN,
            f32::from_bits(0xff80_0001), // a signalling NaN
            f32::MAX,
            -1e30,
        ];
        for (v, s) in x.iter_mut().step_by(3).zip(specials) {
            *v = s;
        }
        let mut want = vec![0; n.div_ceil(2)];
        bf16_pairs(&x, &mut want);
        for (isa, kern) in &paths {
            let mut got = vec![u32::MAX; n.div_ceil(2)];
            (kern.pairs)(&x, &mut got);
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g == w,
                    "{isa} pairs n={n} pair {j}: got {g:#010x}, want {w:#010x}"
                );
            }
        }
    }
}

#[test]
fn softmax_matches_scalar() {
    let paths = bf16_paths();
    let mut rng = rng(24);
    for n in [0, 1, 2, 7, 31, 32, 33, 64, 1500, 1501] {
        let mut x = uniform(&mut rng, n, -30.0, 30.0);
        if n > 2 {
            x[1] = f32::NEG_INFINITY; // a masked position
            x[2] = x[0] - 100.0; // underflows to 0 or a subnormal
        }
        let mut want = vec![0; n.div_ceil(2)];
        softmax_bf16(&mut x.clone(), &mut want);
        let want = unpair(&want);
        let mut f32_softmax = x.clone();
        (SCALAR.softmax)(&mut f32_softmax);
        // The scalar twin is the f32 softmax rounded (subnormals flushed to 0).
        assert_within(
            &format!("scalar softmax_bf16 n={n}"),
            &want[..n],
            &f32_softmax,
            |i| BF16_ULP / 2.0 * f64::from(f32_softmax[i]) + f64::from(f32::MIN_POSITIVE),
        );
        assert!(
            want[n..].iter().all(|&v| v == 0.0),
            "padding of n={n} is not zero"
        );
        for (isa, kern) in &paths {
            let mut got = vec![u32::MAX; n.div_ceil(2)];
            (kern.softmax)(&mut x.clone(), &mut got);
            // The f32 softmaxes differ by (n + 8)·u (see the ops test), so the rounded ones by
            // one bfloat16 step at most; subnormal probabilities may be flushed to 0.
            assert_within(&format!("{isa} softmax_bf16 n={n}"), &unpair(&got), &want, |i| {
                BF16_ULP * f64::from(want[i]) + f64::from(f32::MIN_POSITIVE)
            });
        }
    }
}
