//! tiny-llama from its Hugging Face folder and from the GGUF files llama.cpp's converter made of
//! it (tests/fixtures/make_tiny_llama_gguf.py): the Q/K permutation is undone, so both give the
//! same configuration and the same tensors, and quantized GGUF blocks import unchanged.

mod common;

use common::*;
use edgelm::format::{DType, PackedFile};
use edgelm_kernels::layout::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QuantBlock};
use edgelm_tools::gguf::{GgmlType, Gguf};
use zerocopy::{FromBytes, Immutable, IntoBytes};

fn hf() -> std::path::PathBuf {
    fixtures().join("tiny-llama")
}

fn gguf(kind: &str) -> std::path::PathBuf {
    fixtures().join(format!("tiny-llama-gguf/{kind}.gguf"))
}

#[test]
fn gguf_and_safetensors_give_the_same_model() {
    let a = convert_path(&hf(), "f32");
    let b = convert_path(&gguf("f32"), "f32");
    assert_eq!(a.meta().config, b.meta().config);
    assert_eq!(a.meta().chat_template, b.meta().chat_template);
    let names = |f: &PackedFile| f.tensors().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let model_names: Vec<String> = names(&a)
        .into_iter()
        .filter(|n| !n.starts_with("tokenizer."))
        .collect();
    assert!(
        model_names.contains(&"blk.1.attn_qkv.weight".to_owned()),
        "{model_names:?}"
    );
    for name in &model_names {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!(x.info.shape, y.info.shape, "{name}");
        assert!(
            x.bytes == y.bytes,
            "{name} differs between the safetensors and the GGUF source"
        );
    }
}

fn check_exact_import<B: QuantBlock + FromBytes + IntoBytes + Immutable>(
    kind: &str,
    dtype: DType,
    ty: GgmlType,
) where
    B::Tile: FromBytes + Immutable,
{
    let g = Gguf::open(&gguf(kind)).unwrap();
    assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().ggml_type, ty);
    let packed = convert_path(&gguf(kind), "keep");
    check_llama_layers::<B>(&packed, &g, 2, 16);
    assert_eq!(packed.tensor("blk.1.ffn_down.weight").unwrap().info.dtype, dtype);
    // The same import under the explicit type.
    let named = convert_path(&gguf(kind), dtype.name());
    assert!(
        named.tensor("blk.0.attn_qkv.weight").unwrap().bytes
            == packed.tensor("blk.0.attn_qkv.weight").unwrap().bytes
    );
}

#[test]
fn q8_0_blocks_import_unchanged() {
    check_exact_import::<BlockQ8_0>("q8_0", DType::Q8_0, GgmlType::Q8_0);
}

#[test]
fn q4_0_blocks_import_unchanged() {
    check_exact_import::<BlockQ4_0>("q4_0", DType::Q4_0, GgmlType::Q4_0);
}

#[test]
fn q4_1_blocks_import_unchanged() {
    check_exact_import::<BlockQ4_1>("q4_1", DType::Q4_1, GgmlType::Q4_1);
}

#[test]
fn quantized_gguf_values_match_the_safetensors_weights() {
    let reference = convert_path(&hf(), "f32");
    for (kind, budget) in [("q8_0", 0.01), ("q4_0", 0.15), ("q4_1", 0.12)] {
        let packed = convert_path(&gguf(kind), "keep");
        for t in packed.tensors().iter().filter(|t| t.dtype.is_quantized()) {
            let e = rel_rmse(&values(&packed, &t.name), &values(&reference, &t.name));
            assert!(e < budget, "{kind} {}: relative RMSE {e}", t.name);
        }
    }
}
