//! Helpers shared by the converter's integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use edgelm::format::{DType, Layout, PackedFile};
use edgelm_kernels::layout::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QK, QuantBlock, dequantize_row, unpack_row};
use edgelm_tools::convert::{Input, convert_to_bytes, load};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::plan::{Options, Target};
use half::f16;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The repository's `tests/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A JSON fixture under tests/fixtures.
pub fn fixture_json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(path)).unwrap()).unwrap()
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// llama.cpp's perplexity measurement on Debian's GPL-3 text: 256-token windows, the second
/// half of each scored, the model's BOS in front when its tokenizer adds one.
pub fn gpl3_perplexity(model: &edgelm::model::Model) -> edgelm::perplexity::Perplexity {
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3").expect("Debian's GPL-3 text");
    let plain = edgelm::tokenizer::EncodeOptions {
        parse_special: false,
        ..Default::default()
    };
    let tokens = model.tokenizer().encode(&text, plain).unwrap();
    let spec = &model.meta().tokenizer;
    let bos = spec.bos.filter(|_| spec.add_bos);
    let opts = edgelm::session::SessionOptions {
        context: Some(256),
        batch: 256,
        ..Default::default()
    };
    let mut session = edgelm::session::Session::new(model, &opts).unwrap();
    edgelm::perplexity::perplexity(&mut session, &tokens, bos, None, |_, _| {}).unwrap()
}

/// A cached real model (under `$EDGELM_MODELS`, default `~/.cache/edgelm/models`), or a panic
/// that says how to get it.
pub fn real_model(rel: &str) -> PathBuf {
    let root = std::env::var_os("EDGELM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgelm/models")
        });
    let path = root.join(rel);
    assert!(
        path.exists(),
        "{} is missing: run tools/fetch-models.sh first",
        path.display()
    );
    path
}

/// Conversion options from a `--quant` string.
pub fn options(quant: &str) -> Options {
    Options {
        quant: quant.parse::<Target>().unwrap(),
        ..Options::default()
    }
}

/// Converts `input` in memory and opens the result.
pub fn convert_path(input: &Path, quant: &str) -> PackedFile {
    let (model, tok) = load(&Input::Path(input.to_owned())).unwrap();
    let (bytes, _) = convert_to_bytes(&model, &tok, &options(quant)).unwrap();
    PackedFile::from_bytes(&bytes).unwrap()
}

/// Every value of a packed tensor as f32 (row-major).
pub fn values(file: &PackedFile, name: &str) -> Vec<f32> {
    let t = file.tensor(name).unwrap();
    let rows = t.info.shape[0] as usize;
    let cols = t.info.numel() as usize / rows;
    let mut out = vec![0.0; rows * cols];
    match t.info.dtype {
        DType::F32 => out.copy_from_slice(t.f32s().unwrap()),
        DType::F16 => {
            for (o, &h) in out.iter_mut().zip(t.f16_bits().unwrap()) {
                *o = f16::from_bits(h).to_f32();
            }
        }
        DType::Q8_0 => dequantize::<BlockQ8_0>(t.tiled_q8_0().unwrap().tiles(), cols, &mut out),
        DType::Q4_0 => dequantize::<BlockQ4_0>(t.tiled_q4_0().unwrap().tiles(), cols, &mut out),
        DType::Q4_1 => dequantize::<BlockQ4_1>(t.tiled_q4_1().unwrap().tiles(), cols, &mut out),
        other => panic!("{name}: no values for {other}"),
    }
    out
}

fn dequantize<B: QuantBlock>(tiles: &[B::Tile], cols: usize, out: &mut [f32]) {
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        dequantize_row::<B>(tiles, cols / QK, r, row);
    }
}

/// Root-mean-square of `a - b` relative to that of `b`.
pub fn rel_rmse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let err: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|&y| f64::from(y).powi(2)).sum();
    (err / norm).sqrt()
}

/// The GGUF row that holds Hugging Face row `r` of a Q or K matrix with `heads` heads of
/// `head_dim` rows, after llama.cpp's `permute` (reshape to `[heads, 2, head_dim / 2, ...]`, swap
/// the middle axes).
pub fn llama_cpp_row(r: usize, head_dim: usize) -> usize {
    let (h, i) = (r / head_dim, r % head_dim);
    let (a, b) = (i / (head_dim / 2), i % (head_dim / 2));
    h * head_dim + b * 2 + a
}

/// Checks that every row of packed tensor `name` holds, byte for byte, the GGUF blocks of the
/// source rows it stands for (`parts`: GGUF tensor name and whether llama.cpp permuted it).
pub fn check_rows<B: QuantBlock + FromBytes + IntoBytes + Immutable>(
    packed: &PackedFile,
    g: &Gguf,
    name: &str,
    parts: &[(&str, Option<usize>)],
) where
    B::Tile: FromBytes + Immutable,
{
    let t = packed.tensor(name).unwrap();
    assert_eq!(t.info.layout, Layout::Tiled8, "{name}");
    let cols = t.info.shape[1] as usize;
    let tiles = <[B::Tile]>::ref_from_bytes(t.bytes).unwrap();
    let mut row = 0;
    for &(src, head_dim) in parts {
        let st = g.tensor(src).unwrap();
        let data = g.data(st);
        let rows = st.shape()[0] as usize;
        let row_bytes = data.len() / rows;
        for r in 0..rows {
            let gr = head_dim.map_or(r, |hd| llama_cpp_row(r, hd));
            let mut blocks = vec![B::default(); cols / QK];
            unpack_row(tiles, cols / QK, row, &mut blocks);
            assert_eq!(
                blocks.as_bytes(),
                &data[gr * row_bytes..][..row_bytes],
                "{name} row {row}"
            );
            row += 1;
        }
    }
    assert_eq!(row as u64, t.info.shape[0]);
}

/// Checks the exact import of a llama GGUF's blocks of type `B`: the fused attention and
/// feed-forward matrices and the down projection of every layer (`head_dim` for Q/K rows).
pub fn check_llama_layers<B: QuantBlock + FromBytes + IntoBytes + Immutable>(
    packed: &PackedFile,
    g: &Gguf,
    layers: usize,
    head_dim: usize,
) where
    B::Tile: FromBytes + Immutable,
{
    for n in 0..layers {
        let name = |p: &str| format!("blk.{n}.{p}.weight");
        let (q, k, v) = (name("attn_q"), name("attn_k"), name("attn_v"));
        let qkv = [
            (q.as_str(), Some(head_dim)),
            (k.as_str(), Some(head_dim)),
            (v.as_str(), None),
        ];
        check_rows::<B>(packed, g, &name("attn_qkv"), &qkv);
        let (gate, up, down, out) = (
            name("ffn_gate"),
            name("ffn_up"),
            name("ffn_down"),
            name("attn_output"),
        );
        check_rows::<B>(packed, g, &name("ffn_gate_up"), &[(&gate, None), (&up, None)]);
        check_rows::<B>(packed, g, &down, &[(&down, None)]);
        check_rows::<B>(packed, g, &out, &[(&out, None)]);
    }
}
