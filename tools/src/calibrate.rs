//! Calibration: the importance of each input channel of each weight matrix, measured by
//! running the model (the edgelm runtime, at f16) over a text and averaging the square of
//! every product's input per channel (what llama.cpp's `llama-imatrix` computes). The
//! quantizers weight each column's squared error by it, which approximates the error the
//! product's output gets.
//!
//! Without a calibration text, [`data_free_importance`] estimates it from the weights alone.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use edgelm::batch::{BatchDecoder, Logits, Product, ProductObserver, Span};
use edgelm::format::{DType, PackedFile};
use edgelm::session::SessionOptions;
use edgelm::tokenizer::EncodeOptions;

use crate::convert::convert_to_bytes;
use crate::dequant::dequantize;
use crate::plan::{Options, Target, expected};
use crate::source::{Model, SourceKind};
use crate::tokenizer_import::TokenizerImport;

/// Per weight matrix (packed source name, e.g. `blk.0.attn_q.weight`): the mean squared
/// activation of each input channel (column).
pub type Importance = HashMap<String, Vec<f32>>;

/// What a calibration read.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// The importance of every matrix the text reached.
    pub importance: Importance,
    /// Windows run.
    pub windows: usize,
    /// Tokens run.
    pub tokens: usize,
}

/// Sums of squares per product input.
#[derive(Default)]
struct Collector {
    sums: HashMap<(Option<usize>, Product), (Vec<f64>, u64)>,
}

impl ProductObserver for Collector {
    fn input(&mut self, layer: Option<usize>, product: Product, x: &[f32], rows: usize) {
        let cols = x.len() / rows.max(1);
        let (sum, count) = self
            .sums
            .entry((layer, product))
            .or_insert_with(|| (vec![0.0; cols], 0));
        for row in x.chunks_exact(cols) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v) * f64::from(v);
            }
        }
        *count += rows as u64;
    }
}

/// The weight matrices that read the input of `product` in block `layer`.
fn readers(layer: Option<usize>, product: Product, tied: bool) -> Vec<String> {
    let kinds: &[&str] = match product {
        Product::Qkv => &["attn_q", "attn_k", "attn_v"],
        Product::AttnOut => &["attn_output"],
        Product::GateUp => &["ffn_gate", "ffn_up"],
        Product::Down => &["ffn_down"],
        Product::Output => &[if tied { "token_embd" } else { "output" }],
    };
    kinds
        .iter()
        .map(|k| match layer {
            Some(l) => format!("blk.{l}.{k}.weight"),
            None => format!("{k}.weight"),
        })
        .collect()
}

/// Runs `model` over `text` in windows of `ctx` tokens (each starting with BOS where the
/// model adds one, as llama-imatrix does) and returns the importance of its matrices.
pub fn calibrate(model: &Model, tokenizer: &TokenizerImport, text: &str, ctx: usize) -> Result<Calibration> {
    ensure!(ctx >= 2, "calibration windows of {ctx} tokens are too short");
    // The weights at f16 (exact for f16 sources), in memory.
    let f16 = Options {
        quant: Target::Type(DType::F16),
        embed: Some(Target::Type(DType::F16)),
        ..Options::default()
    };
    let (bytes, _) = convert_to_bytes(model, tokenizer, &f16).context("preparing the calibration model")?;
    let runtime = edgelm::model::Model::from_packed(PackedFile::from_bytes(&bytes)?)?;
    drop(bytes);
    let plain = EncodeOptions {
        add_special: false,
        parse_special: false,
        max_length: None,
    };
    let tokens = runtime.tokenizer().encode(text, plain)?;
    let windows = tokens.len() / ctx;
    ensure!(
        windows > 0,
        "the calibration text has {} tokens, fewer than one window of {ctx}",
        tokens.len()
    );
    let spec = &runtime.meta().tokenizer;
    let bos = spec.bos.filter(|_| spec.add_bos);
    let opts = SessionOptions {
        context: Some(ctx),
        batch: ctx,
        ..SessionOptions::default()
    };
    let mut decoder = BatchDecoder::new(&runtime, &opts)?;
    let mut seqs = vec![decoder.sequence(ctx)?];
    let mut collector = Collector::default();
    let mut window = vec![0; ctx];
    for chunk in tokens.chunks_exact(ctx) {
        window.copy_from_slice(chunk);
        if let Some(bos) = bos {
            window[0] = bos;
        }
        seqs[0].truncate(0);
        let span = [Span { seq: 0, len: ctx }];
        decoder.forward_observed(&mut seqs, &window, &span, Logits::All, Some(&mut collector))?;
    }
    let tied = model.config.tied_embeddings;
    let mut importance = Importance::new();
    for ((layer, product), (sum, count)) in collector.sums {
        let mean: Vec<f32> = sum.iter().map(|s| (s / count as f64) as f32).collect();
        for name in readers(layer, product, tied) {
            importance.insert(name, mean.clone());
        }
    }
    Ok(Calibration {
        importance,
        windows,
        tokens: windows * ctx,
    })
}

