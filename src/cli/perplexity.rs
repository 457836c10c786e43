//! `edgelm perplexity MODEL FILE`: perplexity scored as llama.cpp's perplexity tool scores
//! it — consecutive windows of `ctx` tokens (the first replaced by BOS when the model adds
//! one), each scored on its second half — so the figures compare.

use std::path::PathBuf;
use std::time::Instant;

use edgelm::session::Session;

use super::common::{SessionArgs, load};

/// Arguments of `edgelm perplexity`.
#[derive(clap::Args)]
pub struct PerplexityArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// A UTF-8 text file.
    pub file: PathBuf,
    /// Score at most this many windows.
    #[arg(long)]
    pub chunks: Option<usize>,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Prints running and final perplexity; the last stdout line is `perplexity: X`.
pub fn run(mut args: PerplexityArgs) -> anyhow::Result<()> {
    let ctx = *args.session.ctx.get_or_insert(512);
    let (model, _) = load(&args.model)?;
    let text = std::fs::read(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let text =
        String::from_utf8(text).map_err(|e| anyhow::anyhow!("{}: not UTF-8: {e}", args.file.display()))?;
    let tokens = super::encode_text(&model, &text, true, false)?;
    anyhow::ensure!(
        tokens.len() >= 2 * ctx,
        "{} tokenizes to {} tokens; perplexity with a context of {ctx} needs at least {}",
        args.file.display(),
        tokens.len(),
        2 * ctx
    );
    let chunks = (tokens.len() / ctx).min(args.chunks.unwrap_or(usize::MAX));
    let spec = &model.meta().tokenizer;
    let bos = spec.bos.filter(|_| spec.add_bos);
    let mut session = Session::new(&model, &args.session.options())?;
    let first = ctx / 2;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let t = Instant::now();
    let mut window = vec![0u32; ctx];
    for c in 0..chunks {
        window.copy_from_slice(&tokens[c * ctx..(c + 1) * ctx]);
        if let Some(bos) = bos {
            window[0] = bos;
        }
        session.reset();
        let targets = &tokens[c * ctx..(c + 1) * ctx];
        session.feed_all(&window, |i, logits| {
            if i >= first && i + 1 < ctx {
                let lp = log_softmax_at(logits, targets[i + 1] as usize);
                nll -= lp;
                nll2 += lp * lp;
                count += 1;
            }
        })?;
        eprint!("[{}]{:.4},", c + 1, (nll / count as f64).exp());
    }
    eprintln!();
    let mean = nll / count as f64;
    let var = nll2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    let err = if var > 0.0 {
        ppl * (var / (count as f64 - 1.0)).sqrt()
    } else {
        0.0
    };
    eprintln!(
        "edgelm: {chunks} chunks of {ctx} tokens, {count} scored, {:.1} s ({} kernels, {} threads)",
        t.elapsed().as_secs_f64(),
        session.kernels().isa,
        session.threads()
    );
    eprintln!("edgelm: estimated perplexity {ppl:.4} +/- {err:.5}");
    println!("perplexity: {ppl:.4}");
    Ok(())
}

/// `log softmax(logits)[target]`, computed in f64 like llama.cpp.
fn log_softmax_at(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(logits[target] - max) - sum.ln()
}
