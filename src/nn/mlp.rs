//! The feed-forward activations: gated (SwiGLU, GeGLU) and plain.

use edgelm_kernels::Kernels;

use crate::format::meta::Activation;

/// `act(gate) · up` for each row of `gate_up` (rows of `2 × ff`: the gate, then up) into the
/// rows of `out` (`ff` each).
pub fn gated(k: &Kernels, act: Activation, ff: usize, gate_up: &[f32], out: &mut [f32]) {
    for (row, o) in gate_up.chunks_exact(2 * ff).zip(out.chunks_exact_mut(ff)) {
        let (gate, up) = row.split_at(ff);
        match act {
            Activation::Silu => (k.swiglu)(gate, up, o),
            Activation::GeluTanh | Activation::GeluErf => {
                o.copy_from_slice(gate);
                plain(k, act, o);
                (k.mul)(o, up);
            }
        }
    }
}

/// [`gated`] with the rows split into `parts` pieces run in parallel.
pub fn gated_par(k: &Kernels, act: Activation, ff: usize, gate_up: &[f32], out: &mut [f32], parts: usize) {
    super::par_rows(gate_up, 2 * ff, out, ff, parts, &|g, o| gated(k, act, ff, g, o));
}

/// `act(x)` in place.
pub fn plain(k: &Kernels, act: Activation, x: &mut [f32]) {
    match act {
        Activation::GeluErf => (k.gelu_erf)(x),
        Activation::GeluTanh => (k.gelu_tanh)(x),
        Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
    }
}