/// A source tensor's values as f32 (the Hugging Face `(1 + w)` norms with the 1 added).
fn source_values(model: &Model, name: &str, plus_one: bool) -> Result<Option<Vec<f32>>> {
    let Some(src) = model.tensors.get(name) else {
        return Ok(None);
    };
    let mut v = vec![0.0; src.numel()];
    dequantize(src.ty, &model.bytes(src), &mut v).with_context(|| format!("tensor {}", src.native))?;
    if plus_one && model.kind == SourceKind::HuggingFace {
        v.iter_mut().for_each(|x| *x += 1.0);
    }
    Ok(Some(v))
}

/// `Σ_j W[r, j]² · g[j]` for each row `r`: the variance of output `r` for inputs of variance `g`.
fn propagate(w: &[f32], g: &[f32]) -> Vec<f32> {
    w.chunks_exact(g.len())
        .map(|row| row.iter().zip(g).map(|(w, g)| w * w * g).sum())
        .collect()
}

/// The data-free importance, from the weights alone: a matrix that reads `rms_norm(x) · g`
/// gets `g²` per channel (the normalized residual's channels have comparable scale); the
/// attention output projection gets the variance of the value channels it reads
/// (`Σ_j W_v[c, j]² g_j²`), the down projection the product of the gate's and the up
/// projection's output variances.
pub fn data_free_importance(model: &Model) -> Result<Importance> {
    let c = &model.config;
    let mut importance = Importance::new();
    let plus_one = |name: &str| expected(c).iter().any(|e| e.name == name && e.hf_plus_one);
    let norm = |name: &str| -> Result<Option<Vec<f32>>> {
        Ok(source_values(model, name, plus_one(name))?.map(|g| g.iter().map(|v| v * v).collect()))
    };
    for l in 0..c.num_layers {
        let blk = |k: &str| format!("blk.{l}.{k}.weight");
        if let Some(g) = norm(&blk("attn_norm"))? {
            if let Some(wv) = source_values(model, &blk("attn_v"), false)? {
                let v = propagate(&wv, &g);
                let group = c.num_heads / c.num_kv_heads.max(1);
                let hd = c.head_dim;
                let o: Vec<f32> = (0..c.num_heads * hd)
                    .map(|i| v[(i / hd / group) * hd + i % hd])
                    .collect();
                importance.insert(blk("attn_output"), o);
            }
            for name in readers(Some(l), Product::Qkv, false) {
                importance.insert(name, g.clone());
            }
        }
        if let Some(g) = norm(&blk("ffn_norm"))? {
            let gate = source_values(model, &blk("ffn_gate"), false)?;
            let up = source_values(model, &blk("ffn_up"), false)?;
            if let (Some(gate), Some(up)) = (gate, up) {
                let (gate, up) = (propagate(&gate, &g), propagate(&up, &g));
                importance.insert(
                    blk("ffn_down"),
                    gate.iter().zip(&up).map(|(a, b)| a * b).collect(),
                );
            }
            for name in readers(Some(l), Product::GateUp, false) {
                importance.insert(name, g.clone());
            }
        }
    }
    if let Some(g) = norm("output_norm.weight")? {
        for name in readers(None, Product::Output, c.tied_embeddings) {
            importance.insert(name, g.clone());
        }
    }
    Ok(importance)
}
