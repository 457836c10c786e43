//! Round trips and the rejection of every class of damaged file.

use super::meta::*;
use super::spec::*;
use super::writer::to_bytes;
use super::*;
use xxhash_rust::xxh3::xxh3_64;

pub(crate) fn sample_meta() -> Metadata {
    Metadata {
        config: ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: 16,
            hidden_size: 64,
            intermediate_size: 128,
            num_layers: 1,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 32,
            max_context: 128,
            norm: NormKind::Rms,
            norm_eps: 1e-5,
            rope: Some(Rope {
                layout: RopeLayout::Neox,
                theta: 10000.0,
                dims: 32,
                scaling: None,
            }),
            activation: Activation::Silu,
            qkv_bias: false,
            attn_out_bias: false,
            mlp_bias: false,
            tied_embeddings: true,
            type_vocab_size: 0,
            pooling: None,
            attention: Default::default(),
            final_softcap: None,
            whisper: None,
        },
        tokenizer: TokenizerSpec {
            pre_tokenizer: vec![PreTokenizerStep::Digits { individual: true }],
            eos: Some(0),
            stop_tokens: vec![0],
            ..TokenizerSpec::new(TokenizerModel::BpeByteLevel, 16)
        },

        chat_template: Some("{{ messages }}".into()),
        source: SourceInfo {
            converter: "test".into(),
            source: "test".into(),
            quant: "f32".into(),
            name: None,
        },
    }
}

fn plan(name: &str, dtype: DType, layout: Layout, shape: &[u64]) -> TensorPlan {
    TensorPlan {
        name: name.into(),
        dtype,
        layout,
        shape: shape.to_vec(),
    }
}

fn sample_tensors() -> Vec<(TensorPlan, Vec<u8>)> {
    let norm: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let q4 = vec![7u8; tensor_size(DType::Q4_0, Layout::Tiled8, &[16, 64]).unwrap() as usize];
    vec![
        (plan("norm", DType::F32, Layout::RowMajor, &[64]), norm),
        (plan("w", DType::Q4_0, Layout::Tiled8, &[16, 64]), q4),
        (
            plan("ids", DType::U32, Layout::RowMajor, &[3]),
            vec![1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0],
        ),
    ]
}

fn sample_file() -> Vec<u8> {
    to_bytes(&sample_meta(), &sample_tensors()).unwrap()
}

/// Rewrites the header checksum after a deliberate edit, so that the edit itself is what
/// the reader has to catch.
fn reseal(bytes: &mut [u8]) {
    let data_offset = u64::from_le_bytes(bytes[72..80].try_into().unwrap()) as usize;
    bytes[CHECKSUM_FIELD].fill(0);
    let sum = xxh3_64(&bytes[..data_offset]);
    bytes[CHECKSUM_FIELD].copy_from_slice(&sum.to_le_bytes());
}

fn entry_offset(bytes: &[u8], i: usize) -> usize {
    u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize + i * size_of::<DirEntry>()
}

fn open_err(bytes: &[u8]) -> String {
    PackedFile::from_bytes(bytes)
        .expect_err("damaged file accepted")
        .to_string()
}

#[test]
fn round_trip_in_memory() {
    let bytes = sample_file();
    let f = PackedFile::from_bytes(&bytes).unwrap();
    assert_eq!(f.meta(), &sample_meta());
    assert_eq!(f.tensors().len(), 3);
    let norm = f.tensor("norm").unwrap().f32s().unwrap();
    assert_eq!(norm[5], 5.0);
    assert_eq!(f.tensor("ids").unwrap().u32s().unwrap(), &[1, 2, 3]);
    let w = f.tensor("w").unwrap().tiled_q4_0().unwrap();
    assert_eq!((w.rows(), w.cols(), w.tiles().len()), (16, 64, 4));
    for t in f.tensors() {
        assert_eq!(t.range.start % 64, 0, "{} unaligned", t.name);
    }
    f.verify_data().unwrap();
}

#[test]
fn writer_streams_to_disk_and_renames() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.edgelm");
    let tensors = sample_tensors();
    let mut w = PackedWriter::create(
        &dest,
        &sample_meta(),
        tensors.iter().map(|(p, _)| p.clone()).collect(),
    )
    .unwrap();
    for (p, data) in &tensors {
        assert!(!dest.exists(), "destination appears before finish");
        w.write_tensor(&p.name, data).unwrap();
    }
    let size = w.finish().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), sample_file());
    assert_eq!(size as usize, sample_file().len());
    let f = PackedFile::open(&dest).unwrap();
    assert_eq!(f.tensor("ids").unwrap().u32s().unwrap(), &[1, 2, 3]);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left behind"
    );
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.edgelm");
    let tensors = sample_tensors();
    let mut w = PackedWriter::create(
        &dest,
        &sample_meta(),
        tensors.iter().map(|(p, _)| p.clone()).collect(),
    )
    .unwrap();
    w.write_tensor("norm", &tensors[0].1).unwrap();
    assert!(
        w.write_tensor("ids", &tensors[2].1)
            .unwrap_err()
            .to_string()
            .contains("expected tensor \"w\"")
    );
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_rejects_wrong_sizes_and_unfinished_plans() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.edgelm");
    let tensors = sample_tensors();
    let mut w = PackedWriter::create(
        &dest,
        &sample_meta(),
        tensors.iter().map(|(p, _)| p.clone()).collect(),
    )
    .unwrap();
    assert!(
        w.write_tensor("norm", &[0; 3])
            .unwrap_err()
            .to_string()
            .contains("3 bytes given")
    );
    w.write_tensor("norm", &tensors[0].1).unwrap();
    assert!(
        w.finish()
            .unwrap_err()
            .to_string()
            .contains("planned but not written")
    );
    assert!(!dest.exists());
}

