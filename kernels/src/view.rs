//! Borrowed views the kernels take: tiled weight matrices, q8 activation blocks and
//! disjoint column ranges of an output matrix (so threads can write side by side).

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::layout::{QK, TILE_ROWS};

/// One block of q8 activations: `QK` int8 values, their f32 scale and their integer sum
/// (the sum lets the q4 kernels fold the block offset or minimum in after the integer dot).
/// Value `j` is `d * qs[j]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8Act {
    /// Scale.
    pub d: f32,
    /// Sum of `qs`.
    pub sum: i32,
    /// Quantized values.
    pub qs: [i8; QK],
}

/// A quantized `rows × cols` weight matrix in the tiled layout of [`crate::layout`].
#[derive(Clone, Copy, Debug)]
pub struct Tiled<'a, T> {
    tiles: &'a [T],
    rows: usize,
    blocks_per_row: usize,
}

impl<'a, T> Tiled<'a, T> {
    /// Wraps `tiles` as a `rows × blocks_per_row * QK` matrix, or `None` if the tile count
    /// does not match.
    pub fn new(tiles: &'a [T], rows: usize, blocks_per_row: usize) -> Option<Self> {
        (tiles.len() == rows.div_ceil(TILE_ROWS) * blocks_per_row).then_some(Self {
            tiles,
            rows,
            blocks_per_row,
        })
    }

    /// The tiles, tile row after tile row.
    pub fn tiles(&self) -> &'a [T] {
        self.tiles
    }

    /// Matrix rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Matrix columns (input features).
    pub fn cols(&self) -> usize {
        self.blocks_per_row * QK
    }

    /// Blocks per matrix row.
    pub fn blocks_per_row(&self) -> usize {
        self.blocks_per_row
    }

    /// Tile rows (groups of [`TILE_ROWS`] matrix rows).
    pub fn tile_rows(&self) -> usize {
        self.rows.div_ceil(TILE_ROWS)
    }

    /// The tiles of tile row `tr`.
    pub fn tile_row(&self, tr: usize) -> &'a [T] {
        &self.tiles[tr * self.blocks_per_row..][..self.blocks_per_row]
    }

    /// Matrix rows `[tr0 * TILE_ROWS, tr1 * TILE_ROWS)` (clipped to `rows`) as a matrix of their own.
    ///
    /// # Panics
    /// If `tr0 > tr1` or `tr1` is past the last tile row.
    pub fn tile_rows_range(&self, tr0: usize, tr1: usize) -> Self {
        assert!(
            tr0 <= tr1 && tr1 <= self.tile_rows(),
            "tile rows {tr0}..{tr1} out of range"
        );
        let rows = (tr1 * TILE_ROWS).min(self.rows) - (tr0 * TILE_ROWS).min(self.rows);
        let tiles = &self.tiles[tr0 * self.blocks_per_row..tr1 * self.blocks_per_row];
        Self {
            tiles,
            rows,
            blocks_per_row: self.blocks_per_row,
        }
    }
}

