//! `edgelm serve`: an OpenAI-compatible HTTP server. One compute thread decodes every slot of
//! a model together ([`scheduler`]); the HTTP side ([`http`]) checks requests and streams
//! answers. Binds to loopback by default; stops gracefully on SIGTERM or Ctrl-C.

mod api;
mod constrain;
mod http;
mod scheduler;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use edgelm::chat::ChatTemplate;
use edgelm::grammar::TokenTable;
use edgelm::kv_cache::KvType;
use edgelm::session::SessionOptions;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use super::common::{invalid, load, threads};
use http::{AppState, Limits, Served};
use scheduler::{Queue, Setup};

/// Arguments of `edgelm serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Packed model files; a request's `model` field names one by its file name without
    /// `.edgelm` (decoders answer chat and completions, encoders embeddings).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Address to listen on (loopback by default; 0.0.0.0 opens the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests answered at once per decoder model (slots), decoded together.
    #[arg(long = "parallel", short = 'n', visible_alias = "np", default_value_t = 4)]
    pub parallel: usize,
    /// Total context in tokens, shared by the slots as in llama-server (default: 2048 per
    /// slot, at most the model's context per slot).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx: Option<usize>,
    /// Tokens per forward pass (shared by generating slots and prompt chunks).
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    pub batch: usize,
    /// Worker threads (default: the physical performance cores this process may use).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Use the -t given even when it is more than the available cores.
    #[arg(long)]
    pub force_threads: bool,
    /// KV cache type: f16 or q8.
    #[arg(long = "kv", default_value = "f16")]
    pub kv: KvType,
    /// Require `Authorization: Bearer KEY` on /v1 (default: the EDGELM_API_KEY variable, if set).
    #[arg(long, env = "EDGELM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests that may wait for a slot; more are refused with 503 and Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Largest max_tokens a request may ask for (and the default).
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// Seconds a client has to send a request's headers and body.
    #[arg(long, default_value_t = 30)]
    pub read_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM before they are cut short.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout: u64,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    if a.parallel == 0 {
        return Err(invalid("--parallel", 0, "at least 1"));
    }
    for (name, v) in [
        ("-b", a.batch),
        ("--queue", a.queue),
        ("--max-body", a.max_body),
        ("--max-tokens", a.max_tokens),
    ] {
        if v == 0 {
            return Err(invalid(name, 0, "at least 1"));
        }
    }
    let mut served = Vec::new();
    for path in &a.models {
        let (model, _) = load(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        if served.iter().any(|s: &Served| s.name == name) {
            anyhow::bail!("two models are called {name:?}: rename one file");
        }
        let max = model.config().max_context;
        let slot_context = match a.ctx {
            Some(c) if c < a.parallel => return Err(invalid("-c", c, "at least one token per slot")),
            Some(c) => (c / a.parallel).min(max),
            None => max.min(2048),
        };
        let (template, tokens) = if model.config().architecture.is_decoder() {
            let t = ChatTemplate::for_model(&model)
                .with_context(|| format!("{}: chat template", path.display()))?;
            (Some(t), Some(Arc::new(TokenTable::new(model.tokenizer()))))
        } else {
            (None, None)
        };
        served.push(Served {
            name,
            model: Arc::new(model),
            template,
            slot_context,
            tokens,
        });
    }
    let queue = Queue::new(a.queue);
    let setup = Setup {
        session: SessionOptions {
            context: None,
            batch: a.batch,
            threads: threads("-t", a.threads, a.force_threads)?,
            kv_type: a.kv,
            isa: None,
        },
        parallel: a.parallel,
        slot_contexts: served.iter().map(|s| s.slot_context).collect(),
    };
    let compute = scheduler::start(
        served.iter().map(|s| s.model.clone()).collect(),
        setup,
        queue.clone(),
    )?;
    let state = Arc::new(AppState {
        models: served,
        queue: queue.clone(),
        api_key: a.api_key.clone().filter(|k| !k.is_empty()),
        limits: Limits {
            body_bytes: a.max_body,
            max_tokens: a.max_tokens,
            read_timeout: Duration::from_secs(a.read_timeout),
            embed_inputs: 256,
        },
        next_id: AtomicU64::new(1),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let addr = SocketAddr::new(a.host, a.port);
    runtime.block_on(serve(addr, state, &a))?;
    queue.close(false);
    let _ = compute.join();
    eprintln!("edgelm: server stopped");
    Ok(())
}

/// Accepts connections until a shutdown signal, then lets open requests finish (up to the
/// shutdown timeout, after which the answers still running are ended).
async fn serve(addr: SocketAddr, state: Arc<AppState>, a: &ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let names: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
    eprintln!(
        "edgelm: serving {} on http://{} ({} slots per model)",
        names.join(", "),
        listener.local_addr()?,
        a.parallel
    );
    let queue = state.queue.clone();
    let app = http::router(state);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(a.read_timeout))
        // A client that shuts its sending side after the request (curl, `nc -N`) is answered;
        // one that went away is seen at the answer's next write (`http::HEARTBEAT`).
        .half_close(true)
        .max_buf_size(64 << 10);
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let service = TowerToHyperService::new(app.clone());
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut signal => break,
        }
    }
    eprintln!("edgelm: shutting down: no new requests; waiting for open ones");
    drop(listener);
    queue.close(false);
    let patience = Duration::from_secs(a.shutdown_timeout);
    let mut done = std::pin::pin!(graceful.shutdown());
    if tokio::time::timeout(patience, &mut done).await.is_err() {
        eprintln!("edgelm: open requests cut short after {} s", a.shutdown_timeout);
        // The answers end at the next step; their last events still reach the clients.
        queue.close(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut done).await;
    }
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
