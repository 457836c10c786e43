//! Run-time path selection: `detect` picks the fastest path the CPU has (asserted against
//! `EDGELM_EXPECT_ISA` when set, as the qemu runs of `targets/aarch64/test.sh` do), and
//! `select` refuses paths the CPU lacks with an error instead of an illegal instruction.

use edgelm_kernels::{Isa, Kernels};

#[test]
fn detect_picks_the_expected_path() {
    let chosen = Kernels::detect().isa;
    eprintln!("detect() chose {chosen}; available: {}", Kernels::available());
    if let Ok(want) = std::env::var("EDGELM_EXPECT_ISA") {
        assert_eq!(
            chosen.name(),
            want,
            "EDGELM_EXPECT_ISA={want} but detect() chose {chosen}"
        );
    }
    // The fastest available path, in the order of Isa::ALL.
    assert_eq!(Some(chosen), Kernels::available().iter().last());
}

#[test]
fn the_build_target_has_its_baseline_path() {
    assert!(Kernels::available().contains(Isa::Scalar));
    if cfg!(target_arch = "aarch64") {
        assert!(
            Kernels::available().contains(Isa::Neon),
            "aarch64 always has NEON"
        );
    }
}

#[test]
fn select_honours_names_and_refuses_missing_paths() {
    let available = Kernels::available();
    assert_eq!(Kernels::select(None).map(|k| k.isa), Ok(Kernels::detect().isa));
    assert_eq!(
        Kernels::select(Some(" auto ")).map(|k| k.isa),
        Ok(Kernels::detect().isa)
    );
    assert_eq!(
        Kernels::select(Some("")).map(|k| k.isa),
        Ok(Kernels::detect().isa)
    );
    for isa in Isa::ALL {
        match Kernels::select(Some(isa.name())) {
            Ok(k) => {
                assert!(available.contains(isa));
                assert_eq!(k.isa, isa);
            }
            Err(e) => {
                assert!(!available.contains(isa), "{isa} is available but refused: {e}");
                assert_eq!(e.isa(), Some(isa));
                let msg = e.to_string();
                assert!(
                    msg.contains(isa.name()) && msg.contains(&available.to_string()),
                    "{msg}"
                );
            }
        }
    }
    let e = Kernels::select(Some("avx512-and-then-some-more-text")).expect_err("unknown name");
    assert_eq!(e.isa(), None);
    let msg = e.to_string();
    assert!(
        msg.contains("\"avx512-and-then-some-mor…\"") && msg.contains("i8mm"),
        "{msg}"
    );
}
