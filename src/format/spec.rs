//! The fixed binary parts of a packed file: preamble, tensor directory entries, tensor
//! types and layouts. `docs/FORMAT.md` is the byte-by-byte description of the same.

use edgelm_kernels::layout::{QK, QK_K, TILE_ROWS};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, LittleEndian, U32, U64};

/// First eight bytes of every packed file.
pub const MAGIC: [u8; 8] = *b"EDGELM\r\n";
/// The format version this build reads and writes.
pub const VERSION: u32 = 2;
/// Size of the preamble; the metadata starts right after it.
pub const PREAMBLE_SIZE: usize = 128;
/// Alignment of the data region and of every tensor in it.
pub const DATA_ALIGN: u64 = 64;
/// Byte range of the header checksum inside the preamble (zeroed while hashing).
pub const CHECKSUM_FIELD: core::ops::Range<usize> = 88..96;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;

type U32le = U32<LittleEndian>;
type U64le = U64<LittleEndian>;

/// The preamble at offset 0 (128 bytes, little-endian).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Preamble {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32le,
    /// Reserved, zero.
    pub flags: U32le,
    /// Total size of the file in bytes.
    pub file_size: U64le,
    /// Offset of the metadata JSON (always [`PREAMBLE_SIZE`]).
    pub meta_offset: U64le,
    /// Size of the metadata JSON.
    pub meta_size: U64le,
    /// Offset of the tensor directory (8-aligned).
    pub dir_offset: U64le,
    /// Number of directory entries.
    pub tensor_count: U64le,
    /// Offset of the tensor-name table.
    pub names_offset: U64le,
    /// Size of the tensor-name table.
    pub names_size: U64le,
    /// Offset of the data region (a multiple of [`DATA_ALIGN`]).
    pub data_offset: U64le,
    /// Size of the data region.
    pub data_size: U64le,
    /// xxh3-64 of bytes `[0, data_offset)` with this field read as zero.
    pub header_checksum: U64le,
    /// Reserved, zero.
    pub reserved: [u8; 32],
}

/// One tensor directory entry (80 bytes, little-endian).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DirEntry {
    /// Offset of the name in the name table.
    pub name_offset: U32le,
    /// Length of the name in bytes (UTF-8).
    pub name_len: U32le,
    /// [`DType`] code.
    pub dtype: u8,
    /// [`Layout`] code.
    pub layout: u8,
    /// Number of dimensions, 1 to [`MAX_DIMS`].
    pub ndim: u8,
    /// Reserved, zero.
    pub reserved0: [u8; 5],
    /// Dimensions, outermost first (`[rows, cols]` for a matrix); unused ones are zero.
    pub shape: [U64le; MAX_DIMS],
    /// Offset from the start of the data region, a multiple of [`DATA_ALIGN`].
    pub offset: U64le,
    /// Size in bytes.
    pub size: U64le,
    /// xxh3-64 of the tensor's bytes.
    pub checksum: U64le,
    /// Reserved, zero.
    pub reserved1: U64le,
}

const _: () = assert!(size_of::<Preamble>() == PREAMBLE_SIZE);
const _: () = assert!(size_of::<DirEntry>() == 80);

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// IEEE half float.
    F16,
    /// bfloat16.
    BF16,
    /// Blocks of 32 int8 values with an f16 scale (GGUF Q8_0 values).
    Q8_0,
    /// Blocks of 32 4-bit values with an f16 scale, `d * (q - 8)` (GGUF Q4_0 values).
    Q4_0,
    /// Blocks of 32 4-bit values with an f16 scale and minimum, `d * q + m` (GGUF Q4_1 values).
    Q4_1,
    /// Bytes (tokenizer tables).
    U8,
    /// Unsigned 32-bit integers (tokenizer tables).
    U32,
    /// Blocks of 32 5-bit values with an f16 scale, `d * (q - 16)` (GGUF Q5_0 values).
    Q5_0,
    /// Blocks of 32 5-bit values with an f16 scale and minimum, `d * q + m` (GGUF Q5_1 values).
    Q5_1,
    /// Super-blocks of 256 4-bit values with 6-bit sub-block scales and minimums (GGUF Q4_K values).
    Q4K,
    /// Super-blocks of 256 5-bit values with 6-bit sub-block scales and minimums (GGUF Q5_K values).
    Q5K,
    /// Super-blocks of 256 6-bit values with int8 scales per 16 (GGUF Q6_K values).
    Q6K,
    /// Super-blocks of 256 3-bit values with 6-bit scales per 16 (GGUF Q3_K values).
    Q3K,
    /// Super-blocks of 256 2-bit values with 4-bit scales and minimums per 16 (GGUF Q2_K values).
    Q2K,
}

