//! Small random decoder models built in memory, for tests that need a model but no
//! reference outputs (consistency, errors, allocation counting).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edgelm::format::meta::*;
use edgelm::format::writer::to_bytes;
use edgelm::format::{DType, Layout, PackedFile, TensorPlan};
use edgelm::kernels::layout::{BlockQ4_0, BlockQ8_0, QK, QuantBlock, TILE_ROWS, pack_tiles};
use edgelm::model::Model;
use edgelm_tools::convert::{Input, convert_to_bytes, load};
use edgelm_tools::plan::{Options, Target};
use half::f16;
use zerocopy::{FromZeros, Immutable, IntoBytes};

/// Shape and types of a random test model.
#[derive(Clone, Debug)]
pub struct Tiny {
    pub hidden: usize,
    pub ff: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub weights: DType,
    pub qkv_bias: bool,
    pub tied: bool,
    pub chat_template: Option<String>,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny {
            hidden: 64,
            ff: 96,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
            vocab: 264,
            ctx: 96,
            weights: DType::F32,
            qkv_bias: false,
            tied: false,
            chat_template: None,
        }
    }
}

/// Deterministic pseudo-random values in [-scale, scale).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn quant_q8(row: &[f32]) -> Vec<BlockQ8_0> {
    row.chunks(QK)
        .map(|c| {
            let d = c.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            BlockQ8_0 {
                d: f16::from_f32(d).to_bits(),
                qs: std::array::from_fn(|j| (c[j] * id).round() as i8),
            }
        })
        .collect()
}

fn quant_q4(row: &[f32]) -> Vec<BlockQ4_0> {
    row.chunks(QK)
        .map(|c| {
            let max = c
                .iter()
                .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
            BlockQ4_0 {
                d: f16::from_f32(d).to_bits(),
                qs: std::array::from_fn(|j| q(c[j]) | (q(c[j + 16]) << 4)),
            }
        })
        .collect()
}

/// The `rows × cols` matrix `w`, each row quantized by `quant`, packed in tiles of [`TILE_ROWS`] rows.
fn tiled<B: QuantBlock>(w: &[f32], rows: usize, cols: usize, quant: fn(&[f32]) -> Vec<B>) -> (Layout, Vec<u8>)
where
    B::Tile: FromZeros + IntoBytes + Immutable,
{
    let blocks: Vec<B> = w.chunks(cols).flat_map(quant).collect();
    let mut tiles = vec![B::Tile::new_zeroed(); rows.div_ceil(TILE_ROWS) * cols / QK];
    pack_tiles(&blocks, cols / QK, &mut tiles);
    (Layout::Tiled8, tiles.as_bytes().to_vec())
}

/// A matrix tensor of the requested type.
fn matrix(name: &str, rows: usize, cols: usize, ty: DType, noise: &mut Noise) -> (TensorPlan, Vec<u8>) {
    let w = noise.vec(rows * cols, 0.3);
    let shape = vec![rows as u64, cols as u64];
    let (layout, data) = match ty {
        DType::F32 => (Layout::RowMajor, f32_bytes(&w)),
        DType::F16 => (
            Layout::RowMajor,
            w.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        ),
        DType::Q8_0 => tiled(&w, rows, cols, quant_q8),
        DType::Q4_0 => tiled(&w, rows, cols, quant_q4),
        other => panic!("test models do not use {other}"),
    };
    (
        TensorPlan {
            name: name.into(),
            dtype: ty,
            layout,
            shape,
        },
        data,
    )
}

fn vector(name: &str, v: Vec<f32>) -> (TensorPlan, Vec<u8>) {
    let plan = TensorPlan {
        name: name.into(),
        dtype: DType::F32,
        layout: Layout::RowMajor,
        shape: vec![v.len() as u64],
    };
    (plan, f32_bytes(&v))
}

