//! Helpers shared by the kernel tests: seeded random data, the SIMD paths this CPU can run,
//! and error-budget checks.
#![allow(dead_code)] // each test binary uses a part

use edgelm_kernels::{Isa, Kernels};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Unit roundoff of f32 (half an ulp of 1).
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// A seeded generator, so failures reproduce.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` values uniform in `[lo, hi)`.
pub fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Every non-scalar table this CPU runs. Prints them once, so a run shows what it covered.
pub fn simd_paths() -> Vec<&'static Kernels> {
    static REPORT: std::sync::Once = std::sync::Once::new();
    let paths: Vec<_> = Isa::ALL
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .filter_map(Kernels::get)
        .collect();
    REPORT.call_once(|| eprintln!("SIMD paths under test: {}", Kernels::available()));
    paths
}

/// Asserts `|got[i] - want[i]| <= budget[i]` for all i, naming the worst element.
pub fn assert_within(what: &str, got: &[f32], want: &[f32], budget: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - f64::from(w)).abs();
        let b = budget(i);
        assert!(
            err <= b,
            "{what}: element {i}: got {g}, want {w}, error {err:e} > budget {b:e}"
        );
    }
}

/// Asserts bit-equal f32 slices.
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}
