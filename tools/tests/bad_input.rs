//! Every class of bad input is rejected by `edgelm-convert` with its own message naming the
//! problem, and no output file (nor a temporary one) is left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures;
use safetensors::tensor::TensorView;
use serde_json::Value;

/// A copy of the tiny-llama folder to damage.
fn tiny_llama_copy(dir: &Path) -> PathBuf {
    let dst = dir.join("model");
    std::fs::create_dir(&dst).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixtures().join("tiny-llama").join(f), dst.join(f)).unwrap();
    }
    dst
}

/// Runs the converter, expects failure with `message` in its error, and no file in `out_dir`
/// besides what was there before.
fn rejects(input: &Path, message: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.edgelm");
    let result = Command::new(env!("CARGO_BIN_EXE_edgelm-convert"))
        .arg(input)
        .args(["-o", out.to_str().unwrap(), "-q", "q4_0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{} was accepted", input.display());
    assert!(stderr.contains(message), "expected {message:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Splits a safetensors file into its header JSON and data.
fn split_safetensors(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

/// Joins a header (as given, however wrong) and data into a safetensors file.
fn join_safetensors(header: &Value, data: &[u8]) -> Vec<u8> {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// Rewrites the model's safetensors file through `edit(name, dtype, shape, data)`, which may
/// drop a tensor (return `None`) or change its data.
fn rewrite_tensors(path: &Path, edit: impl Fn(&str, &mut Vec<u8>) -> bool) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut kept = Vec::new();
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if edit(&name, &mut data) {
            kept.push((name, view.dtype(), view.shape().to_vec(), data));
        }
    }
    let views: Vec<(String, TensorView)> = kept
        .iter()
        .map(|(n, d, s, data)| (n.clone(), TensorView::new(*d, s.clone(), data).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Byte offset of the type code of tensor `name` in a GGUF file's tensor directory.
fn gguf_type_offset(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend(name.as_bytes());
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("tensor in directory")
        + key.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    at + 4 + 8 * n_dims
}

#[test]
fn truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixtures().join("tiny-llama-gguf/f32.gguf")).unwrap();
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    rejects(&path, "runs past the end of the file");
    std::fs::write(&path, &bytes[..2000]).unwrap();
    rejects(
        &path,
        "GGUF array length of \"tokenizer.ggml.tokens\" 400 cannot fit",
    );
    std::fs::write(&path, &bytes[..20]).unwrap();
    rejects(&path, "truncated GGUF: metadata count at byte 16");
}

#[test]
fn unknown_gguf_tensor_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixtures().join("tiny-llama-gguf/f32.gguf")).unwrap();
    let at = gguf_type_offset(&bytes, "blk.1.attn_v.weight");
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let path = dir.path().join("odd.gguf");
    std::fs::write(&path, &bytes).unwrap();
    rejects(
        &path,
        "tensor blk.1.attn_v.weight has type ggml type 99, which edgelm-convert cannot read",
    );
}

#[test]
fn truncated_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    let st = model.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() - 100]).unwrap();
    rejects(
        &model,
        "model.safetensors is not a valid safetensors file: incomplete metadata",
    );
    std::fs::write(&st, &bytes[..100]).unwrap();
    rejects(
        &model,
        "model.safetensors is not a valid safetensors file: invalid header length",
    );
}

#[test]
fn safetensors_header_that_lies() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    let st = model.join("model.safetensors");
    let (mut header, data) = split_safetensors(&std::fs::read(&st).unwrap());
    // A shape that needs more bytes than the entry's offsets give.
    header["model.layers.0.mlp.up_proj.weight"]["shape"] = serde_json::json!([128, 65]);
    std::fs::write(&st, join_safetensors(&header, &data)).unwrap();
    rejects(
        &model,
        "tensor \"model.layers.0.mlp.up_proj.weight\" is F32 [128, 65] (33280 bytes)",
    );
    // Offsets that overlap the previous tensor.
    let (mut header, data) =
        split_safetensors(&std::fs::read(fixtures().join("tiny-llama/model.safetensors")).unwrap());
    header["model.norm.weight"]["data_offsets"] = serde_json::json!([0, 256]);
    std::fs::write(&st, join_safetensors(&header, &data)).unwrap();
    rejects(&model, "invalid offset for tensor");
    // Offsets past the end of the data.
    let (mut header, data) =
        split_safetensors(&std::fs::read(fixtures().join("tiny-llama/model.safetensors")).unwrap());
    let last = header
        .as_object()
        .unwrap()
        .values()
        .filter_map(|e| e["data_offsets"][1].as_u64())
        .max()
        .unwrap();
    let name = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, e)| e["data_offsets"][1] == last)
        .unwrap()
        .0
        .clone();
    header[&name]["data_offsets"][1] = serde_json::json!(last + 4096);
    std::fs::write(&st, join_safetensors(&header, &data)).unwrap();
    rejects(&model, "not a valid safetensors file");
}

#[test]
fn unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    edit_json(&model.join("config.json"), |v| {
        v["model_type"] = "gpt_neox".into()
    });
    rejects(
        &model,
        "unsupported architecture \"gpt_neox\" (edgelm supports: llama, qwen2, qwen3, phi3, gemma3, bert, whisper)",
    );
}

#[test]
fn missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    rewrite_tensors(&model.join("model.safetensors"), |name, _| {
        name != "model.layers.1.mlp.up_proj.weight"
    });
    rejects(
        &model,
        "missing tensor blk.1.ffn_up.weight (model.layers.1.mlp.up_proj.weight)",
    );
}

#[test]
fn wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    edit_json(&model.join("config.json"), |v| v["intermediate_size"] = 96.into());
    rejects(
        &model,
        "tensor blk.0.ffn_gate.weight (model.layers.0.mlp.gate_proj.weight) has shape [128, 64], expected [96, 64]",
    );
}

#[test]
fn absurd_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    edit_json(&model.join("config.json"), |v| {
        v["num_hidden_layers"] = (1u64 << 40).into()
    });
    rejects(&model, "layer count 1099511627776 is out of range");
    edit_json(&model.join("config.json"), |v| {
        v["num_hidden_layers"] = "two".into()
    });
    rejects(
        &model,
        "config.json \"num_hidden_layers\" is not a non-negative integer",
    );
    std::fs::write(model.join("config.json"), b"{\"model_type\": ").unwrap();
    rejects(&model, "config.json is not valid JSON");
}

#[test]
fn bad_values_fail_mid_write_without_leaving_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama_copy(dir.path());
    rewrite_tensors(&model.join("model.safetensors"), |name, data| {
        if name == "lm_head.weight" {
            data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
        true
    });
    // lm_head is the last tensor written: the packed file is nearly complete when this fails.
    rejects(
        &model,
        "converting tensor output.weight: contains NaN or infinite values",
    );
}

#[test]
fn not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    rejects(&path, "is neither a Hugging Face model folder nor a GGUF file");
    rejects(dir.path(), "has no config.json: not a Hugging Face model folder");
    rejects(&dir.path().join("absent"), "does not exist");
}
