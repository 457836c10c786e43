//! Encoding speed on a prompt of a few thousand tokens (release builds only: `cargo test
//! --release -p edgelm-tools --test tokenizer_speed -- --nocapture` prints the figures).

mod tokenizer_support;

use std::time::{Duration, Instant};

use edgelm::tokenizer::{EncodeOptions, Tokenizer};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::tokenizer_import::from_gguf;
use tokenizer_support::*;

/// A mixed prompt: the tokenizer corpus (prose in several scripts, code, digits, whitespace),
/// repeated.
fn prompt() -> String {
    let corpus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tokenizer/corpus.json")).unwrap())
            .unwrap();
    let texts: Vec<&str> = corpus["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    texts.join("\n").repeat(3)
}

/// The fastest of several encodes, and the number of tokens.
fn time(tok: &Tokenizer, text: &str) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..20 {
        let start = Instant::now();
        n = tok.encode(text, EncodeOptions::default()).unwrap().len();
        best = best.min(start.elapsed());
    }
    (best, n)
}

/// Loads the tokenizer of `import` through a packed file, printing how long loading took.
fn load(name: &str, import: &edgelm_tools::tokenizer_import::TokenizerImport) -> Tokenizer {
    let file = pack(import);
    let start = Instant::now();
    let tok = Tokenizer::from_packed(&file).unwrap();
    eprintln!("{name}: loaded in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    tok
}

fn check(name: &str, tok: &Tokenizer) {
    let text = prompt();
    let (t, n) = time(tok, &text);
    eprintln!(
        "{name}: {n} tokens ({} bytes) in {:.2} ms",
        text.len(),
        t.as_secs_f64() * 1e3
    );
    assert!(
        n > 2000,
        "{name}: the prompt should be a few thousand tokens, is {n}"
    );
    if !cfg!(debug_assertions) {
        assert!(t < Duration::from_millis(10), "{name}: {n} tokens took {t:?}");
    }
}

#[test]
fn smollm2_encodes_a_long_prompt_fast() {
    let Some(path) = smollm2_gguf() else { return };
    check(
        "smollm2",
        &tokenizer(&from_gguf(&Gguf::open(&path).unwrap()).unwrap()),
    );
}

#[test]
fn llama3_and_spm_encode_a_long_prompt_fast() {
    for name in ["llama-bpe", "llama-spm", "qwen2"] {
        let Some(path) = ggml_vocab(name) else { continue };
        check(
            name,
            &load(name, &from_gguf(&Gguf::open(&path).unwrap()).unwrap()),
        );
    }
}
