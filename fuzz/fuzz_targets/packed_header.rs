//! `PackedFile::from_bytes` on arbitrary bytes, as given and with the file size and header
//! checksum fixed up (so that mutations reach the metadata and directory checks): validation
//! never panics, every view of a file it accepts is usable, and so is its tokenizer if it
//! loads (stored lookup tables included).
#![no_main]

use edgelm::format::spec::{CHECKSUM_FIELD, PREAMBLE_SIZE};
use edgelm::format::{DType, PackedFile};
use edgelm::tokenizer::{EncodeOptions, Tokenizer};
use edgelm_kernels::layout::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, QK,
    TileQ2K, TileQ3K, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K, TileQ6K, dequantize_row,
};

/// Byte range of the file-size field in the preamble.
const FILE_SIZE: std::ops::Range<usize> = 16..24;
/// Byte range of the data-offset field in the preamble.
const DATA_OFFSET: std::ops::Range<usize> = 72..80;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= PREAMBLE_SIZE {
        let mut fixed = data.to_vec();
        fixed[FILE_SIZE].copy_from_slice(&(data.len() as u64).to_le_bytes());
        let header_end = u64::from_le_bytes(fixed[DATA_OFFSET].try_into().expect("8 bytes"));
        if let Some(header) = usize::try_from(header_end).ok().filter(|&e| e <= fixed.len()) {
            fixed[CHECKSUM_FIELD].fill(0);
            let sum = xxhash_rust::xxh3::xxh3_64(&fixed[..header]);
            fixed[CHECKSUM_FIELD].copy_from_slice(&sum.to_le_bytes());
        }
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let Ok(file) = PackedFile::from_bytes(data) else {
        return;
    };
    let _ = file.verify_data();
    if let Ok(tok) = Tokenizer::from_packed(&file) {
        let opts = EncodeOptions {
            add_special: true,
            parse_special: true,
            max_length: None,
        };
        for text in ["Hello world 12345", "<s>\n\t  ab ab\u{e9}\u{4e2d}", ""] {
            if let Ok(ids) = tok.encode(text, opts) {
                drop(tok.decode(&ids));
            }
        }
        drop(tok.decode(&[0, 1, 2, u32::MAX]));
    }
    for t in file.tensors() {
        let view = file.tensor(&t.name).expect("listed tensor");
        let rows = t.shape[0] as usize;
        let mut row = vec![0.0; (t.numel() as usize / rows).max(1)];
        // Dequantizes the last row of a tiled tensor of these blocks, if it views as one.
        macro_rules! last_row {
            ($block:ty, $tile:ty) => {
                if let Ok(m) = view.tiled::<$tile>(t.dtype) {
                    dequantize_row::<$block>(m.tiles(), m.blocks_per_row(), rows - 1, &mut row);
                }
            };
        }
        match t.dtype {
            DType::F32 => assert_eq!(view.f32s().map(<[f32]>::len).ok(), Some(t.numel() as usize)),
            DType::F16 | DType::BF16 => drop(view.f16_bits()),
            DType::U32 => drop(view.u32s()),
            DType::U8 => drop(view.u8s()),
            DType::Q8_0 => {
                if let Ok(m) = view.tiled_q8_0() {
                    dequantize_row::<BlockQ8_0>(m.tiles(), row.len() / QK, rows - 1, &mut row);
                }
            }
            DType::Q4_0 => {
                if let Ok(m) = view.tiled_q4_0() {
                    dequantize_row::<BlockQ4_0>(m.tiles(), row.len() / QK, rows - 1, &mut row);
                }
            }
            DType::Q4_1 => {
                if let Ok(m) = view.tiled_q4_1() {
                    dequantize_row::<BlockQ4_1>(m.tiles(), row.len() / QK, rows - 1, &mut row);
                }
            }
            DType::Q5_0 => last_row!(BlockQ5_0, TileQ5_0),
            DType::Q5_1 => last_row!(BlockQ5_1, TileQ5_1),
            DType::Q4K => last_row!(BlockQ4K, TileQ4K),
            DType::Q5K => last_row!(BlockQ5K, TileQ5K),
            DType::Q6K => last_row!(BlockQ6K, TileQ6K),
            DType::Q3K => last_row!(BlockQ3K, TileQ3K),
            DType::Q2K => last_row!(BlockQ2K, TileQ2K),
        }
    }
}
