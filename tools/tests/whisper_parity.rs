//! Whisper against Hugging Face transformers: a tiny random Whisper converted from safetensors
//! (`tests/fixtures/make_tiny_whisper.py`) reproduces transformers' encoder output and the
//! decoder's logits at every position of a prompt, and the real Whisper base converted from
//! faster-whisper's CTranslate2 folder reproduces the logits transformers computes with the same
//! weights on the JFK sample (`tests/fixtures/make_whisper_base_reference.py`).

mod common;

use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::whisper::{Whisper, WhisperOptions};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row.iter().map(|y| y.as_f64().unwrap() as f32).collect(),
            None => vec![x.as_f64().unwrap() as f32],
        })
        .collect()
}

/// Largest |a − b|, and ‖a − b‖ / ‖b‖.
fn errors(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    let err: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (worst, (err / b.iter().map(|y| y * y).sum::<f32>()).sqrt())
}

/// Encoder output and per-position logits of `model` against the reference; returns the
/// worst (max |Δ|, relative error) of each.
fn compare(model: &Model, reference: &Value, kv_type: KvType, threads: usize) -> ((f32, f32), (f32, f32)) {
    let opts = WhisperOptions {
        threads: Some(threads),
        kv_type,
        ..Default::default()
    };
    let mut w = Whisper::new(model, &opts).unwrap();
    w.encode(&floats(&reference["mel"])).unwrap();
    let enc = errors(w.encoder_output(), &floats(&reference["encoder_output"]));
    let prompt = common::ids(&reference["prompt"]);
    let logits = &reference["logits"];
    let (mut worst, mut rel) = (0.0f32, 0.0f32);
    for (i, &token) in prompt.iter().enumerate() {
        let got = w.decode(&[token], i).unwrap();
        let (d, r) = errors(got, &floats(&logits[i]));
        (worst, rel) = (worst.max(d), rel.max(r));
    }
    // The whole prompt in one pass gives the last position's logits too.
    let last = prompt.len() - 1;
    let (d, r) = errors(w.decode(&prompt, 0).unwrap(), &floats(&logits[last]));
    (enc, (worst.max(d), rel.max(r)))
}

#[test]
fn tiny_whisper_matches_transformers() {
    let dir = common::fixtures().join("tiny-whisper");
    let reference = common::fixture_json("tiny-whisper/reference.json");
    let f32_model = Model::from_packed(common::convert_path(&dir, "f32")).unwrap();
    let w = f32_model.config().whisper.as_ref().unwrap();
    assert_eq!((w.n_mels, w.audio_ctx, w.tokens.timestamp_begin), (80, 32, 311));
    assert_eq!(w.alignment_heads, [(1, 0), (1, 1)]);
    for threads in [1, 2] {
        let ((enc, _), (logit, rel)) = compare(&f32_model, &reference, KvType::F32, threads);
        eprintln!(
            "f32, {threads} threads: encoder max |Δ| {enc:.2e}, logits max |Δ| {logit:.2e}, relative {rel:.2e}"
        );
        // f32 weights, activations and caches: reordered sums only.
        assert!(enc < 1e-4, "f32 encoder output, {threads} threads: max |Δ| {enc}");
        assert!(
            logit < 1e-4,
            "f32 logits, {threads} threads: max |Δlogit| {logit}"
        );
    }
    // As the decoder parity tests: f16 caches, then f16 / q8_0 / q4_0 weights.
    let (_, (_, rel)) = compare(&f32_model, &reference, KvType::F16, 2);
    eprintln!("f32 weights, f16 caches: relative logit error {rel:.2e}");
    assert!(rel < 0.005, "f32 weights, f16 caches: relative error {rel}");
    for (quant, budget) in [("f16", 0.005), ("q8_0", 0.08), ("q4_0", 0.6)] {
        let m = Model::from_packed(common::convert_path(&dir, quant)).unwrap();
        let ((_, enc), (_, rel)) = compare(&m, &reference, KvType::F16, 2);
        eprintln!("{quant}: relative error of the encoder output {enc:.2e}, of the logits {rel:.2e}");
        assert!(rel < budget, "{quant}: relative logit error {rel} over {budget}");
    }
}
