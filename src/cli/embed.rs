//! `edgelm embed MODEL TEXT...`: sentence vectors of an encoder model as a JSON array.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use edgelm::embed::{EmbedOptions, Embedder};
use edgelm::format::text::{read_text, read_text_file};
use edgelm::model::Model;

use super::common::{invalid, load, threads};

/// Encoder options shared by `embed` and `search`.
#[derive(clap::Args, Clone, Debug)]
pub struct EncoderArgs {
    /// Longest input in tokens, longer texts are truncated (`embed` says how many on stderr)
    /// (default: the model's, e.g. sentence-transformers' max_seq_length).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Worker threads (default: the physical performance cores this process may use).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Tokens per forward pass (several sentences are packed into one).
    #[arg(short = 'b', long = "batch-tokens", default_value_t = 1024)]
    pub batch_tokens: usize,
    /// Use the -t given even when it is more than the available cores (otherwise capped).
    #[arg(long)]
    pub force_threads: bool,
}

impl EncoderArgs {
    /// The options checked, before the model is opened.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_length == Some(0) {
            return Err(invalid("--max-length", 0, "at least 1"));
        }
        if self.batch_tokens == 0 {
            return Err(invalid("-b", 0, "at least 1"));
        }
        if self.threads == Some(0) {
            return Err(invalid("-t", 0, "at least 1"));
        }
        Ok(())
    }

    /// An embedder for `model` with these options.
    pub fn embedder<'m>(&self, model: &'m Model) -> anyhow::Result<Embedder<'m>> {
        let opts = EmbedOptions {
            max_length: self.max_length,
            batch_tokens: self.batch_tokens,
            threads: threads("-t", self.threads, self.force_threads)?,
            isa: None,
        };
        Ok(Embedder::new(model, &opts)?)
    }
}

/// Arguments of `edgelm embed`.
#[derive(clap::Args)]
pub struct EmbedArgs {
    /// The packed encoder model file.
    pub model: PathBuf,
    /// Texts to embed, one vector each.
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub texts: Vec<String>,
    /// Read the texts from FILE instead, one per line (`-`: standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Prints one vector per text as a JSON array of arrays.
pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let texts = match &args.file {
        Some(path) => read_lines(path)?,
        None => args.texts,
    };
    args.encoder.check()?;
    let (model, _) = load(&args.model)?;
    let mut embedder = args.encoder.embedder(&model)?;
    let vectors = embedder.embed(&texts)?;
    let max = embedder.max_length();
    // A text that cannot be tokenized has failed embedding above.
    let cut = texts
        .iter()
        .filter(|t| embedder.untruncated_len(t).is_ok_and(|n| n > max))
        .count();
    if cut > 0 {
        eprintln!(
            "edgelm embed: {cut} of {} texts longer than {max} tokens were truncated to their first {max} (--max-length)",
            texts.len()
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, &vectors.iter().collect::<Vec<_>>())?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The lines of a text file, or of standard input for `-`.
fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let (bytes, name) = if path.as_os_str() == "-" {
        (read_text(std::io::stdin().lock()), "standard input".into())
    } else {
        (read_text_file(path), path.display().to_string())
    };
    let text = String::from_utf8(bytes.with_context(|| name.clone())?)
        .with_context(|| format!("{name}: not UTF-8 text"))?;
    Ok(text.lines().map(str::to_owned).collect())
}
