//! Options shared by several subcommands, and loading a model with timing.

use std::path::Path;
use std::time::{Duration, Instant};

use edgelm::format::PackedFile;
use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::sampling::SamplingParams;
use edgelm::session::SessionOptions;

/// Session options on the command line.
#[derive(clap::Args, Clone, Debug)]
pub struct SessionArgs {
    /// Worker threads (default: physical performance cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Context size in tokens (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx: Option<usize>,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    pub batch: usize,
    /// KV cache type: f16 or q8.
    #[arg(long = "kv", default_value = "f16")]
    pub kv: KvType,
}

impl SessionArgs {
    /// The library's session options.
    pub fn options(&self) -> SessionOptions {
        SessionOptions {
            context: self.ctx,
            batch: self.batch,
            threads: self.threads,
            kv_type: self.kv,
            isa: None,
        }
    }
}

/// Sampling options on the command line.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Temperature (0: greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Top-k (0: off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: time-based).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The library's sampling parameters.
    pub fn params(&self) -> SamplingParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        }
    }
}

/// Opens a model that is about to run and says how long it took; its weights are paged in
/// on another thread meanwhile (see [`PackedFile::prefault_in_background`]).
pub fn load(path: &Path) -> anyhow::Result<(Model, Duration)> {
    let t = Instant::now();
    let context = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let file = PackedFile::open(path).map_err(|e| context(&e))?;
    file.prefault_in_background();
    let model = Model::from_packed(file).map_err(|e| context(&e))?;
    Ok((model, t.elapsed()))
}

/// Tokens per second, guarding against zero durations.
pub fn rate(tokens: usize, d: Duration) -> f64 {
    tokens as f64 / d.as_secs_f64().max(1e-9)
}
