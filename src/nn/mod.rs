//! Building blocks of the networks, composed by the runners (`session`, `embed`) as each
//! architecture's recipe says: norms, MLPs, causal attention over the KV cache (and cross-attention over a fixed one),
//! bidirectional attention, rotary positions. They work on buffers the runner owns and passes in, and allocate nothing.

pub mod attention;
pub mod bidirectional;
pub mod mlp;
pub mod norm;
pub mod rope;

use crate::pool::{Pieces, even_ranges};

/// Pieces per thread that the work of a pass over several tokens is cut into. With one piece
/// per thread, a thread that starts late (woken from sleep, or preempted on a busy machine)
/// leaves the others waiting for its piece; with smaller ones, it takes fewer.
pub const PIECES_PER_THREAD: usize = 4;

/// Pieces the per-token work of a pass is cut into on `threads` threads: [`PIECES_PER_THREAD`]
/// each, and one on a single thread (there is nobody to balance against).
pub fn pieces(threads: usize) -> usize {
    if threads > 1 {
        threads * PIECES_PER_THREAD
    } else {
        1
    }
}

/// Values of input a piece of per-row work has at least: with fewer, a parallel step costs
/// about what it saves, so the few rows of a batched generation step stay on one thread.
pub const PAR_MIN_VALUES: usize = 1 << 14;

/// `f(x_part, out_part)` on up to `parts` pieces of whole rows run in parallel on the current
/// [`crate::pool`], each with at least [`PAR_MIN_VALUES`] of `x` where there are several: `x`
/// holds rows of `x_row` values, `out` as many rows of `out_row`. The steps between matrix
/// products (norms, residual adds, activation quantization, gated and GELU activations) are
/// per row, so they split like the products do. Either side may be shared or exclusive
/// ([`Halves`]); `()` is no `out`.
pub fn par_rows<A: Halves, B: Halves>(
    x: A,
    x_row: usize,
    out: B,
    out_row: usize,
    parts: usize,
    f: &(impl Fn(A, B) + Sync),
) {
    let values = x.values();
    let rows = values / x_row.max(1);
    let parts = parts.min(values / PAR_MIN_VALUES).min(rows);
    if parts <= 1 {
        return f(x, out);
    }
    let piece = |(x, out)| f(x, out);
    let mut pieces = Pieces::new(&piece);
    let (mut x, mut out) = (x, out);
    for r in even_ranges(rows, parts) {
        let ((xa, xb), (oa, ob)) = (x.halves(r.len() * x_row), out.halves(r.len() * out_row));
        pieces.push((xa, oa));
        (x, out) = (xb, ob);
    }
    pieces.run();
}

/// What [`par_rows`] cuts into pieces: a shared or an exclusive slice, or `()` (nothing).
pub trait Halves: Send + Sized {
    /// Values held.
    fn values(&self) -> usize;
    /// The first `at` values and the rest.
    fn halves(self, at: usize) -> (Self, Self);
}

impl<T: Sync> Halves for &[T] {
    fn values(&self) -> usize {
        self.len()
    }
    fn halves(self, at: usize) -> (Self, Self) {
        self.split_at(at)
    }
}

impl<T: Send> Halves for &mut [T] {
    fn values(&self) -> usize {
        self.len()
    }
    fn halves(self, at: usize) -> (Self, Self) {
        self.split_at_mut(at)
    }
}

impl Halves for () {
    fn values(&self) -> usize {
        0
    }
    fn halves(self, _: usize) -> (Self, Self) {
        ((), ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::PAR_MIN_VALUES;

    #[test]
    fn par_rows_hands_every_row_to_exactly_one_piece() {
        let w = PAR_MIN_VALUES;
        let x: Vec<u32> = (0..7 * w as u32).collect();
        let want: Vec<u32> = x
            .chunks(w)
            .flat_map(|r| [r[0], r.iter().fold(0, |a, &v| a ^ v)])
            .collect();
        for parts in [1, 2, 3, 7, 8, 32] {
            let mut out = vec![0u32; 7 * 2];
            let pieces = AtomicUsize::new(0);
            super::par_rows(&x[..], w, &mut out[..], 2, parts, &|x, o| {
                assert_eq!(
                    x.len() / w,
                    o.len() / 2,
                    "a piece's rows differ between x and out"
                );
                pieces.fetch_add(1, Ordering::Relaxed);
                for (r, o) in x.chunks(w).zip(o.chunks_mut(2)) {
                    o[0] += r[0];
                    o[1] += r.iter().fold(0, |a, &v| a ^ v);
                }
            });
            assert_eq!(out, want, "{parts} parts");
            assert_eq!(pieces.into_inner(), parts.min(7), "{parts} parts");
        }
    }

    #[test]
    fn par_rows_keeps_small_work_in_one_piece() {
        let x = vec![1.0f32; PAR_MIN_VALUES + 100];
        let mut out = vec![0.0f32; x.len() / 100];
        let pieces = AtomicUsize::new(0);
        super::par_rows(&x[..], 100, &mut out[..], 1, 8, &|_, _| {
            pieces.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(pieces.into_inner(), 1);
    }

    #[test]
    fn par_rows_splits_two_exclusive_sides_alike() {
        let pool = crate::pool::Pool::new(3).unwrap();
        let (wa, wb) = (PAR_MIN_VALUES / 4, 3);
        for (rows, parts) in [(1, 3), (2, 3), (5, 2), (17, 3), (64, 12)] {
            let mut a = vec![0.0f32; rows * wa];
            let mut b = vec![0.0f32; rows * wb];
            pool.install(|| {
                super::par_rows(&mut a[..], wa, &mut b[..], wb, parts, &|a, b| {
                    assert_eq!(a.len() / wa, b.len() / wb, "a and b get the same rows");
                    a.iter_mut().for_each(|v| *v += 1.0);
                    b.iter_mut().for_each(|v| *v += 2.0);
                })
            });
            assert!(
                a.iter().all(|&v| v == 1.0) && b.iter().all(|&v| v == 2.0),
                "{rows} rows"
            );
        }
    }
}
