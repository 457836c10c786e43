//! `edgelm bench MODEL`: prompt-processing (pp) and generation (tg) speed in tokens per
//! second, mean ± standard deviation over repetitions after a warm-up, in a table like
//! llama-bench's; also time to first token and peak resident memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};

use super::common::{SessionArgs, load};

/// Arguments of `edgelm bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// Prompt tokens for the pp test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    pub prompt: usize,
    /// Generated tokens for the tg test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub generate: usize,
    /// Thread counts to test, comma-separated.
    #[arg(short = 't', long = "threads", value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub repetitions: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// KV cache type: f16 or q8.
    #[arg(long = "kv", default_value = "f16")]
    pub kv: KvType,
    /// Also measure read bandwidth (a parallel sum over 512 MiB, on the same threads) and
    /// report generation as the fraction of it that weights and KV cache reads use.
    #[arg(long)]
    pub bandwidth: bool,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long = "batch-size", default_value_t = 128)]
    pub batch: usize,
    /// Tokens already in the KV cache when each test starts, comma-separated (llama-bench's
    /// `-d`): the tests run after that many tokens of context.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',', default_value = "0")]
    pub depths: Vec<usize>,
}

/// One measured test.
#[derive(serde::Serialize)]
struct Record {
    test: String,
    threads: usize,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ts: Vec<f64>,
    /// Generation: bytes of weights and KV cache read per token (mean over the run).
    bytes_per_token: Option<f64>,
    /// Generation with `--bandwidth`: measured read bandwidth, GB/s.
    read_bandwidth_gbs: Option<f64>,
    /// Generation with `--bandwidth`: bytes read per second ÷ read bandwidth.
    bandwidth_fraction: Option<f64>,
}

/// The whole result.
#[derive(serde::Serialize)]
struct Report {
    model: String,
    isa: String,
    weight_bytes: usize,
    params: usize,
    time_to_first_token_ms: f64,
    peak_rss_mib: f64,
    results: Vec<Record>,
}