impl DType {
    /// Every type, in code order.
    pub const ALL: [DType; 15] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::U8,
        DType::U32,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::Q3K,
        DType::Q2K,
    ];

    /// The code stored in the directory.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type with this code.
    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.get(usize::from(code)).copied()
    }

    /// Lower-case name as printed by `edgelm inspect`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::U8 => "u8",
            DType::U32 => "u32",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q4K => "q4_k",
            DType::Q5K => "q5_k",
            DType::Q6K => "q6_k",
            DType::Q3K => "q3_k",
            DType::Q2K => "q2_k",
        }
    }

    /// Whether values come in blocks (of [`DType::block_values`]) with scales.
    pub fn is_quantized(self) -> bool {
        !matches!(
            self,
            DType::F32 | DType::F16 | DType::BF16 | DType::U8 | DType::U32
        )
    }

    /// Values per block of a quantized type: [`QK`], or [`QK_K`] for the K-quant super-blocks
    /// (1 for a plain type).
    pub fn block_values(self) -> usize {
        match self {
            DType::Q4K | DType::Q5K | DType::Q6K | DType::Q3K | DType::Q2K => QK_K,
            t if t.is_quantized() => QK,
            _ => 1,
        }
    }

    /// Bytes per element of a plain type, or per block of a quantized one (row-major).
    pub fn unit_size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 => 1,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
            DType::Q3K => 110,
            DType::Q2K => 84,
        }
    }

    /// Bytes per tile of [`TILE_ROWS`] blocks in the [`Layout::Tiled8`] layout.
    pub fn tile_size(self) -> Option<usize> {
        match self {
            DType::Q8_0 => Some(272),
            DType::Q4_0 => Some(144),
            DType::Q4_1 => Some(160),
            DType::Q5_0 => Some(176),
            DType::Q5_1 => Some(192),
            // K-quant scales unpacked to a byte each: 4 bytes more per row and super-block.
            DType::Q4K => Some(1184),
            DType::Q5K => Some(1440),
            DType::Q6K => Some(1680),
            // Q3_K's 6-bit scales unpacked to a byte each: 4 bytes more per row and super-block.
            DType::Q3K => Some(912),
            DType::Q2K => Some(672),
            _ => None,
        }
    }

    /// Storage bits per weight (scales included).
    pub fn bits_per_weight(self) -> f64 {
        if self.is_quantized() {
            self.unit_size() as f64 * 8.0 / self.block_values() as f64
        } else {
            self.unit_size() as f64 * 8.0
        }
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a tensor's elements are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Row-major; quantized tensors as consecutive GGUF-style blocks per row.
    RowMajor,
    /// Quantized matrices only: tiles of 8 interleaved rows (`edgelm_kernels::layout`).
    Tiled8,
}

impl Layout {
    /// The code stored in the directory.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The layout with this code.
    pub fn from_code(code: u8) -> Option<Layout> {
        [Layout::RowMajor, Layout::Tiled8].get(usize::from(code)).copied()
    }

    /// Name as printed by `edgelm inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::RowMajor => "row-major",
            Layout::Tiled8 => "tiled8",
        }
    }
}

/// Why a (dtype, layout, shape) triple has no valid size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Zero or too many dimensions.
    #[error("{0} dimensions (1 to {MAX_DIMS} allowed)")]
    Rank(usize),
    /// A zero-sized dimension.
    #[error("a dimension is zero")]
    ZeroDim,
    /// Byte size does not fit in 64 bits.
    #[error("size overflows")]
    Overflow,
    /// Quantized tensors must be matrices with whole blocks per row (32 or 256 columns).
    #[error("{0} needs a 2-D shape with a multiple of {n} columns", n = .0.block_values())]
    NotBlockable(DType),
    /// The tiled layout applies to quantized matrices only.
    #[error("layout {1} is not valid for {0}")]
    BadLayout(DType, &'static str),
}

