//! Options shared by several subcommands, and loading a model with timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgelm::format::text::read_text_file;
use edgelm::format::{FormatError, PackedFile};
use edgelm::generate::LoopGuard;
use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable};
use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::sampling::{InvalidSetting, SamplingParams};
use edgelm::session::{Session, SessionOptions};

/// Session options on the command line.
#[derive(clap::Args, Clone, Debug)]
pub struct SessionArgs {
    /// Worker threads (default: the physical performance cores this process may use).
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
    /// Use the -t given even when it is more than the available cores (otherwise capped).
    #[arg(long)]
    pub force_threads: bool,
}

/// A one-line error naming `option`, the value given and what it must be.
pub fn invalid(option: &str, value: impl std::fmt::Display, must: &str) -> anyhow::Error {
    anyhow::anyhow!("{option} {value}: must be {must}")
}

/// Most threads `--force-threads` may ask for: far beyond any machine edgelm runs on, and
/// below the counts whose start-up alone takes minutes (every pass waits on every thread).
pub const MAX_THREADS: usize = 1024;

/// `threads` checked: between 1 and [`MAX_THREADS`], and at most the cores this process may
/// use unless `force` (more is capped, with a note on stderr: extra threads only contend for
/// the same cores).
pub fn threads(option: &str, threads: Option<usize>, force: bool) -> anyhow::Result<Option<usize>> {
    match threads {
        Some(0) => Err(invalid(option, 0, "at least 1")),
        Some(t) if t > MAX_THREADS => Err(invalid(option, t, &format!("at most {MAX_THREADS}"))),
        Some(t) if !force => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if t > cores {
                eprintln!(
                    "edgelm: {option} {t} capped at the {cores} available cores (--force-threads to override)"
                );
            }
            Ok(Some(t.min(cores)))
        }
        t => Ok(t),
    }
}

impl SessionArgs {
    /// The library's session options for `model`, every number checked.
    pub fn options(&self, model: &Model) -> anyhow::Result<SessionOptions> {
        let max = model.config().max_context;
        if let Some(c) = self.ctx
            && !(1..=max).contains(&c)
        {
            return Err(invalid(
                "-c",
                c,
                &format!("between 1 and {max} (the model's context)"),
            ));
        }
        if self.batch == 0 {
            return Err(invalid("-b", 0, "at least 1"));
        }
        Ok(SessionOptions {
            context: self.ctx,
            batch: self.batch,
            threads: threads("-t", self.threads, self.force_threads)?,
            kv_type: self.kv,
            isa: None,
        })
    }
}

/// Uses the prompt cache at `path` (when the file exists) for `prompt`: maps it and keeps the
/// part of it that `prompt` starts with; returns the tokens of `prompt` already in `session`.
/// A cache that cannot be used is reported on stderr and left aside.
pub fn restore_prompt_cache(session: &mut Session<'_>, path: &Path, prompt: &[u32]) -> usize {
    if !path.exists() {
        return 0;
    }
    match session.load_prompt_cache(path) {
        Ok(_) => {
            let reused = session.reuse_prefix(prompt);
            eprintln!("prompt cache: reused {reused} of {} tokens", prompt.len());
            reused
        }
        Err(e) => {
            eprintln!("prompt cache ignored: {e}");
            0
        }
    }
}

/// Saves the first `len` tokens of `session` to the prompt cache at `path`; a failure (a
/// read-only image) is reported on stderr and the run goes on.
pub fn save_prompt_cache(session: &Session<'_>, path: &Path, len: usize) {
    if let Err(e) = session.save_prompt_cache(path, len) {
        eprintln!("prompt cache not saved: {e}");
    }
}

/// `--keep` checked against the session's context: the window must leave room for a token.
pub fn check_keep(keep: Option<usize>, session: &Session<'_>) -> anyhow::Result<()> {
    match keep {
        Some(k) if k + 1 >= session.context() => Err(invalid(
            "--keep",
            k,
            &format!(
                "less than {} (the context size, -c, minus 1)",
                session.context() - 1
            ),
        )),
        _ => Ok(()),
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
    /// Tokens the repetition, presence and frequency penalties look back over.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Presence penalty: subtracted once from the logit of each token seen (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty: subtracted from a token's logit per time it was seen (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// DRY ("don't repeat yourself") multiplier: a token that would extend a repeat of n
    /// tokens loses multiplier * base^(n - allowed length) from its logit (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub dry_multiplier: f32,
    /// DRY base (at least 1).
    #[arg(long, default_value_t = 1.75)]
    pub dry_base: f32,
    /// DRY: longest repeat that is not penalised.
    #[arg(long, default_value_t = 2)]
    pub dry_allowed_length: usize,
    /// DRY: tokens searched for repeats (0: off).
    #[arg(long, default_value_t = 64)]
    pub dry_penalty_last_n: usize,
    /// DRY sequence breaker (repeatable; replaces the defaults "\n", ":", "\"", "*";
    /// "none" for none): no repeat is counted across it.
    #[arg(long = "dry-sequence-breaker", value_name = "TEXT")]
    pub dry_sequence_breakers: Vec<String>,
    /// Random seed (default: time-based).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The library's sampling parameters, every number checked.
    pub fn params(&self) -> anyhow::Result<SamplingParams> {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let defaults = SamplingParams::default();
        let dry_sequence_breakers = match self.dry_sequence_breakers.as_slice() {
            [] => defaults.dry_sequence_breakers,
            given => given.iter().filter(|b| *b != "none").cloned().collect(),
        };
        let params = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            dry_multiplier: self.dry_multiplier,
            dry_base: self.dry_base,
            dry_allowed_length: self.dry_allowed_length,
            dry_penalty_last_n: self.dry_penalty_last_n,
            dry_sequence_breakers,
            seed,
        };
        params.check().map_err(|e| {
            let name = match e.name.as_str() {
                "temperature" => "--temp".into(),
                n => format!("--{}", n.replace('_', "-")),
            };
            anyhow::anyhow!(InvalidSetting { name, ..e })
        })?;
        Ok(params)
    }
}

