//! Encoding a prompt of a few thousand tokens (the tokenizer corpus: prose in several scripts,
//! code, digits, whitespace, three times over) with SmolLM2's tokenizer and llama.cpp's test
//! vocabularies (Llama 3 BPE, Llama SentencePiece, Qwen2), and loading each tokenizer from a
//! packed file. Tokenizers whose files are not in `~/.cache/edgelm/models`
//! (`tools/fetch-models.sh`) are skipped.
//!
//!     cargo bench -p edgelm-tools --bench tokenize

#[path = "../tests/tokenizer_support/mod.rs"]
mod tokenizer_support;

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgelm::tokenizer::{EncodeOptions, Tokenizer};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::tokenizer_import::from_gguf;
use tokenizer_support::*;

/// The corpus's texts joined, three times over.
fn prompt() -> String {
    let path = fixtures().join("tokenizer/corpus.json");
    let corpus: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let texts: Vec<&str> = corpus["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    texts.join("\n").repeat(3)
}

fn tokenizers() -> Vec<(&'static str, PathBuf)> {
    let mut found: Vec<_> = smollm2_gguf().map(|p| ("smollm2", p)).into_iter().collect();
    for name in ["llama-bpe", "llama-spm", "qwen2"] {
        found.extend(ggml_vocab(name).map(|p| (name, p)));
    }
    found
}

fn tokenize(c: &mut Criterion) {
    let text = prompt();
    let files: Vec<_> = tokenizers()
        .into_iter()
        .map(|(name, path)| (name, pack(&from_gguf(&Gguf::open(&path).unwrap()).unwrap())))
        .collect();
    let mut load = c.benchmark_group("load");
    for (name, file) in &files {
        load.bench_function(*name, |b| {
            b.iter(|| Tokenizer::from_packed(black_box(file)).unwrap())
        });
    }
    load.finish();
    let mut encode = c.benchmark_group("encode");
    encode.throughput(Throughput::Bytes(text.len() as u64));
    for (name, file) in &files {
        let tok = Tokenizer::from_packed(file).unwrap();
        let tokens = tok.encode(&text, EncodeOptions::default()).unwrap().len();
        encode.bench_function(format!("{name}/{tokens}-tokens"), |b| {
            b.iter(|| tok.encode(black_box(&text), EncodeOptions::default()).unwrap())
        });
    }
    encode.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