/// Byte-level tokenizer tables: the 256 bytes, then a few special tokens.
fn tokenizer_tensors(vocab: usize) -> (TokenizerSpec, Vec<(TensorPlan, Vec<u8>)>) {
    let mut bytes = Vec::new();
    let mut offsets = vec![0u32];
    let mut kinds = Vec::new();
    for i in 0..vocab {
        if i < 256 {
            bytes.push(i as u8);
            kinds.push(TokenKind::Normal as u8);
        } else {
            bytes.extend_from_slice(format!("<|s{i}|>").as_bytes());
            kinds.push(TokenKind::Special as u8);
        }
        offsets.push(bytes.len() as u32);
    }
    let plan = |name: &str, dtype, n: usize| TensorPlan {
        name: name.into(),
        dtype,
        layout: Layout::RowMajor,
        shape: vec![n as u64],
    };
    let spec = TokenizerSpec {
        bos: Some(256),
        eos: Some(257),
        add_bos: true,
        stop_tokens: vec![257],
        ..TokenizerSpec::new(TokenizerModel::BpeByteLevel, vocab)
    };

    let tensors = vec![
        (plan(tok_tensor::VOCAB, DType::U8, bytes.len()), bytes),
        (
            plan(tok_tensor::VOCAB_OFFSETS, DType::U32, offsets.len()),
            offsets.as_bytes().to_vec(),
        ),
        (plan(tok_tensor::KINDS, DType::U8, kinds.len()), kinds),
    ];
    (spec, tensors)
}

impl Tiny {
    /// The packed file bytes.
    pub fn bytes(&self, seed: u64) -> Vec<u8> {
        let mut noise = Noise(seed);
        let (h, hd) = (self.hidden, self.head_dim);
        let qkv_rows = (self.heads + 2 * self.kv_heads) * hd;
        let (spec, mut tensors) = tokenizer_tensors(self.vocab);
        tensors.push(matrix(
            "token_embd.weight",
            self.vocab,
            h,
            self.weights,
            &mut noise,
        ));
        if !self.tied {
            tensors.push(matrix("output.weight", self.vocab, h, self.weights, &mut noise));
        }
        tensors.push(vector(
            "output_norm.weight",
            noise.vec(h, 0.2).iter().map(|v| 1.0 + v).collect(),
        ));
        for l in 0..self.layers {
            let n = |s: &str| format!("blk.{l}.{s}");
            tensors.push(vector(
                &n("attn_norm.weight"),
                noise.vec(h, 0.2).iter().map(|v| 1.0 + v).collect(),
            ));
            tensors.push(matrix(
                &n("attn_qkv.weight"),
                qkv_rows,
                h,
                self.weights,
                &mut noise,
            ));
            if self.qkv_bias {
                tensors.push(vector(&n("attn_qkv.bias"), noise.vec(qkv_rows, 0.2)));
            }
            tensors.push(matrix(
                &n("attn_output.weight"),
                h,
                self.heads * hd,
                self.weights,
                &mut noise,
            ));
            tensors.push(vector(
                &n("ffn_norm.weight"),
                noise.vec(h, 0.2).iter().map(|v| 1.0 + v).collect(),
            ));
            tensors.push(matrix(
                &n("ffn_gate_up.weight"),
                2 * self.ff,
                h,
                self.weights,
                &mut noise,
            ));
            tensors.push(matrix(
                &n("ffn_down.weight"),
                h,
                self.ff,
                self.weights,
                &mut noise,
            ));
        }
        let meta = Metadata {
            config: ModelConfig {
                architecture: if self.qkv_bias {
                    Architecture::Qwen2
                } else {
                    Architecture::Llama
                },
                vocab_size: self.vocab,
                hidden_size: h,
                intermediate_size: self.ff,
                num_layers: self.layers,
                num_heads: self.heads,
                num_kv_heads: self.kv_heads,
                head_dim: hd,
                max_context: self.ctx,
                norm: NormKind::Rms,
                norm_eps: 1e-5,
                rope: Some(Rope {
                    layout: RopeLayout::Neox,
                    theta: 10000.0,
                    dims: hd,
                    scaling: None,
                }),
                activation: Activation::Silu,
                qkv_bias: self.qkv_bias,
                attn_out_bias: false,
                mlp_bias: false,
                tied_embeddings: self.tied,
                type_vocab_size: 0,
                pooling: None,
                attention: Default::default(),
                final_softcap: None,
                whisper: None,
            },
            tokenizer: spec,
            chat_template: self.chat_template.clone(),
            source: SourceInfo {
                converter: "tests".into(),
                source: "random".into(),
                quant: self.weights.to_string(),
                name: None,
            },
        };
        to_bytes(&meta, &tensors).expect("valid test model")
    }

