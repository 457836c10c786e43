//! Normalization: RMSNorm over rows of the residual stream or over single heads; LayerNorm
//! over rows.
//! (Gemma's `(1 + w)` weights are stored as `1 + w` by the converter, so one RMSNorm serves.)

use edgelm_kernels::Kernels;

use crate::model::LayerNorm;

/// RMSNorm of each row of `x` (rows as long as `w`) into `out`.
pub fn rms_rows(k: &Kernels, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (x, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        (k.rms_norm)(x, w, eps, o);
    }
}

/// [`rms_rows`] with the rows split into `parts` pieces run in parallel.
pub fn rms_rows_par(k: &Kernels, x: &[f32], w: &[f32], eps: f32, out: &mut [f32], parts: usize) {
    super::par_rows(x, w.len(), out, w.len(), parts, &|x, o| rms_rows(k, x, w, eps, o));
}

/// `x += y` over rows of `row` values, split into `parts` pieces run in parallel (the residual
/// adds between sublayers).
pub fn add_rows_par(k: &Kernels, x: &mut [f32], y: &[f32], row: usize, parts: usize) {
    super::par_rows(y, row, x, row, parts, &|y, x| (k.add)(x, y));
}

/// RMSNorm of each `w.len()`-long piece of `x` in place (per-head q/k norms), through `tmp`
/// (as long as `w`).
pub fn rms_in_place(k: &Kernels, x: &mut [f32], w: &[f32], eps: f32, tmp: &mut [f32]) {
    for piece in x.chunks_exact_mut(w.len()) {
        tmp.copy_from_slice(piece);
        (k.rms_norm)(tmp, w, eps, piece);
    }
}

/// LayerNorm of each row of `x` (rows as long as the norm) into `out`.
pub fn layer_rows(k: &Kernels, x: &[f32], norm: LayerNorm<'_>, eps: f32, out: &mut [f32]) {
    let h = norm.weight.len();
    for (x, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        (k.layer_norm)(x, norm.weight, norm.bias, eps, o);
    }
}
