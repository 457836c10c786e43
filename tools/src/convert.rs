//! The conversion driver: open the source, import the tokenizer, plan, encode every tensor
//! and stream it into the packed file (which appears only when complete), and report.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{Architecture, SourceInfo};
use edgelm::format::{Metadata, PackedFile, PackedWriter, TensorPlan, writer};
use indicatif::{ProgressBar, ProgressStyle};

use crate::encode::encode;
use crate::gguf::Gguf;
use crate::plan::{Options, plan};
use crate::report::{Report, TensorRow};
use crate::source::{Model, ct2, gguf_model, hf, synthetic};
use crate::tokenizer_import::{self, TokenizerImport};

/// What to convert.
#[derive(Clone, Debug)]
pub enum Input {
    /// A Hugging Face folder or a GGUF file.
    Path(PathBuf),
    /// Random weights of a preset, with a real tokenizer taken from a packed or GGUF file.
    Synthetic {
        /// Preset name (see [`synthetic::PRESETS`]).
        preset: String,
        /// Where the tokenizer comes from.
        tokenizer_from: PathBuf,
        /// Random seed.
        seed: u64,
    },
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn is_gguf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(n == 4 && &magic == b"GGUF")
}

/// Checks, before anything is read or written, that `output` can be written without harm:
/// not an existing folder, not a file the conversion reads (the input itself, through any
/// symbolic or hard link, or a file of an input folder or the tokenizer source), and in a
/// folder that exists.
pub fn check_output(input: &Input, output: &Path) -> Result<()> {
    let shown = output.display();
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    ensure!(
        dir.is_dir(),
        "output {shown}: the folder {} does not exist",
        dir.display()
    );
    let Ok(out) = std::fs::metadata(output) else {
        // Nothing there yet (or a dangling link, which the rename replaces).
        return Ok(());
    };
    ensure!(
        !out.is_dir(),
        "output {shown} is a folder; give the path of the file to write (e.g. {}/model.edgelm)",
        output.display()
    );
    let read = match input {
        Input::Path(p) => p,
        Input::Synthetic { tokenizer_from, .. } => tokenizer_from,
    };
    let mut sources = vec![read.clone()];
    if read.is_dir() {
        let entries = std::fs::read_dir(read).with_context(|| format!("cannot read {}", read.display()))?;
        sources.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    for source in sources {
        if let Ok(meta) = std::fs::metadata(&source) {
            ensure!(
                !same_file(&meta, &out),
                "output {shown} is the input {} (the same file); write the packed file elsewhere",
                source.display()
            );
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Opens a source and imports its tokenizer.
pub fn load(input: &Input) -> Result<(Model, TokenizerImport)> {
    match input {
        Input::Path(path) if path.is_dir() => {
            let model = if path.join("model.bin").is_file() {
                ct2::open(path)?
            } else {
                hf::open(path)?
            };
            let tokenizer = if model.config.architecture == Architecture::Whisper {
                tokenizer_import::from_whisper_folder(path)?
            } else {
                tokenizer_import::from_hf_folder(path)?
            };
            Ok((model, tokenizer))
        }
        Input::Path(path) => {
            ensure!(path.exists(), "{} does not exist", path.display());
            if !is_gguf(path)? {
                bail!(
                    "{} is neither a Hugging Face model folder nor a GGUF file{}",
                    path.display(),
                    if path.extension().is_some_and(|e| e == "safetensors") {
                        " (give the folder that holds the safetensors file and config.json)"
                    } else {
                        ""
                    }
                );
            }
            let g = Gguf::open(path)?;
            let tokenizer = tokenizer_import::from_gguf(&g)?;
            Ok((gguf_model::from_gguf(g, &file_name(path))?, tokenizer))
        }
        Input::Synthetic {
            preset,
            tokenizer_from,
            seed,
        } => {
            let tokenizer = tokenizer_from_file(tokenizer_from)?;
            Ok((
                synthetic::build(preset, tokenizer.spec.vocab_size, *seed)?,
                tokenizer,
            ))
        }
    }
}

/// The tokenizer of a packed file or a GGUF file.
fn tokenizer_from_file(path: &Path) -> Result<TokenizerImport> {
    if is_gguf(path)? {
        return tokenizer_import::from_gguf(&Gguf::open(path)?);
    }
    let packed = PackedFile::open(path)
        .with_context(|| format!("{} is neither a packed nor a GGUF file", path.display()))?;
    let mut tensors = Vec::new();
    for t in packed
        .tensors()
        .iter()
        .filter(|t| t.name.starts_with("tokenizer."))
    {
        let view = packed.tensor(&t.name)?;
        let plan = TensorPlan {
            name: t.name.clone(),
            dtype: t.dtype,
            layout: t.layout,
            shape: t.shape.clone(),
        };
        tensors.push((plan, view.bytes.to_vec()));
    }
    Ok(TokenizerImport {
        spec: packed.meta().tokenizer.clone(),
        chat_template: packed.meta().chat_template.clone(),
        tensors,
    })
}

/// The metadata of the packed file.
fn metadata(model: &Model, tokenizer: &TokenizerImport, options: &Options) -> Result<Metadata> {
    let (tok, vocab) = (tokenizer.spec.vocab_size, model.config.vocab_size);
    ensure!(
        tok <= vocab,
        "the tokenizer has {tok} tokens but the model's embedding only {vocab} rows"
    );
    Ok(Metadata {
        config: model.config.clone(),
        tokenizer: tokenizer.spec.clone(),
        chat_template: tokenizer.chat_template.clone(),
        source: SourceInfo {
            converter: format!("edgelm-convert {}", env!("CARGO_PKG_VERSION")),
            source: model.description.clone(),
            quant: options.quant.to_string(),
            name: model.name.clone(),
        },
    })
}

/// Where encoded tensors go.
trait Sink {
    /// Receives the whole plan before any data.
    fn start(&mut self, plans: Vec<TensorPlan>) -> Result<()>;
    /// Receives one tensor's data, in plan order.
    fn write(&mut self, plan: &TensorPlan, bytes: &[u8]) -> Result<()>;
}

/// Streams into a packed file.
struct FileSink<'a> {
    output: &'a Path,
    meta: &'a Metadata,
    writer: Option<PackedWriter>,
}

impl Sink for FileSink<'_> {
    fn start(&mut self, plans: Vec<TensorPlan>) -> Result<()> {
        self.writer = Some(PackedWriter::create(self.output, self.meta, plans)?);
        Ok(())
    }

    fn write(&mut self, plan: &TensorPlan, bytes: &[u8]) -> Result<()> {
        let w = self.writer.as_mut().context("writer not started")?;
        Ok(w.write_tensor(&plan.name, bytes)?)
    }
}

/// Collects in memory.
impl Sink for Vec<(TensorPlan, Vec<u8>)> {
    fn start(&mut self, _: Vec<TensorPlan>) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, plan: &TensorPlan, bytes: &[u8]) -> Result<()> {
        self.push((plan.clone(), bytes.to_vec()));
        Ok(())
    }
}

/// Plans and encodes every tensor into `sink`, in file order (tokenizer tables first).
/// Returns the report without the file size.
fn encode_all(
    model: &Model,
    tokenizer: &TokenizerImport,
    options: &Options,
    progress: bool,
    sink: &mut impl Sink,
) -> Result<Report> {
    let plan = plan(model, options)?;
    let all: Vec<TensorPlan> = tokenizer
        .tensors
        .iter()
        .map(|(p, _)| p.clone())
        .chain(plan.tensors.iter().map(|t| t.plan.clone()))
        .collect();
    sink.start(all)?;
    let mut report = Report {
        source: model.description.clone(),
        quant: options.quant.to_string(),
        tokenizer_tensors: tokenizer.tensors.len(),
        warnings: plan.warnings.clone(),
        ..Report::default()
    };
    for (p, bytes) in &tokenizer.tensors {
        sink.write(p, bytes)?;
        report.tokenizer_bytes += bytes.len() as u64;
    }
    let total: u64 = plan
        .tensors
        .iter()
        .map(|t| t.plan.shape.iter().product::<u64>())
        .sum();
    let bar = if progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for t in &plan.tensors {
        bar.set_message(t.plan.name.clone());
        let e = encode(model, t, options.importance.as_deref(), options.calibrated)
            .with_context(|| format!("converting tensor {}", t.plan.name))?;
        sink.write(&t.plan, &e.bytes)?;
        report.rows.push(TensorRow {
            name: t.plan.name.clone(),
            dtype: t.plan.dtype,
            shape: t.plan.shape.clone(),
            bytes: e.bytes.len() as u64,
            stats: e.stats,
            exact: e.exact,
            simulated: e.simulated,
        });
        bar.inc(t.plan.shape.iter().product());
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Converts to a packed file at `output`. Nothing appears at `output` unless the whole file was
/// written (a temporary file beside it is renamed into place).
pub fn convert(
    model: &Model,
    tokenizer: &TokenizerImport,
    options: &Options,
    output: &Path,
) -> Result<Report> {
    let meta = metadata(model, tokenizer, options)?;
    let mut sink = FileSink {
        output,
        meta: &meta,
        writer: None,
    };
    let mut report = encode_all(
        model,
        tokenizer,
        options,
        std::io::stderr().is_terminal(),
        &mut sink,
    )?;
    report.file_size = sink.writer.context("writer not started")?.finish()?;
    Ok(report)
}

/// Converts into memory (tests and fuzzing): the packed file's bytes and the report.
pub fn convert_to_bytes(
    model: &Model,
    tokenizer: &TokenizerImport,
    options: &Options,
) -> Result<(Vec<u8>, Report)> {
    let meta = metadata(model, tokenizer, options)?;
    let mut tensors = Vec::new();
    let mut report = encode_all(model, tokenizer, options, false, &mut tensors)?;
    let bytes = writer::to_bytes(&meta, &tensors)?;
    report.file_size = bytes.len() as u64;
    Ok((bytes, report))
}