/// Runs the tests and prints the table (or JSON).
pub fn run(args: BenchArgs, process_start: Instant) -> anyhow::Result<()> {
    if args.repetitions == 0 {
        return Err(super::common::invalid("-r", 0, "at least 1"));
    }
    // Every count checked before the first test runs (the time to first token uses the most).
    for &t in &args.threads {
        super::common::threads("-t", Some(t), true)?;
    }
    let (model, ttft) = time_to_first_token(&args, process_start)?;
    let session_args = |threads| SessionArgs {
        threads: Some(threads),
        ctx: None,
        batch: args.batch,
        kv: args.kv,
        // A benchmark runs the thread counts asked for, more than the cores included.
        force_threads: true,
    };
    let mut results = Vec::new();
    let mut isa = String::new();
    let peak_rss = peak_rss_bytes();
    let words = if args.bandwidth {
        vec![1u64; (512 << 20) / 8]
    } else {
        Vec::new()
    };
    let max_depth = args.depths.iter().copied().max().unwrap_or(0);
    let tests = args.prompt.saturating_add(args.generate).saturating_add(1);
    if tests > model.config().max_context {
        return Err(anyhow::anyhow!(
            "-p {} and -n {}: together at most {} (the model's context is {})",
            args.prompt,
            args.generate,
            model.config().max_context - 1,
            model.config().max_context
        ));
    }
    let ctx = max_depth.saturating_add(tests);
    if ctx > model.config().max_context {
        return Err(super::common::invalid(
            "-d",
            max_depth,
            &format!(
                "at most {} with -p {} and -n {} (the model's context is {})",
                model
                    .config()
                    .max_context
                    .saturating_sub(args.prompt + args.generate + 1),
                args.prompt,
                args.generate,
                model.config().max_context
            ),
        ));
    }
    let vocab = model.config().vocab_size as u32;
    let text = |n: usize, seed: u32| -> Vec<u32> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(7919).wrapping_add(seed)) % vocab)
            .collect()
    };
    let prompt = text(args.prompt, 13);
    for &threads in &args.threads {
        let opts = SessionOptions {
            context: Some(ctx.max(16)),
            ..session_args(threads).options(&model)?
        };
        let mut session = Session::new(&model, &opts)?;
        isa = session.kernels().isa.to_string();
        // Warm-up: touch every weight page and the pool's threads.
        session.run_in_pool(|s| -> anyhow::Result<()> {
            s.reset();
            s.feed(&prompt[..prompt.len().min(16)])?;
            s.feed(&[1])?;
            Ok(())
        })?;
        for &depth in &args.depths {
            // The context the tests start from, processed once; each repetition cuts back to it.
            let context = text(depth, 101);
            session.run_in_pool(|s| {
                s.reset();
                s.feed(&context).map(|_| ())
            })?;
            let at_depth = |name: String| match depth {
                0 => name,
                d => format!("{name} @ d{d}"),
            };
            if args.prompt > 0 {
                let samples = measure(&mut session, args.repetitions, args.prompt, |s| {
                    s.truncate(depth);
                    s.feed(&prompt).map(|_| ())
                })?;
                results.push(record(
                    at_depth(format!("pp{}", args.prompt)),
                    (threads, depth),
                    args.prompt,
                    0,
                    samples,
                ));
            }
            if args.generate > 0 {
                let samples = measure(&mut session, args.repetitions, args.generate, |s| {
                    s.truncate(depth);
                    (0..args.generate as u32).try_for_each(|i| s.feed(&[(i * 31 + 7) % vocab]).map(|_| ()))
                })?;
                let mut rec = record(
                    at_depth(format!("tg{}", args.generate)),
                    (threads, depth),
                    0,
                    args.generate,
                    samples,
                );
                let bytes = bytes_per_generated_token(&model, depth, args.generate, args.kv)?;
                rec.bytes_per_token = Some(bytes);
                if args.bandwidth {
                    let bw = read_bandwidth(&mut session, &words);
                    rec.read_bandwidth_gbs = Some(bw / 1e9);
                    rec.bandwidth_fraction = Some(bytes * rec.avg_ts / bw);
                }
                results.push(rec);
            }
        }
    }
    let report = Report {
        model: args.model.display().to_string(),
        isa,
        weight_bytes: model.decoder()?.bytes_per_token(),
        params: model
            .file()
            .tensors()
            .iter()
            .filter(|t| !t.name.starts_with("tokenizer."))
            .map(|t| t.numel() as usize)
            .sum(),
        time_to_first_token_ms: ttft * 1e3,
        peak_rss_mib: peak_rss.map_or(f64::NAN, |b| b as f64 / 1048576.0),
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Tokens/s of `reps` runs of `f`, each processing `tokens` tokens.
fn measure(
    session: &mut Session<'_>,
    reps: usize,
    tokens: usize,
    mut f: impl FnMut(&mut Session<'_>) -> Result<(), edgelm::session::SessionError> + Send,
) -> anyhow::Result<Vec<f64>> {
    session.run_in_pool(|s| {
        (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                f(s)?;
                Ok(tokens as f64 / t.elapsed().as_secs_f64())
            })
            .collect()
    })
}

/// `at` is (threads, depth).
fn record(test: String, at: (usize, usize), n_prompt: usize, n_gen: usize, samples: Vec<f64>) -> Record {
    let n = samples.len() as f64;
    let avg = samples.iter().sum::<f64>() / n;
    let var = if n > 1.0 {
        samples.iter().map(|s| (s - avg).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Record {
        bytes_per_token: None,
        read_bandwidth_gbs: None,
        bandwidth_fraction: None,
        test,
        threads: at.0,
        n_depth: at.1,
        n_prompt,
        n_gen,
        avg_ts: avg,
        stddev_ts: var.sqrt(),
        samples_ts: samples,
    }
}

/// Weights read per token (every matrix once) plus the KV cache read at the run's mean
/// position (generation starts at position `depth`).
fn bytes_per_generated_token(
    model: &Model,
    depth: usize,
    generated: usize,
    kv: KvType,
) -> anyhow::Result<f64> {
    let c = model.config();
    let elem = match kv {
        KvType::F32 => 4.0,
        KvType::F16 => 2.0,
        KvType::Q8 => 34.0 / 32.0,
    };
    let kv_per_position = (c.num_layers * c.num_kv_heads * c.head_dim * 2) as f64 * elem;
    Ok(model.decoder()?.bytes_per_token() as f64 + kv_per_position * (depth as f64 + generated as f64 / 2.0))
}

/// Bytes per second of a parallel sum over `words` on the session's threads (best of 5).
fn read_bandwidth(session: &mut Session<'_>, words: &[u64]) -> f64 {
    session.run_in_pool(|s| {
        let part = words.len().div_ceil(s.threads());
        let pass = || {
            let total = AtomicU64::new(0);
            edgelm::pool::each(words.chunks(part), &|c: &[u64]| {
                let sum = c.iter().fold(0u64, |a, &w| a.wrapping_add(w));
                total.fetch_add(sum, Ordering::Relaxed);
            });
            total.into_inner()
        };
        std::hint::black_box(pass());
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(pass());
                size_of_val(words) as f64 / t.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    })
}

/// Opens the model and times process start → first sampled token of a short prompt (the
/// path a command-line answer takes: map the file, make a session, prefill, sample).
fn time_to_first_token(args: &BenchArgs, process_start: Instant) -> anyhow::Result<(Model, f64)> {
    let (model, _) = load(&args.model)?;
    let threads = args.threads.iter().copied().max().unwrap_or(1);
    let opts = SessionOptions {
        context: Some(64.min(model.config().max_context)),
        threads: Some(threads),
        ..Default::default()
    };
    let mut session = Session::new(&model, &opts)?;
    let prompt = super::encode_text(&model, "Hello", true, false)?;
    let first = edgelm::sampling::argmax(session.feed(&prompt)?);
    let ttft = process_start.elapsed().as_secs_f64();
    anyhow::ensure!(
        (first as usize) < model.config().vocab_size,
        "sampled token {first} is outside the vocabulary"
    );
    drop(session);
    Ok((model, ttft))
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn print_table(r: &Report) {
    println!("| model | size | params | backend | threads | test | t/s |");
    println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    for x in &r.results {
        println!(
            "| {} | {:.2} MiB | {:.2} M | {} | {} | {} | {:.2} ± {:.2} |",
            std::path::Path::new(&r.model)
                .file_name()
                .map_or(r.model.clone(), |f| f.to_string_lossy().into_owned()),
            r.weight_bytes as f64 / 1048576.0,
            r.params as f64 / 1e6,
            r.isa,
            x.threads,
            x.test,
            x.avg_ts,
            x.stddev_ts
        );
        if let (Some(f), Some(bw)) = (x.bandwidth_fraction, x.read_bandwidth_gbs) {
            println!(
                "|   | {:.0} MB read per token: {:.1}% of the {bw:.1} GB/s read bandwidth on {} threads |",
                x.bytes_per_token.unwrap_or(0.0) / 1e6,
                f * 100.0,
                x.threads
            );
        }
    }
    println!();
    println!(
        "time to first token: {:.1} ms (from process start; weights in the page cache)",
        r.time_to_first_token_ms
    );
    println!("peak RSS: {:.1} MiB", r.peak_rss_mib);
}
