//! The decoder against Hugging Face transformers: tiny random models of every decoder
//! architecture converted from safetensors — Llama (Llama 3 RoPE scaling, GQA, untied),
//! Llama 3.2 style (tied), Qwen2 (q/k/v biases, tied), Qwen3 (q/k norms), Phi-3 (fused q/k/v
//! and gate/up), Gemma 3 (sandwich (1 + w) norms, GeGLU, sliding-window and global layers
//! with their own RoPE bases) — and the Llama converted from llama.cpp's GGUF reproduce
//! transformers' logits.

mod common;

use std::path::Path;

use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};
use edgelm_tools::source::hf_config;
use serde_json::Value;

struct Case {
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    greedy: Vec<u32>,
}

fn reference(dir: &str) -> Vec<Case> {
    let path = common::fixtures().join(dir).join("reference.json");
    let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ints = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect::<Vec<_>>()
    };
    let floats = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    };
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Case {
            ids: ints(&p["ids"]),
            logits: p["logits"].as_array().unwrap().iter().map(floats).collect(),
            greedy: ints(&p["greedy_new_ids"]),
        })
        .collect()
}

fn model(input: &Path, quant: &str) -> Model {
    Model::from_packed(common::convert_path(input, quant)).unwrap()
}

/// Largest |a - b| over all logits of all positions, and the largest relative L2 error
/// ‖a − b‖ / ‖b‖ of one position's logits.
fn errors(model: &Model, case: &Case, batch: usize) -> (f32, f32) {
    errors_with(model, case, batch, KvType::F32)
}

fn errors_with(model: &Model, case: &Case, batch: usize, kv_type: KvType) -> (f32, f32) {
    let opts = SessionOptions {
        batch,
        threads: Some(2),
        kv_type,
        ..Default::default()
    };
    let mut s = Session::new(model, &opts).unwrap();
    let (mut worst, mut rel) = (0.0f32, 0.0f32);
    s.feed_all(&case.ids, |i, logits| {
        let want = &case.logits[i];
        worst = logits
            .iter()
            .zip(want)
            .fold(worst, |m, (a, b)| m.max((a - b).abs()));
        let err: f32 = logits.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
        rel = rel.max((err / want.iter().map(|b| b * b).sum::<f32>()).sqrt());
    })
    .unwrap();
    (worst, rel)
}

fn greedy(model: &Model, prompt: &[u32], n: usize) -> Vec<u32> {
    let opts = SessionOptions {
        threads: Some(2),
        kv_type: KvType::F32,
        ..Default::default()
    };
    let mut s = Session::new(model, &opts).unwrap();
    let mut next = edgelm::sampling::argmax(s.feed(prompt).unwrap());
    let mut out = vec![next];
    while out.len() < n {
        next = edgelm::sampling::argmax(s.feed(&[next]).unwrap());
        out.push(next);
    }
    out
}

fn check(dir: &str, input: &Path) {
    check_with(dir, input, 1.0)
}

/// [`check`] with the quantized budgets multiplied by `slack`.
fn check_with(dir: &str, input: &Path, slack: f32) {
    let cases = reference(dir);
    let f32_model = model(input, "f32");
    for case in &cases {
        for batch in [1, 64] {
            let (d, _) = errors(&f32_model, case, batch);
            // Budget: f32 weights and activations, reordered sums only.
            assert!(
                d < 1e-4,
                "{dir} f32, prompt of {} tokens, batch {batch}: max |Δlogit| {d}",
                case.ids.len()
            );
        }
        assert_eq!(
            greedy(&f32_model, &case.ids, case.greedy.len()),
            case.greedy,
            "{dir} f32 greedy continuation"
        );
        // The f16 cache (and its blocked prompt path) rounds keys and values to 11 bits.
        let (_, rel) = errors_with(&f32_model, case, 64, KvType::F16);
        assert!(
            rel < 0.005,
            "{dir} f16 cache, prompt of {} tokens: relative error {rel}",
            case.ids.len()
        );
    }
    legacy_config_agrees(dir);
    // Quantized: budgets on the relative L2 error of each position's logits. Untrained random
    // weights have no redundancy, so quantization error passes straight through: measured
    // worst cases are f16 0.0023, q8_0 0.059, q4_1 0.46, q4_0 0.46 (4-bit steps are ~9% of a
    // random weight). Quantized quality is judged on SmolLM2's perplexity (real_models.rs);
    // these bounds catch a broken type (an unscaled or misplaced block is off by 100%+).
    for (quant, budget) in [("f16", 0.005), ("q8_0", 0.08), ("q4_1", 0.6), ("q4_0", 0.6)] {
        let budget = budget * slack;
        let m = model(input, quant);
        for case in &cases {
            let (_, rel) = errors(&m, case, 64);
            assert!(
                rel < budget,
                "{dir} {quant}, prompt of {} tokens: relative error {rel} over {budget}",
                case.ids.len()
            );
        }
    }
}

#[test]
fn tiny_llama_matches_transformers() {
    check("tiny-llama", &common::fixtures().join("tiny-llama"));
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check("tiny-qwen2", &common::fixtures().join("tiny-qwen2"));
}

/// The fixture's `config.legacy.json` (the pre-transformers-5 spelling) reads as the same model.
fn legacy_config_agrees(dir: &str) {
    let folder = common::fixtures().join(dir);
    let read = |name: &str| std::fs::read(folder.join(name)).unwrap();
    if folder.join("config.legacy.json").exists() {
        let (new, _) = hf_config::parse(&read("config.json")).unwrap();
        let (old, _) = hf_config::parse(&read("config.legacy.json")).unwrap();
        assert_eq!(new, old, "{dir}: config.json and config.legacy.json differ");
    }
}

#[test]
fn tiny_qwen3_matches_transformers() {
    // The per-head q/k norms rescale quantization error instead of letting it shrink with the
    // weights: measured worst cases over the three prompts are f16 0.0018, q8_0 0.072, q4_1
    // 0.40, q4_0 0.73 (20 tokens), so the quantized budgets get 1.5x.
    check_with("tiny-qwen3", &common::fixtures().join("tiny-qwen3"), 1.5);
}

#[test]
fn tiny_phi3_matches_transformers() {
    check("tiny-phi3", &common::fixtures().join("tiny-phi3"));
}

#[test]
fn tiny_llama32_matches_transformers() {
    check("tiny-llama32", &common::fixtures().join("tiny-llama32"));
}

#[test]
fn tiny_gemma3_matches_transformers() {
    // Window 4 over 20-token prompts: both the one-token (batch 1) and the blocked prompt
    // (batch 64) attention paths cut keys; 24^-½ attention scale; (1 + w) norms.
    check("tiny-gemma3", &common::fixtures().join("tiny-gemma3"));
}

#[test]
fn tiny_llama_from_llamacpp_gguf_matches_transformers() {
    let gguf = common::fixtures().join("tiny-llama-gguf/f32.gguf");
    let cases = reference("tiny-llama");
    let m = model(&gguf, "f32");
    for case in &cases {
        let (d, _) = errors(&m, case, 64);
        assert!(
            d < 1e-4,
            "GGUF copy, prompt of {} tokens: max |Δlogit| {d}",
            case.ids.len()
        );
    }
}
