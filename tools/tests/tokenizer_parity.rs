//! Parity of the built-in tokenizers with the references: llama.cpp's tokenizer test vectors
//! (ids from Hugging Face `tokenizers`) and the committed fixtures of `tests/fixtures/tokenizer`.
//! Run with `cargo test --release -p edgelm-tools --test tokenizer_parity`.

mod tokenizer_support;

use edgelm::tokenizer::{EncodeOptions, Tokenizer};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::tokenizer_import::{from_gguf, from_hf_folder};
use serde_json::Value;
use tokenizer_support::*;

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

fn text_only() -> EncodeOptions {
    EncodeOptions {
        add_special: false,
        ..EncodeOptions::default()
    }
}

/// Checks `ggml-vocab-{name}.gguf` against its `.inp`/`.out` vectors; returns how many passed.
fn llama_cpp_vectors(name: &str, round_trip: bool) -> usize {
    let Some(path) = ggml_vocab(name) else { return 0 };
    let tok = tokenizer(&from_gguf(&Gguf::open(&path).unwrap()).unwrap());
    let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
    let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
    // Every input ends with the separator; each .out line holds the ids (without BOS).
    let inputs: Vec<&str> = inp.strip_suffix(SEPARATOR).unwrap().split(SEPARATOR).collect();
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), expected.len(), "{name}: .inp and .out disagree");
    assert!(inputs.len() >= 40, "{name}: only {} vectors", inputs.len());
    let mut failures = Vec::new();
    for (text, want) in inputs.iter().zip(&expected) {
        let got = tok.encode(text, text_only()).unwrap();
        if &got != want {
            failures.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
        }
        if round_trip {
            assert_eq!(
                String::from_utf8_lossy(&tok.decode(&got)),
                *text,
                "{name}: round trip"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} differ:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    inputs.len()
}

#[test]
fn llama_cpp_llama_spm() {
    llama_cpp_vectors("llama-spm", false);
}

#[test]
fn llama_cpp_llama_bpe() {
    llama_cpp_vectors("llama-bpe", true);
}

#[test]
fn llama_cpp_qwen2() {
    llama_cpp_vectors("qwen2", true);
}

#[test]
fn llama_cpp_gpt2() {
    llama_cpp_vectors("gpt-2", true);
}

#[test]
fn llama_cpp_bert_bge() {
    llama_cpp_vectors("bert-bge", false);
}

fn fixture(name: &str) -> Vec<Value> {
    let path = fixtures().join("tokenizer").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_array().unwrap().clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect()
}

/// Byte-level fixtures: ids with special tokens parsed and as text, and exact decoding.
fn byte_level_fixture(tok: &Tokenizer, name: &str) {
    let mut failures = Vec::new();
    for e in fixture(name) {
        let (case, text) = (e["name"].as_str().unwrap(), e["text"].as_str().unwrap());
        let parsed = tok.encode(text, text_only()).unwrap();
        let plain = EncodeOptions {
            parse_special: false,
            ..text_only()
        };
        let as_text = tok.encode(text, plain).unwrap();
        if parsed != ids(&e["ids"]) {
            failures.push(format!("{case}: got {parsed:?}\n  want {:?}", ids(&e["ids"])));
        }
        if as_text != ids(&e["ids_specials_as_text"]) {
            failures.push(format!("{case} (specials as text): got {as_text:?}"));
        }
        assert_eq!(tok.decode(&parsed), text.as_bytes(), "{name} {case}: round trip");
        assert_eq!(
            tok.decode(&parsed),
            e["decoded"].as_str().unwrap().as_bytes(),
            "{name} {case}: decoded"
        );
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn smollm2_fixture() {
    let Some(path) = smollm2_gguf() else { return };
    let tok = tokenizer(&from_gguf(&Gguf::open(&path).unwrap()).unwrap());
    byte_level_fixture(&tok, "smollm2");
}

#[test]
fn tiny_llama_fixture() {
    let tok = tokenizer(&from_hf_folder(&fixtures().join("tiny-llama")).unwrap());
    byte_level_fixture(&tok, "tiny-llama");
}

#[test]
fn minilm_fixture() {
    let Some(dir) = minilm_dir() else { return };
    let tok = tokenizer(&from_hf_folder(&dir).unwrap());
    let max_length = tok.max_length();
    assert_eq!(max_length, Some(256));
    let mut failures = Vec::new();
    for e in fixture("minilm") {
        let (case, text) = (e["name"].as_str().unwrap(), e["text"].as_str().unwrap());
        let with = tok
            .encode(
                text,
                EncodeOptions {
                    max_length,
                    ..EncodeOptions::default()
                },
            )
            .unwrap();
        let without = tok
            .encode(
                text,
                EncodeOptions {
                    max_length,
                    ..text_only()
                },
            )
            .unwrap();
        if with != ids(&e["ids"]) {
            failures.push(format!("{case}: got {with:?}\n  want {:?}", ids(&e["ids"])));
        }
        if without != ids(&e["ids_no_special"]) {
            failures.push(format!("{case} (no special): got {without:?}"));
        }
    }
    assert!(failures.is_empty(), "minilm:\n{}", failures.join("\n"));
}
