//! `edgelm-convert`: Hugging Face folders and GGUF files to packed `.edgelm` files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use edgelm::format::writer;
use edgelm_tools::calibrate::{calibrate, data_free_importance};
use edgelm_tools::convert::{Input, check_output, convert, load};
use edgelm_tools::plan::{Options, Target, TensorType};
use edgelm_tools::source::synthetic::PRESETS;

/// Convert a Hugging Face model folder or a GGUF file into a packed edgelm file.
#[derive(Parser)]
#[command(name = "edgelm-convert", version, about)]
struct Args {
    /// A Hugging Face model folder (config.json + safetensors + tokenizer files) or a GGUF file.
    #[arg(required_unless_present = "synthetic", conflicts_with = "synthetic")]
    input: Option<PathBuf>,
    /// The packed file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Type of the weight matrices: q8_0 (q8), q4_0 (q4), q4_1, f16, f32, keep (a GGUF's own
    /// q8_0/q4_0/q4_1/f16/f32 types; others become q8_0), or a K-quant mix with llama.cpp's
    /// rules: q4_k_m, q5_k_m, q6_k.
    #[arg(short, long, default_value = "q8_0")]
    quant: Target,
    /// Type of the embedding table and output head (default: q8_0 under q4_*, else --quant).
    #[arg(long)]
    embed_type: Option<Target>,
    /// Store the tensors whose packed name contains PATTERN as TYPE (q8_0, q4_0, q4_1, f16, f32,
    /// keep), before --quant and --embed-type; repeatable, the first match wins. E.g.
    /// `--tensor-type cross_kv=f16`; `-v` lists the names.
    #[arg(long, value_name = "PATTERN=TYPE")]
    tensor_type: Vec<TensorType>,
    /// Write random weights at the shapes of a real model instead (tinyllama-1.1b, smollm2-135m).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PRESETS), requires = "tokenizer_from")]
    synthetic: Option<String>,
    /// With --synthetic: the packed or GGUF file whose tokenizer to use.
    #[arg(long)]
    tokenizer_from: Option<PathBuf>,
    /// With --synthetic: random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With a K-quant mix: weight each column's quantization error by its importance, measured by
    /// running the model over this text (mean squared activation per input channel). Without it,
    /// the importance is estimated from the weights (the RMSNorm weight before each matrix).
    #[arg(long, value_name = "FILE")]
    calibrate: Option<PathBuf>,
    /// With --calibrate: tokens per calibration window (each starts with BOS, as llama-imatrix's).
    #[arg(long, default_value_t = 512, requires = "calibrate")]
    calibrate_ctx: usize,
    /// With a K-quant mix: store its quantized values decoded to f32 (their quality, measured
    /// apart from the kernels; the file has f32 size).
    #[arg(long)]
    simulate: bool,
    /// Print one report line per tensor.
    #[arg(short, long)]
    verbose: bool,
}

fn run(args: Args) -> anyhow::Result<()> {
    let input = match (args.input, args.synthetic, args.tokenizer_from) {
        (_, Some(preset), Some(tokenizer_from)) => Input::Synthetic {
            preset,
            tokenizer_from,
            seed: args.seed,
        },
        (Some(path), _, _) => Input::Path(path),
        _ => anyhow::bail!("give an INPUT, or --synthetic with --tokenizer-from"),
    };
    let mixed = matches!(args.quant, Target::Mix(_));
    if (args.calibrate.is_some() || args.simulate) && !mixed {
        anyhow::bail!("--calibrate and --simulate apply to the K-quant mixes (--quant q4_k_m, q5_k_m, q6_k)");
    }
    let mut options = Options {
        quant: args.quant,
        embed: args.embed_type,
        importance: None,
        calibrated: args.calibrate.is_some(),
        simulate: args.simulate,
        tensor_types: args.tensor_type,
    };
    check_output(&input, &args.output)?;
    for stale in writer::remove_stale_temporaries(&args.output).unwrap_or_default() {
        eprintln!(
            "edgelm-convert: removed {}, left by a conversion that did not finish",
            stale.display()
        );
    }
    // Ctrl-C, SIGTERM and SIGHUP end the process without running destructors: remove the
    // temporary file first. (The writer removes it itself on every error.)
    let output = args.output.clone();
    ctrlc::set_handler(move || {
        let _ = writer::remove_own_temporaries(&output);
        eprintln!("edgelm-convert: interrupted; nothing was written");
        std::process::exit(130);
    })?;
    let (model, tokenizer) = load(&input)?;
    if let Some(path) = &args.calibrate {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("calibration text {}", path.display()))?;
        let t = std::time::Instant::now();
        let c = calibrate(&model, &tokenizer, &text, args.calibrate_ctx)?;
        eprintln!(
            "edgelm-convert: calibrated {} matrices on {} windows of {} tokens of {} ({:.1} s)",
            c.importance.len(),
            c.windows,
            args.calibrate_ctx,
            path.display(),
            t.elapsed().as_secs_f64()
        );
        options.importance = Some(std::sync::Arc::new(c.importance));
    } else if mixed {
        options.importance = Some(std::sync::Arc::new(data_free_importance(&model)?));
    }
    let report = convert(&model, &tokenizer, &options, &args.output)?;
    report.print(&mut std::io::stdout().lock(), args.verbose)?;
    println!("output: {}", args.output.display());
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