/// The exact byte size of a tensor, or why the triple is invalid.
pub fn tensor_size(dtype: DType, layout: Layout, shape: &[u64]) -> Result<u64, ShapeError> {
    if shape.is_empty() || shape.len() > MAX_DIMS {
        return Err(ShapeError::Rank(shape.len()));
    }
    if shape.contains(&0) {
        return Err(ShapeError::ZeroDim);
    }
    let numel = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or(ShapeError::Overflow)?;
    if !dtype.is_quantized() {
        if layout != Layout::RowMajor {
            return Err(ShapeError::BadLayout(dtype, layout.name()));
        }
        return numel
            .checked_mul(dtype.unit_size() as u64)
            .ok_or(ShapeError::Overflow);
    }
    let [rows, cols] = shape else {
        return Err(ShapeError::NotBlockable(dtype));
    };
    let per_block = dtype.block_values() as u64;
    if !cols.is_multiple_of(per_block) {
        return Err(ShapeError::NotBlockable(dtype));
    }
    let blocks = cols / per_block;
    let (units, unit) = match layout {
        Layout::RowMajor => (rows.checked_mul(blocks), dtype.unit_size()),
        Layout::Tiled8 => (
            rows.div_ceil(TILE_ROWS as u64).checked_mul(blocks),
            dtype.tile_size().unwrap_or(0),
        ),
    };
    units
        .and_then(|u| u.checked_mul(unit as u64))
        .ok_or(ShapeError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for t in DType::ALL {
            assert_eq!(DType::from_code(t.code()), Some(t));
        }
        assert_eq!(DType::from_code(200), None);
        assert_eq!(Layout::from_code(Layout::Tiled8.code()), Some(Layout::Tiled8));
        assert_eq!(Layout::from_code(9), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(tensor_size(DType::F16, Layout::RowMajor, &[3, 5]), Ok(30));
        assert_eq!(
            tensor_size(DType::Q4_0, Layout::RowMajor, &[3, 64]),
            Ok(3 * 2 * 18)
        );
        assert_eq!(
            tensor_size(DType::Q4_1, Layout::Tiled8, &[9, 64]),
            Ok(2 * 2 * 160)
        );
        assert_eq!(
            tensor_size(DType::Q8_0, Layout::Tiled8, &[8, 48]),
            Err(ShapeError::NotBlockable(DType::Q8_0))
        );
        assert_eq!(
            tensor_size(DType::Q4K, Layout::Tiled8, &[9, 512]),
            Ok(2 * 2 * 1184)
        );
        assert_eq!(tensor_size(DType::Q6K, Layout::RowMajor, &[3, 256]), Ok(3 * 210));
        assert_eq!(
            tensor_size(DType::Q5K, Layout::Tiled8, &[8, 288]),
            Err(ShapeError::NotBlockable(DType::Q5K))
        );
        assert_eq!(
            ShapeError::NotBlockable(DType::Q6K).to_string(),
            "q6_k needs a 2-D shape with a multiple of 256 columns"
        );
        for t in DType::ALL.into_iter().filter(|t| t.is_quantized()) {
            let tile = t.tile_size().unwrap();
            assert_eq!(tile % 4, 0, "{t}: tiles of u32 fields stay aligned");
            // At most Q3_K's unpacked 6-bit scales: 3.6 % over the GGUF's blocks.
            assert!(tile as f64 <= 1.037 * (TILE_ROWS * t.unit_size()) as f64, "{t}");
        }
        assert_eq!(
            tensor_size(DType::F32, Layout::Tiled8, &[8]),
            Err(ShapeError::BadLayout(DType::F32, "tiled8"))
        );
        assert_eq!(
            tensor_size(DType::F32, Layout::RowMajor, &[u64::MAX, 2]),
            Err(ShapeError::Overflow)
        );
        assert_eq!(
            tensor_size(DType::F32, Layout::RowMajor, &[]),
            Err(ShapeError::Rank(0))
        );
        assert_eq!(
            tensor_size(DType::F32, Layout::RowMajor, &[4, 0]),
            Err(ShapeError::ZeroDim)
        );
    }
}
