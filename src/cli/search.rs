//! `edgelm search MODEL --corpus FILE QUERY`: the corpus lines most similar to a query, by the
//! cosine of their sentence vectors (cached beside the corpus).

use std::path::PathBuf;
use std::time::Instant;

use edgelm::embed::{CacheStatus, CorpusIndex};

use super::common::load;
use super::embed::EncoderArgs;

/// Arguments of `edgelm search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// The packed encoder model file.
    pub model: PathBuf,
    /// The text to look for.
    pub query: String,
    /// Text file to search, one document per line (blank lines are skipped).
    #[arg(long, value_name = "FILE")]
    pub corpus: PathBuf,
    /// How many lines to print.
    #[arg(short = 'k', long = "top-k", default_value_t = 5)]
    pub k: usize,
    /// Print JSON (line, score, text per result) instead of `score<TAB>line<TAB>text`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// One printed result.
#[derive(serde::Serialize)]
struct Row<'a> {
    line: usize,
    score: f32,
    text: &'a str,
}

/// Indexes the corpus (or loads its cache) and prints the best lines.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    args.encoder.check()?;
    if args.k == 0 {
        return Err(super::common::invalid("-k", 0, "at least 1"));
    }
    let (model, _) = load(&args.model)?;
    let mut embedder = args.encoder.embedder(&model)?;
    let start = Instant::now();
    let (index, status) = CorpusIndex::open(&mut embedder, &args.corpus)?;
    let cache = CorpusIndex::cache_path(&args.corpus);
    let took = start.elapsed().as_secs_f64();
    let lines = index.len();
    match status {
        CacheStatus::Hit => {}
        CacheStatus::Created => {
            eprintln!(
                "embedded {lines} lines in {took:.2} s; cached in {}",
                cache.display()
            )
        }
        CacheStatus::Rebuilt(why) => eprintln!(
            "cache {} not used ({why}): embedded {lines} lines again in {took:.2} s",
            cache.display()
        ),
        CacheStatus::NotSaved(why) => {
            eprintln!("embedded {lines} lines in {took:.2} s; warning: cache not written: {why}")
        }
    }
    let query = embedder.embed(&[&args.query])?;
    let hits = index.search(query.get(0), args.k);
    if args.json {
        let rows: Vec<Row> = hits
            .iter()
            .map(|h| Row {
                line: h.line,
                score: h.score,
                text: h.text,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for h in &hits {
            println!("{:.4}\t{}\t{}", h.score, h.line, h.text);
        }
    }
    Ok(())
}
