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

/// The data-free importance, from the weights alone: a matrix that reads `rms_norm(x) · g`
/// gets `g²` per channel (the normalized residual's channels have comparable scale; the norm
/// weight sets what each contributes). The others (attention output, down projection) get none.
pub fn data_free_importance(model: &Model) -> Result<Importance> {
    let c = &model.config;
    let mut importance = Importance::new();
    let plus_one = |name: &str| expected(c).iter().any(|e| e.name == name && e.hf_plus_one);
    let norm = |name: &str| -> Result<Option<Vec<f32>>> {
        Ok(source_values(model, name, plus_one(name))?.map(|g| g.iter().map(|v| v * v).collect()))
    };
    for l in 0..c.num_layers {
        for (norm_name, product) in [("attn_norm", Product::Qkv), ("ffn_norm", Product::GateUp)] {
            if let Some(g) = norm(&format!("blk.{l}.{norm_name}.weight"))? {
                for name in readers(Some(l), product, false) {
                    importance.insert(name, g.clone());
                }
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
