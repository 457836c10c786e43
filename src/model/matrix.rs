//! Weight matrices as the kernels see them, and their products split across threads.

use edgelm_kernels::layout::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0,
    QK, QK_K, TILE_ROWS, TileQ2K, TileQ3K, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K, dequantize_row,
};
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols, Tiled};

use crate::format::{DType, FormatError, Layout, TensorView};
use crate::nn::{par_rows, pieces};
use crate::pool::{Pieces, even_ranges};

/// `$body` with `$t` bound to the tiled view of any quantized variant of `$m` (float variants
/// must be matched before).
macro_rules! tiled {
    ($m:expr, $t:ident => $body:expr) => {
        match $m {
            Matrix::Q8_0($t) => $body,
            Matrix::Q4_0($t) => $body,
            Matrix::Q4_1($t) => $body,
            Matrix::Q5_0($t) => $body,
            Matrix::Q5_1($t) => $body,
            Matrix::Q4K($t) => $body,
            Matrix::Q5K($t) => $body,
            Matrix::Q6K($t) => $body,
            Matrix::Q3K($t) => $body,
            Matrix::Q2K($t) => $body,
            Matrix::F16 { .. } | Matrix::F32 { .. } => unreachable!("float matrices are matched first"),
        }
    };
}

/// A weight matrix in one of the types the kernels multiply: `rows × cols`, rows being
/// output features.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    /// Tiled q8 blocks.
    Q8_0(Tiled<'a, edgelm_kernels::layout::TileQ8_0>),
    /// Tiled q4 blocks.
    Q4_0(Tiled<'a, edgelm_kernels::layout::TileQ4_0>),
    /// Tiled q4 blocks with minimum.
    Q4_1(Tiled<'a, edgelm_kernels::layout::TileQ4_1>),
    /// Tiled q5 blocks.
    Q5_0(Tiled<'a, TileQ5_0>),
    /// Tiled q5 blocks with minimum.
    Q5_1(Tiled<'a, TileQ5_1>),
    /// Tiled Q4_K super-blocks (256 columns per tile).
    Q4K(Tiled<'a, TileQ4K>),
    /// Tiled Q5_K super-blocks.
    Q5K(Tiled<'a, TileQ5K>),
    /// Tiled Q6_K super-blocks.
    Q6K(Tiled<'a, TileQ6K>),
    /// Tiled Q3_K super-blocks.
    Q3K(Tiled<'a, TileQ3K>),
    /// Tiled Q2_K super-blocks.
    Q2K(Tiled<'a, TileQ2K>),
    /// Row-major f16 bits.
    F16 {
        /// The values.
        w: &'a [u16],
        /// Columns.
        cols: usize,
    },
    /// Row-major f32.
    F32 {
        /// The values.
        w: &'a [f32],
        /// Columns.
        cols: usize,
    },
}

/// The input of a product, in both forms: quantized weights read `q8`, float weights `f32`.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// `n × cols` values.
    pub f32: &'a [f32],
    /// The same values as q8 blocks (empty when no quantized weight reads them).
    pub q8: &'a [BlockQ8Act],
}

impl<'a> Matrix<'a> {
    /// Views a 2-D tensor as a matrix, or says why it cannot be one.
    pub fn from_view(v: TensorView<'a>) -> Result<Self, FormatError> {
        let info = v.info;
        let bad = |what: &str| FormatError::Tensor {
            name: info.name.clone(),
            problem: what.to_owned(),
        };
        let &[rows, cols] = &info.shape[..] else {
            return Err(bad("is not a matrix"));
        };
        let cols = cols as usize;
        Ok(match (info.dtype, info.layout) {
            (DType::Q8_0, Layout::Tiled8) => Matrix::Q8_0(v.tiled_q8_0()?),
            (DType::Q4_0, Layout::Tiled8) => Matrix::Q4_0(v.tiled_q4_0()?),
            (DType::Q4_1, Layout::Tiled8) => Matrix::Q4_1(v.tiled_q4_1()?),
            (DType::Q5_0, Layout::Tiled8) => Matrix::Q5_0(v.tiled(DType::Q5_0)?),
            (DType::Q5_1, Layout::Tiled8) => Matrix::Q5_1(v.tiled(DType::Q5_1)?),
            (DType::Q4K, Layout::Tiled8) => Matrix::Q4K(v.tiled(DType::Q4K)?),
            (DType::Q5K, Layout::Tiled8) => Matrix::Q5K(v.tiled(DType::Q5K)?),
            (DType::Q6K, Layout::Tiled8) => Matrix::Q6K(v.tiled(DType::Q6K)?),
            (DType::Q3K, Layout::Tiled8) => Matrix::Q3K(v.tiled(DType::Q3K)?),
            (DType::Q2K, Layout::Tiled8) => Matrix::Q2K(v.tiled(DType::Q2K)?),
            (DType::F16, _) => Matrix::F16 {
                w: v.f16_bits()?,
                cols,
            },
            (DType::F32, _) => Matrix::F32 { w: v.f32s()?, cols },
            (t, l) => {
                return Err(bad(&format!(
                    "{t} {} is not a weight type edgelm multiplies",
                    l.name()
                )));
            }
        })
        .and_then(|m| {
            if m.rows() == rows as usize {
                Ok(m)
            } else {
                Err(bad("row count mismatch"))
            }
        })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        match self {
            Matrix::F16 { w, cols } => w.len() / cols,
            Matrix::F32 { w, cols } => w.len() / cols,
            m => tiled!(m, t => t.rows()),
        }
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        match self {
            Matrix::F16 { cols, .. } | Matrix::F32 { cols, .. } => *cols,
            Matrix::Q4K(t) => t.blocks_per_row() * QK_K,
            Matrix::Q5K(t) => t.blocks_per_row() * QK_K,
            Matrix::Q6K(t) => t.blocks_per_row() * QK_K,
            Matrix::Q3K(t) => t.blocks_per_row() * QK_K,
            Matrix::Q2K(t) => t.blocks_per_row() * QK_K,
            m => tiled!(m, t => t.blocks_per_row() * QK),
        }
    }

    /// Whether the product reads the q8 form of the input.
    pub fn is_quantized(&self) -> bool {
        !matches!(self, Matrix::F16 { .. } | Matrix::F32 { .. })
    }

    /// Bytes of weights read by one product.
    pub fn bytes(&self) -> usize {
        match self {
            Matrix::F16 { w, .. } => size_of_val(*w),
            Matrix::F32 { w, .. } => size_of_val(*w),
            m => tiled!(m, t => size_of_val(t.tiles())),
        }
    }

    /// Rows `[r0, r1)`; `r0` must be a multiple of [`TILE_ROWS`] and `r1` too unless it is `rows()`.
    fn row_range(&self, r0: usize, r1: usize) -> Self {
        let (t0, t1) = (r0 / TILE_ROWS, r1.div_ceil(TILE_ROWS));
        match *self {
            Matrix::Q8_0(t) => Matrix::Q8_0(t.tile_rows_range(t0, t1)),
            Matrix::Q4_0(t) => Matrix::Q4_0(t.tile_rows_range(t0, t1)),
            Matrix::Q4_1(t) => Matrix::Q4_1(t.tile_rows_range(t0, t1)),
            Matrix::Q5_0(t) => Matrix::Q5_0(t.tile_rows_range(t0, t1)),
            Matrix::Q5_1(t) => Matrix::Q5_1(t.tile_rows_range(t0, t1)),
            Matrix::Q4K(t) => Matrix::Q4K(t.tile_rows_range(t0, t1)),
            Matrix::Q5K(t) => Matrix::Q5K(t.tile_rows_range(t0, t1)),
            Matrix::Q6K(t) => Matrix::Q6K(t.tile_rows_range(t0, t1)),
            Matrix::Q3K(t) => Matrix::Q3K(t.tile_rows_range(t0, t1)),
            Matrix::Q2K(t) => Matrix::Q2K(t.tile_rows_range(t0, t1)),
            Matrix::F16 { w, cols } => Matrix::F16 {
                w: &w[r0 * cols..r1 * cols],
                cols,
            },
            Matrix::F32 { w, cols } => Matrix::F32 {
                w: &w[r0 * cols..r1 * cols],
                cols,
            },
        }
    }

    /// `out[t][r] = Σ_k self[r][k] · x[t][k]` on the calling thread.
    pub fn matmul(&self, k: &Kernels, x: Input<'_>, out: OutCols<'_>) {
        match *self {
            Matrix::Q8_0(t) => (k.matmul_q8_0)(t, x.q8, out),
            Matrix::Q4_0(t) => (k.matmul_q4_0)(t, x.q8, out),
            Matrix::Q4_1(t) => (k.matmul_q4_1)(t, x.q8, out),
            Matrix::Q5_0(t) => (k.matmul_q5_0)(t, x.q8, out),
            Matrix::Q5_1(t) => (k.matmul_q5_1)(t, x.q8, out),
            Matrix::Q4K(t) => (k.matmul_q4_k)(t, x.q8, out),
            Matrix::Q5K(t) => (k.matmul_q5_k)(t, x.q8, out),
            Matrix::Q6K(t) => (k.matmul_q6_k)(t, x.q8, out),
            Matrix::Q3K(t) => (k.matmul_q3_k)(t, x.q8, out),
            Matrix::Q2K(t) => (k.matmul_q2_k)(t, x.q8, out),
            Matrix::F16 { w, .. } => (k.matmul_f16)(w, x.f32, out),
            Matrix::F32 { w, .. } => (k.matmul_f32)(w, x.f32, out),
        }
    }

    /// The product split by rows into `chunks` pieces of whole tiles, run in parallel on the
    /// current [`crate::pool`].
    pub fn matmul_par(&self, k: &Kernels, x: Input<'_>, out: OutCols<'_>, chunks: usize) {
        let tiles = self.rows().div_ceil(TILE_ROWS);
        let chunks = chunks.min(tiles);
        if chunks <= 1 {
            return self.matmul(k, x, out);
        }
        let piece = |(m, out): (Matrix<'_>, OutCols<'_>)| m.matmul(k, x, out);
        let mut pieces = Pieces::new(&piece);
        let mut rest = out;
        for tiles in even_ranges(tiles, chunks) {
            let (r0, r1) = (tiles.start * TILE_ROWS, (tiles.end * TILE_ROWS).min(self.rows()));
            let (mine, tail) = rest.split_at(r1 - r0);
            pieces.push((self.row_range(r0, r1), mine));
            rest = tail;
        }
        pieces.run();
    }

    /// Writes row `row` as f32 values (embedding lookup).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        match self {
            Matrix::Q8_0(t) => dequantize_row::<BlockQ8_0>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q4_0(t) => dequantize_row::<BlockQ4_0>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q4_1(t) => dequantize_row::<BlockQ4_1>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q5_0(t) => dequantize_row::<BlockQ5_0>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q5_1(t) => dequantize_row::<BlockQ5_1>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q4K(t) => dequantize_row::<BlockQ4K>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q5K(t) => dequantize_row::<BlockQ5K>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q6K(t) => dequantize_row::<BlockQ6K>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q3K(t) => dequantize_row::<BlockQ3K>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::Q2K(t) => dequantize_row::<BlockQ2K>(t.tiles(), t.blocks_per_row(), row, out),
            Matrix::F16 { w, cols } => {
                for (o, &h) in out.iter_mut().zip(&w[row * cols..(row + 1) * cols]) {
                    *o = half::f16::from_bits(h).to_f32();
                }
            }
            Matrix::F32 { w, cols } => out.copy_from_slice(&w[row * cols..(row + 1) * cols]),
        }
    }
}

/// A linear layer: one or more matrices whose outputs sit side by side (a fused q/k/v
/// tensor, or separate ones), each with an optional bias over its own outputs.
#[derive(Clone, Debug)]
pub struct Linear<'a> {
    parts: Vec<(Matrix<'a>, Option<&'a [f32]>)>,
    out_dim: usize,
}

impl<'a> Linear<'a> {
    /// Joins `parts` (matrices with `cols` columns, and their biases) into one layer of their
    /// total rows.
    pub fn new(parts: Vec<(Matrix<'a>, Option<&'a [f32]>)>) -> Self {
        let out_dim = parts.iter().map(|(m, _)| m.rows()).sum();
        Linear { parts, out_dim }
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.parts.first().map_or(0, |(m, _)| m.cols())
    }

    /// Whether any part reads the q8 form of the input.
    pub fn needs_q8(&self) -> bool {
        self.parts.iter().any(|(m, _)| m.is_quantized())
    }

    /// Bytes of weights read by one product.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|(m, _)| m.bytes()).sum()
    }

    /// `out = x · Wᵀ (+ bias)` for `n` tokens of f32 inputs `x`, quantizing them into `xq`
    /// first when a part has quantized weights.
    pub fn apply(
        &self,
        k: &Kernels,
        x: &[f32],
        xq: &mut [BlockQ8Act],
        n: usize,
        out: &mut [f32],
        chunks: usize,
    ) {
        let q8: &[BlockQ8Act] = if self.needs_q8() {
            let blocks = &mut xq[..x.len() / QK];
            let cols = self.in_dim();
            par_rows(x, cols, &mut *blocks, cols / QK, pieces(chunks), &|x, q| {
                (k.quantize_q8_act)(x, q)
            });
            blocks
        } else {
            &[]
        };
        self.forward(k, Input { f32: x, q8 }, n, out, chunks);
    }

    /// `out = x · Wᵀ (+ bias)` for `n` tokens; `out` holds `n × out_dim` values.
    pub fn forward(&self, k: &Kernels, x: Input<'_>, n: usize, out: &mut [f32], chunks: usize) {
        let mut rest = OutCols::new(&mut out[..n * self.out_dim], n, self.out_dim);
        // A single token's product is memory-bound and short: one piece per thread. So is any
        // product on one thread: there is nobody to balance against, and every piece of a
        // prompt's product copies all the tokens' activations into its groups again.
        let pieces = if n > 1 { pieces(chunks) } else { chunks };
        for (m, _) in &self.parts {
            let (mine, tail) = rest.split_at(m.rows());
            m.matmul_par(k, x, mine, pieces);
            rest = tail;
        }
        let mut col = 0;
        for (m, bias) in &self.parts {
            if let Some(bias) = bias {
                for row in out[..n * self.out_dim].chunks_exact_mut(self.out_dim) {
                    (k.add)(&mut row[col..col + m.rows()], bias);
                }
            }
            col += m.rows();
        }
    }
}