#[test]
fn rejects_bad_magic_and_version() {
    let mut b = sample_file();
    b[0] = b'X';
    assert!(open_err(&b).contains("bad magic"));
    assert!(open_err(b"hello").contains("bad magic"));
    let mut b = sample_file();
    b[8] = 9;
    reseal(&mut b);
    assert!(open_err(&b).contains("unsupported format version 9"));
    // Version 1 stored the merge index with four words per slot: refused, with the way out.
    let mut b = sample_file();
    b[8] = 1;
    reseal(&mut b);
    let err = open_err(&b);
    assert!(err.contains("unsupported format version 1"), "{err}");
    assert!(
        err.contains("reconvert the model with this edgelm's edgelm-convert"),
        "{err}"
    );
}

#[test]
fn rejects_truncation_anywhere() {
    let b = sample_file();
    for cut in [10, 127, 200, b.len() / 2, b.len() - 1] {
        let e = open_err(&b[..cut]);
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
    }
}

#[test]
fn rejects_a_data_offset_inside_the_preamble() {
    // Found by fuzzing: an offset below the checksum field made the checksum slice panic.
    for offset in [0u64, 64] {
        let mut b = sample_file();
        b[72..80].copy_from_slice(&offset.to_le_bytes());
        assert!(open_err(&b).contains("inside the 128-byte preamble"), "{offset}");
    }
}

#[test]
fn rejects_any_flipped_header_byte() {
    let b = sample_file();
    let data_offset = u64::from_le_bytes(b[72..80].try_into().unwrap()) as usize;
    for i in (0..data_offset).step_by(7) {
        let mut c = b.clone();
        c[i] ^= 0x40;
        assert!(PackedFile::from_bytes(&c).is_err(), "flip at byte {i} accepted");
    }
}

#[test]
fn flipped_data_bytes_fail_verification() {
    let mut b = sample_file();
    let f = PackedFile::from_bytes(&b).unwrap();
    let at = f.tensor("w").unwrap().info.range.start + 5;
    b[at] ^= 1;
    let f = PackedFile::from_bytes(&b).unwrap();
    let e = f.verify_data().unwrap_err().to_string();
    assert!(e.contains("\"w\"") && e.contains("checksum"), "{e}");
}

#[test]
fn rejects_lying_directory_entries() {
    let b = sample_file();
    let w = entry_offset(&b, 1);
    let cases: Vec<(usize, Vec<u8>, &str)> = vec![
        (w + 8, vec![77], "unknown type code 77"),
        (w + 9, vec![9], "unknown layout code 9"),
        (w + 10, vec![0], "0 dimensions"),
        (w + 24, 48u64.to_le_bytes().to_vec(), "multiple of 32 columns"),
        (w + 16, (1u64 << 40).to_le_bytes().to_vec(), "does not match"),
        (w + 48, 8u64.to_le_bytes().to_vec(), "not 64-aligned"),
        (
            w + 48,
            (1u64 << 20).to_le_bytes().to_vec(),
            "runs past the data region",
        ),
        (w + 48, 0u64.to_le_bytes().to_vec(), "overlaps"),
        (w, 5000u32.to_le_bytes().to_vec(), "outside the name table"),
    ];
    for (at, bytes, want) in cases {
        let mut c = b.clone();
        c[at..at + bytes.len()].copy_from_slice(&bytes);
        reseal(&mut c);
        let e = open_err(&c);
        assert!(e.contains(want), "patch at {at}: {e:?} lacks {want:?}");
    }
}

#[test]
fn rejects_bad_metadata_and_wrong_dtype_access() {
    let mut b = sample_file();
    b[PREAMBLE_SIZE] = b'[';
    reseal(&mut b);
    assert!(open_err(&b).starts_with("invalid metadata"));
    let f = PackedFile::from_bytes(&sample_file()).unwrap();
    let e = f.tensor("w").unwrap().f32s().unwrap_err().to_string();
    assert!(e.contains("is q4_0 tiled8, expected f32 row-major"), "{e}");
    assert_eq!(
        f.tensor("nope").unwrap_err().to_string(),
        "missing tensor \"nope\""
    );
}
