//! tiny-qwen3, tiny-phi3, tiny-gemma3 and tiny-llama32 from the GGUF files llama.cpp's converter
//! made of them (tests/fixtures/make_tiny_ggufs.py): the configuration read from the GGUF is the
//! one read from the Hugging Face folder, and the model reproduces transformers' logits.
//!
//! What a GGUF cannot carry: Gemma 3's `layer_types` and `query_pre_attn_scalar`. llama.cpp's
//! converter writes neither; llama.cpp (and edgelm's GGUF reader after it) assumes five
//! sliding-window layers then one global and a `head_dim^-1/2` attention scale. The tiny model
//! has layers sliding, sliding, global and scale 24^-1/2, so for it those two fields are checked
//! to hold llama.cpp's assumptions and then set from the Hugging Face configuration.

mod common;

use std::path::Path;

use edgelm::format::PackedFile;
use edgelm::format::meta::ModelConfig;
use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};
use edgelm_tools::convert::{Input, convert_to_bytes, load};
use serde_json::Value;

struct Case {
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

fn reference(dir: &str) -> Vec<Case> {
    let path = common::fixtures().join(dir).join("reference.json");
    let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Case {
            ids: p["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            logits: p["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    row.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect()
                })
                .collect(),
        })
        .collect()
}

/// Largest |a - b| over all logits of all positions of `case`.
fn max_error(model: &Model, case: &Case, batch: usize) -> f32 {
    let opts = SessionOptions {
        batch,
        threads: Some(2),
        kv_type: KvType::F32,
        ..Default::default()
    };
    let mut s = Session::new(model, &opts).unwrap();
    let mut worst = 0.0f32;
    s.feed_all(&case.ids, |i, logits| {
        worst = logits
            .iter()
            .zip(&case.logits[i])
            .fold(worst, |m, (a, b)| m.max((a - b).abs()));
    })
    .unwrap();
    worst
}

/// Converts `gguf` to f32 after `fix` has had its say on the configuration read from it.
fn convert_gguf(gguf: &Path, fix: impl FnOnce(&mut ModelConfig)) -> PackedFile {
    let (mut model, tok) = load(&Input::Path(gguf.to_owned())).unwrap();
    fix(&mut model.config);
    let (bytes, _) = convert_to_bytes(&model, &tok, &common::options("f32")).unwrap();
    PackedFile::from_bytes(&bytes).unwrap()
}

fn check(arch: &str, fix: impl FnOnce(&mut ModelConfig, &ModelConfig)) {
    let dir = format!("tiny-{arch}");
    let hf = common::convert_path(&common::fixtures().join(&dir), "f32");
    let want = hf.meta().config.clone();
    let gguf = common::fixtures().join(format!("tiny-arch-gguf/{arch}.f32.gguf"));
    let packed = convert_gguf(&gguf, |c| fix(c, &want));
    assert_eq!(
        packed.meta().config,
        want,
        "{arch}: GGUF and Hugging Face configurations"
    );
    let model = Model::from_packed(packed).unwrap();
    for case in &reference(&dir) {
        for batch in [1, 64] {
            let d = max_error(&model, case, batch);
            eprintln!(
                "{arch}: {} tokens, batch {batch}: max |Δlogit| {d}",
                case.ids.len()
            );
            assert!(
                d < 1e-4,
                "{arch} GGUF, prompt of {} tokens, batch {batch}: max |Δlogit| {d}",
                case.ids.len()
            );
        }
    }
}

#[test]
fn qwen3_gguf_matches_transformers() {
    check("qwen3", |_, _| {});
}

#[test]
fn phi3_gguf_matches_transformers() {
    check("phi3", |_, _| {});
}

#[test]
fn llama32_gguf_matches_transformers() {
    check("llama32", |_, _| {});
}

#[test]
fn gemma3_gguf_matches_transformers() {
    check("gemma3", |c, want| {
        // llama.cpp's assumptions for 3 layers: pattern 6 makes all of them sliding.
        assert_eq!(c.attention.sliding_layers, [true, true, true]);
        assert_eq!(c.attention.scale, None);
        assert_eq!(want.attention.sliding_layers, [true, true, false]);
        c.attention.sliding_layers = want.attention.sliding_layers.clone();
        c.attention.scale = want.attention.scale;
    });
}