    /// The model.
    pub fn model(&self, seed: u64) -> Model {
        Model::from_packed(PackedFile::from_bytes(&self.bytes(seed)).expect("packed")).expect("model")
    }
}

/// The runner cargo was told to run this target's programs with (`qemu-aarch64 -cpu …` in
/// targets/aarch64/test.sh), if any: a test's child processes need it too.
pub fn runner() -> Option<Vec<String>> {
    let arch = std::env::consts::ARCH.to_uppercase();
    std::env::vars()
        .find(|(k, _)| k.starts_with(&format!("CARGO_TARGET_{arch}_")) && k.ends_with("_RUNNER"))
        .map(|(_, v)| v.split_whitespace().map(String::from).collect())
}

/// The `edgelm` command, through the runner if there is one.
pub fn command() -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_edgelm");
    match runner() {
        Some(r) => {
            let mut c = std::process::Command::new(&r[0]);
            c.args(&r[1..]).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    }
}

/// Runs `command` with `input` on its stdin (written from a thread, so a command that writes a
/// lot before reading all of it cannot block) and returns what it printed. A command that stops
/// reading early closes the pipe: that write error is left to the caller's checks of the output;
/// any other fails the test.
pub fn output_with_stdin(command: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || match stdin.write_all(&input) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
        _ => {}
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    out
}

/// `$EDGELM_MODELS/REL` (default `~/.cache/edgelm/models`) if it exists. A missing file skips the
/// test (with a note on stderr) unless `EDGELM_REQUIRE_MODELS` is set, in which case it fails.
pub fn fetched(rel: &str) -> Option<PathBuf> {
    let models = match std::env::var_os("EDGELM_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgelm/models"),
    };
    let path = models.join(rel);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("EDGELM_REQUIRE_MODELS").is_none(),
        "missing {} (run tools/fetch-models.sh)",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (run tools/fetch-models.sh)",
        path.display()
    );
    None
}

/// A source, its `--quant`, and the packed bytes.
type Converted = (PathBuf, String, Arc<Vec<u8>>);

/// Converts a model folder or GGUF file to a packed file in `dir`.
pub fn convert(input: &Path, quant: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}.{quant}.edgelm",
        input.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&out, &*packed(input, quant)).unwrap();
    out
}

/// The packed bytes of a model folder or GGUF file (each model converted once for all the tests).
pub fn packed(input: &Path, quant: &str) -> Arc<Vec<u8>> {
    static DONE: Mutex<Vec<Converted>> = Mutex::new(Vec::new());
    let find = |done: &[Converted]| {
        done.iter()
            .find(|(p, q, _)| p == input && q == quant)
            .map(|(_, _, b)| Arc::clone(b))
    };
    // Held while converting: another test waits for the same model instead of converting it too.
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = find(&done).unwrap_or_else(|| {
        let (model, tokenizer) = load(&Input::Path(input.to_owned())).unwrap();
        let options = Options {
            quant: quant.parse::<Target>().unwrap(),
            ..Options::default()
        };
        let bytes = Arc::new(convert_to_bytes(&model, &tokenizer, &options).unwrap().0);
        done.push((input.to_owned(), quant.to_owned(), Arc::clone(&bytes)));
        bytes
    });
    drop(done);
    bytes
}
