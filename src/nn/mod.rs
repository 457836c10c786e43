//! Building blocks of the networks, composed by the runners (`session`, `embed`) as each
//! architecture's recipe says: norms, MLPs, causal attention over the KV cache (and cross-attention over a fixed one),
//! bidirectional attention, rotary positions. They work on buffers the runner owns and passes in, and allocate nothing.

pub mod attention;
pub mod bidirectional;
pub mod mlp;
pub mod norm;
pub mod rope;

/// Pieces per thread that the work of a pass over several tokens is cut into. With one piece
/// per thread, a thread that starts late (woken from sleep, or preempted on a busy machine)
/// finds its half already taken back by the thread that ran the other one, which then does
/// both; smaller pieces are stolen as they come.
pub const PIECES_PER_THREAD: usize = 4;

/// `f(x_part, out_part)` on up to `parts` pieces of whole rows run in parallel (rayon `join`,
/// which neither allocates nor leaves the current thread pool): `x` holds rows of `x_row`
/// values, `out` as many rows of `out_row`. The steps between matrix products (activation
/// quantization, gated activations) are per row, so they split like the products do.
pub fn par_rows<A: Sync, B: Send>(
    x: &[A],
    x_row: usize,
    out: &mut [B],
    out_row: usize,
    parts: usize,
    f: &(impl Fn(&[A], &mut [B]) + Sync),
) {
    let rows = x.len() / x_row.max(1);
    if parts <= 1 || rows < 2 {
        return f(x, out);
    }
    let left = parts / 2;
    let split = (rows * left / parts).max(1);
    let (xa, xb) = x.split_at(split * x_row);
    let (oa, ob) = out.split_at_mut(split * out_row);
    rayon::join(
        || par_rows(xa, x_row, oa, out_row, left, f),
        || par_rows(xb, x_row, ob, out_row, parts - left, f),
    );
}
