//! `edgelm perplexity MODEL FILE`: perplexity of a text file, scored like llama.cpp's
//! perplexity tool (see [`edgelm::perplexity`]) so the figures compare.

use std::path::PathBuf;
use std::time::Instant;

use edgelm::perplexity::perplexity;
use edgelm::session::Session;

use super::common::{SessionArgs, invalid, load, read_text_string};

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

/// Prints running perplexity to stderr; the last stdout line is `perplexity: X`.
pub fn run(mut args: PerplexityArgs) -> anyhow::Result<()> {
    let ctx = *args.session.ctx.get_or_insert(512);
    if ctx < 3 {
        return Err(invalid(
            "-c",
            ctx,
            "at least 3 for perplexity (each window is scored on its second half)",
        ));
    }
    if args.chunks == Some(0) {
        return Err(invalid("--chunks", 0, "at least 1"));
    }
    let (model, _) = load(&args.model)?;
    let text = read_text_string(&args.file)?;
    let tokens = super::encode_text(&model, &text, true, false)?;
    let spec = &model.meta().tokenizer;
    let bos = spec.bos.filter(|_| spec.add_bos);
    let mut session = Session::new(&model, &args.session.options(&model)?)?;
    let t = Instant::now();
    let r = perplexity(&mut session, &tokens, bos, args.chunks, |c, ppl| {
        eprint!("[{c}]{ppl:.4},")
    })?;
    eprintln!();
    eprintln!(
        "edgelm: {} chunks of {} tokens, {} scored, {:.1} s ({} kernels, {} threads); perplexity {:.4} +/- {:.5}",
        r.chunks,
        session.context(),
        r.scored,
        t.elapsed().as_secs_f64(),
        session.kernels().isa,
        session.threads(),
        r.ppl,
        r.error
    );
    println!("perplexity: {:.4}", r.ppl);
    Ok(())
}
