//! aarch64 paths: baseline NEON (every aarch64 CPU), NEON with SDOT (Armv8.2 dotprod) and
//! NEON with SMMLA (Armv8.6 i8mm). Stable Rust has no SDOT/SMMLA intrinsics, so those two
//! instructions are `asm!` inside functions compiled with the feature.

pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod neon;
pub(crate) mod quads;
