//! The decoder against Hugging Face transformers: the tiny random Llama (Llama 3 RoPE
//! scaling, GQA, untied) and Qwen2 (q/k/v biases, tied) models converted from safetensors,
//! and the Llama converted from llama.cpp's GGUF, reproduce transformers' logits.

mod common;

use std::path::Path;

use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};
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
    let opts = SessionOptions {
        batch,
        threads: Some(2),
        kv_type: KvType::F32,
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
    }
    // Quantized: budgets on the relative L2 error of each position's logits. Untrained random
    // weights have no redundancy, so quantization error passes straight through: measured
    // worst cases are f16 0.0023, q8_0 0.059, q4_1 0.46, q4_0 0.46 (4-bit steps are ~9% of a
    // random weight). Quantized quality is judged on SmolLM2's perplexity (real_models.rs);
    // these bounds catch a broken type (an unscaled or misplaced block is off by 100%+).
    for (quant, budget) in [("f16", 0.005), ("q8_0", 0.08), ("q4_1", 0.6), ("q4_0", 0.6)] {
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