/// Constrained output on the command line.
#[derive(clap::Args, Clone, Debug)]
pub struct GrammarArgs {
    /// Constrain the answer to the GBNF grammar (llama.cpp's syntax, root rule `root`) in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "json_schema")]
    pub grammar: Option<PathBuf>,
    /// Constrain the answer to JSON that satisfies the JSON schema in FILE.
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
}

impl GrammarArgs {
    /// The grammar asked for, if any; errors name the file.
    pub fn grammar(&self) -> anyhow::Result<Option<Arc<Grammar>>> {
        let read = read_text_string;
        let grammar = match (&self.grammar, &self.json_schema) {
            (Some(path), _) => {
                Grammar::parse(&read(path)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            (None, Some(path)) => {
                let schema: serde_json::Value = serde_json::from_str(&read(path)?)
                    .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
                Grammar::from_json_schema(&schema).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Arc::new(grammar)))
    }
}

/// A matcher for `grammar` over `model`'s vocabulary, with the table built once and shared.
pub fn matcher(grammar: &Arc<Grammar>, table: &mut Option<Arc<TokenTable>>, model: &Model) -> GrammarMatcher {
    let table = table.get_or_insert_with(|| Arc::new(TokenTable::new(model.tokenizer())));
    GrammarMatcher::new(Arc::clone(grammar), Arc::clone(table))
}

/// The loop guard on the command line.
#[derive(clap::Args, Clone, Debug)]
pub struct LoopGuardArgs {
    /// Stop an answer whose end repeats itself (a block of tokens, or a short line that only
    /// counts up: "1. 2. 3. …"): on or off (default: off for `run`, on for `chat`).
    #[arg(long, value_name = "on|off", hide_possible_values = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub loop_guard: Option<bool>,
    /// Loop guard: the shortest repeated block, in tokens.
    #[arg(long, default_value_t = LoopGuard::default().min_len)]
    pub loop_guard_len: usize,
    /// Loop guard: copies of the block in a row that stop the answer.
    #[arg(long, default_value_t = LoopGuard::default().repeats)]
    pub loop_guard_repeats: usize,
}

impl LoopGuardArgs {
    /// The guard, if on (`on_by_default` when the command line does not say), its numbers checked.
    pub fn guard(&self, on_by_default: bool) -> anyhow::Result<Option<LoopGuard>> {
        if self.loop_guard_len == 0 {
            return Err(invalid("--loop-guard-len", 0, "at least 1"));
        }
        if self.loop_guard_repeats < 2 {
            return Err(invalid(
                "--loop-guard-repeats",
                self.loop_guard_repeats,
                "at least 2",
            ));
        }
        Ok(self.loop_guard.unwrap_or(on_by_default).then(|| LoopGuard {
            min_len: self.loop_guard_len,
            repeats: self.loop_guard_repeats,
            ..LoopGuard::default()
        }))
    }
}

/// Opens a model that is about to run and says how long it took; its weights are paged in
/// on another thread meanwhile (see [`PackedFile::prefault_in_background`]).
pub fn load(path: &Path) -> anyhow::Result<(Model, Duration)> {
    let t = Instant::now();
    let file = open(path)?;
    file.prefault_in_background();
    let model = Model::from_packed(file).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((model, t.elapsed()))
}

/// Opens a packed model file; the error names the path once.
pub fn open(path: &Path) -> anyhow::Result<PackedFile> {
    PackedFile::open(path).map_err(|e| match e {
        // The message holds the path and the OS error already (no error chain to repeat it).
        FormatError::Io { .. } | FormatError::Folder { .. } => anyhow::anyhow!(e.to_string()),
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// Whether `e` comes from writing to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Tokens per second, guarding against zero durations.
pub fn rate(tokens: usize, d: Duration) -> f64 {
    tokens as f64 / d.as_secs_f64().max(1e-9)
}

/// The UTF-8 text file a user named, read with [`read_text_file`]'s bound; errors name it.
pub fn read_text_string(path: &Path) -> anyhow::Result<String> {
    let bytes = read_text_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{}: not UTF-8: {e}", path.display()))
}