/// A mutable view of columns `[c0, c0 + width)` of a row-major `n × stride` f32 matrix:
/// row `t` of the output holds token `t`, column `c` output feature `c`. Views made by
/// [`OutCols::split_at`] cover disjoint columns, so each can go to its own thread.
pub struct OutCols<'a> {
    ptr: NonNull<f32>,
    n: usize,
    stride: usize,
    width: usize,
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutCols` is an exclusive borrow of the elements it covers (like `&mut [f32]`),
// and no two views ever cover the same element.
unsafe impl Send for OutCols<'_> {}

impl<'a> OutCols<'a> {
    /// The whole of `buf` viewed as `n` rows of `width` columns.
    ///
    /// # Panics
    /// If `buf.len() != n * width`.
    pub fn new(buf: &'a mut [f32], n: usize, width: usize) -> Self {
        assert_eq!(buf.len(), n * width, "output buffer is not n × width");
        Self {
            ptr: NonNull::from(buf).cast(),
            n,
            stride: width,
            width,
            _buf: PhantomData,
        }
    }

    /// Rows (tokens).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns covered by this view.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Splits into columns `[0, mid)` and `[mid, width)`.
    ///
    /// # Panics
    /// If `mid > width`.
    pub fn split_at(self, mid: usize) -> (Self, Self) {
        assert!(mid <= self.width, "split {mid} past width {}", self.width);
        // SAFETY: `mid <= width`, so the offset stays inside (or one past) the first row's columns.
        let right = unsafe { self.ptr.add(mid) };
        (
            Self { width: mid, ..self },
            Self {
                ptr: right,
                width: self.width - mid,
                n: self.n,
                stride: self.stride,
                _buf: PhantomData,
            },
        )
    }

    /// Rows (tokens) `[t0, n)` of this view.
    ///
    /// # Panics
    /// If `t0 > n`.
    pub fn tokens_from(self, t0: usize) -> Self {
        assert!(t0 <= self.n, "token {t0} past {}", self.n);
        Self {
            ptr: self.row_start(t0),
            n: self.n - t0,
            ..self
        }
    }

    /// Splits into rows (tokens) `[0, t)` and `[t, n)`.
    ///
    /// # Panics
    /// If `t > n`.
    pub fn split_tokens(self, t: usize) -> (Self, Self) {
        assert!(t <= self.n, "token {t} past {}", self.n);
        let rest = Self {
            ptr: self.row_start(t),
            n: self.n - t,
            ..self
        };
        (Self { n: t, ..self }, rest)
    }

    /// Rows (tokens) `r` of this view, borrowed.
    ///
    /// # Panics
    /// If `r` is decreasing or ends past `n`.
    pub fn tokens(&mut self, r: core::ops::Range<usize>) -> OutCols<'_> {
        assert!(
            r.start <= r.end && r.end <= self.n,
            "tokens {r:?} out of {}",
            self.n
        );
        // The new view's rows are a subset of this one's, and its borrow is tied to `&mut self`.
        OutCols {
            ptr: self.row_start(r.start),
            n: r.end - r.start,
            stride: self.stride,
            width: self.width,
            _buf: PhantomData,
        }
    }

    /// Where row `t <= n` starts: the view's own pointer for `t == n`, a view of no rows.
    fn row_start(&self, t: usize) -> NonNull<f32> {
        debug_assert!(t <= self.n);
        if t < self.n {
            // SAFETY: for `t < n` row `t` starts inside the view's buffer.
            unsafe { self.ptr.add(t * self.stride) }
        } else {
            self.ptr
        }
    }

    /// Columns `c0..c0 + N` of each row, in token order; `None` where they pass the width.
    pub fn column_block<const N: usize>(&mut self, c0: usize) -> Option<impl Iterator<Item = &mut [f32; N]>> {
        if c0.checked_add(N)? > self.width {
            return None;
        }
        let (ptr, stride) = (self.ptr, self.stride);
        Some((0..self.n).map(move |t| {
            // SAFETY: `t < n` and `c0 + N <= width`: the block lies inside the view, a
            // different one per row; the borrows are tied to `&mut self`.
            unsafe { ptr.add(t * stride + c0).cast::<[f32; N]>().as_mut() }
        }))
    }

    /// Row `t` of this view: `width` values.
    ///
    /// # Panics
    /// If `t >= n`.
    pub fn row(&mut self, t: usize) -> &mut [f32] {
        assert!(t < self.n, "row {t} out of {}", self.n);
        // SAFETY: the view covers columns [0, width) of rows [0, n) at this stride, exclusively
        // (see `split_at`), and `t < n`; the returned borrow is tied to `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(t * self.stride), self.width) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_views_write_disjoint_columns() {
        let mut buf = [0.0f32; 3 * 5];
        let out = OutCols::new(&mut buf, 3, 5);
        let (mut a, mut b) = out.split_at(2);
        for t in 0..3 {
            a.row(t).fill(1.0);
            b.row(t).fill(2.0);
        }
        assert_eq!(&buf[..5], &[1.0, 1.0, 2.0, 2.0, 2.0]);
        assert_eq!(&buf[10..], &[1.0, 1.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn token_ranges_write_their_rows_only() {
        let mut buf = [0.0f32; 4 * 3];
        let mut out = OutCols::new(&mut buf, 4, 3);
        let (_, mut right) = out.tokens(1..3).split_at(1);
        assert_eq!((right.n(), right.width()), (2, 2));
        right.row(0).fill(1.0);
        right.row(1).fill(2.0);
        assert_eq!(out.tokens(4..4).n(), 0);
        assert_eq!(buf, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn column_blocks_are_one_block_per_row_inside_the_width() {
        let mut buf = [0.0f32; 3 * 5];
        let (_, mut right) = OutCols::new(&mut buf, 3, 5).split_at(1);
        for (t, block) in right.column_block::<2>(1).unwrap().enumerate() {
            *block = [t as f32 + 1.0; 2];
        }
        assert!(right.column_block::<2>(3).is_none());
        assert!(right.column_block::<2>(usize::MAX).is_none());
        assert_eq!(
            buf,
            [
                0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 3.0, 3.0, 0.0
            ]
        );
    }

    #[test]
    fn tile_row_ranges_clip_the_last_tile() {
        let tiles = [0u8; 3 * 2];
        let m = Tiled::new(&tiles, 20, 2).unwrap();
        assert_eq!(m.tile_rows(), 3);
        assert_eq!(m.tile_rows_range(1, 3).rows(), 12);
        assert_eq!(m.tile_rows_range(2, 3).rows(), 4);
        assert!(Tiled::new(&tiles, 25, 2).is_none());
    }
}
