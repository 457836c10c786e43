//! Sentence-embedding speed of an encoder model: one batch of sentences (default: the 32 of
//! `benches/data/sentences.txt`) per forward pass, and one sentence alone, hot, in-process.
//!
//!     cargo bench --bench embed -- MODEL.edgelm [SENTENCES.txt] [-t 1,2] [-r ROUNDS] [--json]
//!
//! Prints the median time of a batch (and sentences/s) and of one sentence (the file's first)
//! per thread count, as a table or one JSON object per line. `benches/compare-embed.sh` runs
//! it interleaved with llama.cpp's `llama-embedding` on the same weights. Without a model it
//! says so and exits (plain `cargo bench` runs every bench).

use std::path::PathBuf;
use std::time::Instant;

use edgelm::embed::{EmbedOptions, Embedder};
use edgelm::model::Model;

struct Args {
    model: PathBuf,
    sentences: PathBuf,
    threads: Vec<usize>,
    rounds: usize,
    json: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut positional = Vec::new();
    let (mut threads, mut rounds, mut json) = (vec![1, 2], 20, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-t" | "--threads" => {
                threads = value("-t")?
                    .split(',')
                    .map(|t| t.parse().map_err(|e| format!("-t: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "-r" | "--rounds" => rounds = value("-r")?.parse().map_err(|e| format!("-r: {e}"))?,
            "--json" => json = true,
            "--bench" => {} // added by `cargo bench`
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a => positional.push(PathBuf::from(a)),
        }
    }
    let mut positional = positional.into_iter();
    let Some(model) = positional.next() else {
        return Ok(None);
    };
    let sentences = positional
        .next()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/sentences.txt"));
    let rounds = rounds.max(1);
    Ok(Some(Args {
        model,
        sentences,
        threads,
        rounds,
        json,
    }))
}

/// Median seconds of `rounds` calls of `f`, after three unmeasured ones.
fn median_secs(rounds: usize, mut f: impl FnMut()) -> f64 {
    (0..3).for_each(|_| f());
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), String> {
    let Some(args) = parse_args()? else {
        eprintln!("embed bench skipped: give a packed encoder model (see the top of benches/embed.rs)");
        return Ok(());
    };
    let model = Model::open(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let text =
        std::fs::read_to_string(&args.sentences).map_err(|e| format!("{}: {e}", args.sentences.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(format!("{} has no sentences", args.sentences.display()));
    }
    if !args.json {
        println!("| threads | isa | batch | tokens | batch ms | sentences/s | 1 sentence ms (tokens) |");
        println!("|---:|---|---:|---:|---:|---:|---:|");
    }
    for &threads in &args.threads {
        let opts = |batch_tokens| EmbedOptions {
            threads: Some(threads),
            batch_tokens,
            ..EmbedOptions::default()
        };
        let mut e = Embedder::new(&model, &opts(1024)).map_err(|e| e.to_string())?;
        let ids: Vec<Vec<u32>> = lines
            .iter()
            .map(|l| e.tokenize(l))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let tokens: usize = ids.iter().map(Vec::len).sum();
        if tokens > e.batch_tokens() {
            e = Embedder::new(&model, &opts(tokens)).map_err(|e| e.to_string())?;
        }
        let isa = e.isa();
        let (batch, single) = e.run_in_pool(|e| {
            let batch = median_secs(args.rounds, || {
                e.embed_batch(&ids).expect("the batch fits");
            });
            let single = median_secs(args.rounds * 4, || {
                e.embed_batch(&ids[..1]).expect("one sentence fits");
            });
            (batch, single)
        });
        let rate = ids.len() as f64 / batch;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "threads": threads, "isa": isa.name(), "sentences": ids.len(), "tokens": tokens,
                    "batch_ms": batch * 1e3, "sentences_per_s": rate,
                    "single_ms": single * 1e3, "single_tokens": ids[0].len(),
                })
            );
        } else {
            println!(
                "| {threads} | {isa} | {} | {tokens} | {:.2} | {rate:.1} | {:.3} ({}) |",
                ids.len(),
                batch * 1e3,
                single * 1e3,
                ids[0].len()
            );
        }
    }
    Ok(())
}
