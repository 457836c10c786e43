//! Quantized matrix products and the small operations of a transformer, for edgelm.
//!
//! `no_std` and allocation-free: every kernel is a function over slices owned by the caller.
//! Each operation has a scalar reference ([`scalar`]) and SIMD twins with the same
//! signature (AVX2 on x86_64; NEON, NEON+SDOT and NEON+SMMLA on aarch64), collected into one
//! [`Kernels`] table per instruction-set path and chosen once at run time from CPU feature
//! detection ([`Kernels::detect`] and [`Kernels::select`], with the `std` feature).
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod dispatch;
pub mod layout;
pub mod scalar;
pub mod view;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use dispatch::{Isa, IsaSet, Kernels, SCALAR, SelectError};
pub use view::{BlockQ8Act, OutCols, Tiled};
