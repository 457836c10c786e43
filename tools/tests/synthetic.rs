//! `--synthetic`: random weights at a real model's shapes, with the tokenizer of another file.

mod common;

use std::process::Command;

use common::fixtures;
use edgelm::format::{DType, PackedFile};

#[test]
fn synthetic_smollm2_takes_the_tokenizer_of_a_packed_file() {
    let dir = tempfile::tempdir().unwrap();
    let convert = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_edgelm-convert"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let tok = dir.path().join("tok.edgelm");
    let gguf = fixtures().join("tiny-llama-gguf/q8_0.gguf");
    convert(&[gguf.to_str().unwrap(), "-o", tok.to_str().unwrap()]);
    let out = dir.path().join("synthetic.edgelm");
    let report = convert(&[
        "--synthetic",
        "smollm2-135m",
        "--tokenizer-from",
        tok.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "q4_0",
    ]);
    assert!(report.contains("synthetic smollm2-135m"), "{report}");
    let (tok, file) = (PackedFile::open(&tok).unwrap(), PackedFile::open(&out).unwrap());
    let c = &file.meta().config;
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.num_layers,
            c.num_heads,
            c.num_kv_heads
        ),
        (49152, 576, 30, 9, 3)
    );
    assert_eq!(file.meta().tokenizer, tok.meta().tokenizer);
    assert_eq!(file.meta().chat_template, tok.meta().chat_template);
    for t in tok.tensors().iter().filter(|t| t.name.starts_with("tokenizer.")) {
        assert!(
            file.tensor(&t.name).unwrap().bytes == tok.tensor(&t.name).unwrap().bytes,
            "{}",
            t.name
        );
    }
    let qkv = file.tensor("blk.29.attn_qkv.weight").unwrap();
    assert_eq!(
        (qkv.info.dtype, qkv.info.shape.as_slice()),
        (DType::Q4_0, [960u64, 576].as_slice())
    );
    assert_eq!(file.tensor("token_embd.weight").unwrap().info.dtype, DType::Q8_0);
    assert!(file.get("output.weight").is_none(), "SmolLM2 ties its embeddings");
}
