//! The HTTP endpoints: OpenAI's chat completions, completions, embeddings and models, plus
//! `/health`. Every request is checked before it reaches the compute thread; errors are
//! OpenAI error objects with the right status.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, LoopGuard, StopReason};
use edgelm::grammar::TokenTable;
use edgelm::model::Model;
use edgelm::sampling::SamplingParams;
use edgelm::tokenizer::EncodeOptions;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::api::{
    self, ChatRequest, CompletionRequest, EmbeddingRequest, ErrorBody, ErrorDetail, Sampling, Usage,
};
use super::constrain::{self, Constraint};
use super::scheduler::{EmbedJob, Event, Finish, GenerateJob, Queue, Vectors, Work};

/// A model the server offers.
pub struct Served {
    /// The name clients give as `model` (the file name without `.edgelm`).
    pub name: String,
    pub model: Arc<Model>,
    /// The chat template (decoders).
    pub template: Option<ChatTemplate>,
    /// Each slot's context (decoders).
    pub slot_context: usize,
    /// The vocabulary as grammars read it (decoders), built once.
    pub tokens: Option<Arc<TokenTable>>,
}

/// Limits on what a request may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, bytes.
    pub body_bytes: usize,
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Time to send a request body.
    pub read_timeout: Duration,
    /// Most texts per embeddings request.
    pub embed_inputs: usize,
}

/// How often an answer in the making writes to its client (an SSE comment, or a newline before
/// a JSON body): a client that went away is seen at a write (its socket answers with a reset),
/// and its slot is freed.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What every handler shares.
pub struct AppState {
    pub models: Vec<Served>,
    pub queue: Arc<Queue>,
    pub api_key: Option<String>,
    pub limits: Limits,
    pub next_id: AtomicU64,
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response() })
        .with_state(state)
}

/// An error answered as an OpenAI error object.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<String>,
    retry_after: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            retry_after: false,
        }
    }

    /// A 400 about request field `param`.
    pub fn bad(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_owned()),
            ..ApiError::new(StatusCode::BAD_REQUEST, message)
        }
    }

    /// The error object as JSON (in a body or a stream already answered 200).
    fn json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    fn body(&self) -> ErrorBody {
        let (kind, code) = match self.status {
            StatusCode::UNAUTHORIZED => ("authentication_error", Some("invalid_api_key")),
            StatusCode::NOT_FOUND => ("invalid_request_error", Some("not_found")),
            StatusCode::SERVICE_UNAVAILABLE => ("server_error", Some("overloaded")),
            s if s.is_server_error() => ("server_error", None),
            _ => ("invalid_request_error", None),
        };
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind,
                param: self.param.clone(),
                code,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// `Authorization: Bearer KEY` when the server has a key, compared in constant time.
async fn authorize(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong API key").into_response();
        }
    }
    next.run(req).await
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    (diff == 0) & (a.len() == b.len())
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.queue.is_closing() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": "edgelm"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Reads the body (within the size and time limits) and parses it as `T`, refusing fields
/// neither `T` nor `fields` know (when `fields` is given).
async fn parse<T: DeserializeOwned>(
    state: &AppState,
    body: Body,
    fields: Option<&[&str]>,
) -> Result<T, ApiError> {
    let limit = state.limits.body_bytes;
    let bytes = match tokio::time::timeout(state.limits.read_timeout, axum::body::to_bytes(body, limit)).await
    {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body came too slowly",
            ));
        }
        Ok(Err(e)) => {
            // hyper's errors are a malformed or cut-off body (a bad chunk size, an early end);
            // the other is the size limit.
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(c) = cause {
                if let Some(h) = c.downcast_ref::<hyper::Error>() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("the request body is malformed or cut off: {h}"),
                    ));
                }
                cause = c.source();
            }
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {limit} bytes"),
            ));
        }
        Ok(Ok(b)) => b,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    }
    if let Some(field) = fields.and_then(|f| api::unknown_field(&value, f)) {
        return Err(ApiError::bad(&field, format!("unknown field {field:?}")));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

impl AppState {
    /// The model called `name`; with a single model of the wanted kind, any name is that one.
    fn model(&self, name: &str, decoder: bool) -> Result<usize, ApiError> {
        let kind = |m: &Served| m.model.config().architecture.is_decoder() == decoder;
        if let Some(i) = self.models.iter().position(|m| m.name == name) {
            return if kind(&self.models[i]) {
                Ok(i)
            } else {
                let what = if decoder {
                    "generate text"
                } else {
                    "make embeddings"
                };
                Err(ApiError::bad("model", format!("model {name:?} cannot {what}")))
            };
        }
        let mut of_kind = self.models.iter().enumerate().filter(|(_, m)| kind(m));
        match (of_kind.next(), of_kind.next()) {
            (Some((i, _)), None) => Ok(i),
            _ => Err(ApiError {
                param: Some("model".into()),
                ..ApiError::new(StatusCode::NOT_FOUND, format!("no model {name:?} is served here"))
            }),
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn submit(&self, work: Work) -> Result<(), ApiError> {
        self.queue.push(work).map_err(|_| ApiError {
            retry_after: true,
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy: every slot and queue place is taken",
            )
        })
    }
}

/// The sampling and stopping settings of a request, checked. Without settings, the server
/// samples as the quickstart does (docs/ANSWERS.md): llama.cpp's defaults at temperature
/// 0.7 with DRY; the loop guard is always on.
fn settings(s: &Sampling, limits: &Limits) -> Result<(SamplingParams, GenerateOptions), ApiError> {
    let finite = |name: &str, v: Option<f32>, lo: f32, hi: f32| match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::bad(
            name,
            format!("{name} {x} must be within {lo}..={hi}"),
        )),
        _ => Ok(()),
    };
    finite("temperature", s.temperature, 0.0, 2.0)?;
    finite("top_p", s.top_p, 0.0, 1.0)?;
    finite("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
    finite("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
    if s.top_p == Some(0.0) {
        return Err(ApiError::bad("top_p", "top_p must be above 0"));
    }
    if s.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("n", "only n = 1 is supported"));
    }
    if s.logprobs == Some(true) || s.top_logprobs.is_some_and(|n| n > 0) {
        return Err(ApiError::bad("logprobs", "logprobs are not supported"));
    }
    if s.store == Some(true) {
        return Err(ApiError::bad("store", "stored completions are not supported"));
    }
    if let Some(m) = s.modalities.as_ref().filter(|m| m.iter().any(|m| m != "text")) {
        return Err(ApiError::bad(
            "modalities",
            format!("only text output is supported, not {m:?}"),
        ));
    }
    let max_tokens = s
        .max_completion_tokens
        .or(s.max_tokens)
        .unwrap_or(limits.max_tokens);
    if !(1..=limits.max_tokens).contains(&max_tokens) {
        return Err(ApiError::bad(
            "max_tokens",
            format!("max_tokens {max_tokens} must be within 1..={}", limits.max_tokens),
        ));
    }
    let stop = s.stop.clone().map(api::OneOrMany::into_vec).unwrap_or_default();
    if stop.len() > 4 || stop.iter().any(|t| t.is_empty() || t.len() > 256) {
        return Err(ApiError::bad(
            "stop",
            "stop takes up to 4 non-empty strings of up to 256 bytes",
        ));
    }
    let default = SamplingParams {
        temperature: 0.7,
        dry_multiplier: 0.8,
        dry_sequence_breakers: Vec::new(),
        ..SamplingParams::default()
    };
    let sampling = SamplingParams {
        temperature: s.temperature.unwrap_or(default.temperature),
        top_p: s.top_p.unwrap_or(default.top_p),
        presence_penalty: s.presence_penalty.unwrap_or(0.0),
        frequency_penalty: s.frequency_penalty.unwrap_or(0.0),
        top_k: s.top_k.unwrap_or(default.top_k),
        min_p: s.min_p.unwrap_or(default.min_p),
        repeat_penalty: s.repeat_penalty.unwrap_or(default.repeat_penalty),
        seed: s.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        }),
        ..default
    };
    // What the checks above leave to the library's own (min_p, repeat_penalty, NaN).
    sampling
        .check()
        .map_err(|e| ApiError::bad(&e.name, e.to_string()))?;
    let options = GenerateOptions {
        max_tokens,
        stop,
        sliding_window: None,
        loop_guard: Some(LoopGuard::default()),
        cancel: None,
    };
    Ok((sampling, options))
}

fn finish_reason(f: Finish, tool_call: bool) -> &'static str {
    match f {
        Finish::Stop(StopReason::MaxTokens) | Finish::ContextFull => "length",
        Finish::Stop(StopReason::Repetition) => "repetition",
        _ if tool_call => "tool_calls",
        _ => "stop",
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends the prompt to the compute thread for `model` with `settings` (and the grammar of
/// `constraint`); returns the event stream.
fn start(
    state: &AppState,
    model: usize,
    prompt: Vec<u32>,
    (sampling, options): (SamplingParams, GenerateOptions),
    constraint: Option<Constraint>,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    let ctx = state.models[model].slot_context;
    if prompt.len() >= ctx {
        return Err(ApiError {
            param: Some("messages".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the prompt is {} tokens; a slot's context holds {ctx} (context_length_exceeded)",
                    prompt.len()
                ),
            )
        });
    }
    let (events, rx) = mpsc::unbounded_channel();
    state.submit(Work::Generate(Box::new(GenerateJob {
        model,
        prompt,
        sampling,
        options,
        grammar: constraint.map(|c| c.grammar),
        events,
    })))?;
    Ok(rx)
}

/// The text, finish and usage of a whole answer.
struct Collected {
    text: String,
    finish: Finish,
    usage: Usage,
    cached: usize,
}

async fn collect(mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Collected, ApiError> {
    let mut text = String::new();
    while let Some(e) = rx.recv().await {
        match e {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish,
                prompt_tokens,
                cached_tokens,
                completion_tokens,
            } => {
                return Ok(Collected {
                    text,
                    finish,
                    usage: Usage::new(prompt_tokens, completion_tokens),
                    cached: cached_tokens,
                });
            }
            Event::Error(e) => return Err(ApiError::new(StatusCode::BAD_REQUEST, e)),
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the compute thread ended",
    ))
}

/// The last event of a stream asked for usage (`stream_options.include_usage`): `head`'s
/// fields, no choices, and the usage, as the OpenAI API sends it.
fn usage_chunk(head: &Value, usage: Usage, cached: usize) -> Value {
    let mut u = head.clone();
    u["choices"] = json!([]);
    u["usage"] = usage_json(usage, cached);
    u
}

fn usage_json(u: Usage, cached: usize) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Streams `rx` as server-sent events: `opening` first, `chunk(text)` per piece,
/// `last(finish, usage)` at the end, then `[DONE]`.
fn sse(
    mut rx: mpsc::UnboundedReceiver<Event>,
    opening: Option<Value>,
    chunk: impl Fn(&str) -> Value + Send + 'static,
    last: impl Fn(Finish, Usage, usize) -> Vec<Value> + Send + 'static,
) -> Response {
    sse_values(move |tx| async move {
        if let Some(v) = opening
            && !send_values(&tx, vec![v])
        {
            return;
        }
        while let Some(e) = rx.recv().await {
            let out: Vec<Value> = match e {
                Event::Text(t) => vec![chunk(&t)],
                Event::Done {
                    finish,
                    prompt_tokens,
                    cached_tokens,
                    completion_tokens,
                } => last(
                    finish,
                    Usage::new(prompt_tokens, completion_tokens),
                    cached_tokens,
                ),
                Event::Error(m) => vec![ApiError::new(StatusCode::BAD_REQUEST, m).json()],
            };
            if !send_values(&tx, out) {
                return;
            }
        }
    })
}

/// Server-sent events of what `body` sends, then `[DONE]`; a comment every [`HEARTBEAT`]
/// while nothing else is sent.
fn sse_values<F, Fut>(body: F) -> Response
where
    F: FnOnce(mpsc::UnboundedSender<SseEvent>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let stream = async_stream(move |tx| async move {
        body(tx.clone()).await;
        let _ = tx.send(SseEvent::default().data("[DONE]"));
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

/// Sends each of `values` as an event; false once the client has gone.
fn send_values(tx: &mpsc::UnboundedSender<SseEvent>, values: Vec<Value>) -> bool {
    values
        .into_iter()
        .all(|v| tx.send(SseEvent::default().data(v.to_string())).is_ok())
}

/// The JSON answer `make` builds from the whole answer of `rx`. An answer that takes longer
/// than [`HEARTBEAT`] is answered 200 at once, its body led by a newline per heartbeat (JSON
/// allows the whitespace) until it is done, an error then being the body's error object: so
/// the server answers a client that shut its sending side after the request (`nc -N`) and
/// still sees, at the next write, a client that went away, freeing its slot.
async fn answer_json<F>(rx: mpsc::UnboundedReceiver<Event>, make: F) -> Response
where
    F: FnOnce(Collected) -> Value + Send + 'static,
{
    let mut answer = Box::pin(collect(rx));
    if let Ok(done) = tokio::time::timeout(HEARTBEAT, &mut answer).await {
        return match done {
            Ok(c) => axum::Json(make(c)).into_response(),
            Err(e) => e.into_response(),
        };
    }
    let body = async_stream(move |tx| async move {
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                done = &mut answer => {
                    let v = done.map_or_else(|e| e.json(), make);
                    let _ = tx.send(v.to_string());
                    return;
                }
                _ = beat.tick() => {
                    if tx.send("\n".to_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A stream of what `body` sends: the sender ends when the client goes (the stream is dropped).
fn async_stream<T, F, Fut>(body: F) -> impl futures_util::Stream<Item = Result<T, Infallible>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::UnboundedSender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(body(tx));
    futures_util::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, task)| async move {
        rx.recv().await.map(|e| (Ok(e), (rx, task)))
    })
}

/// Aborts the task when dropped (a client that goes away stops its stream's task, which drops
/// the receiver the compute thread sees closed).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a message's content.
fn content_text(c: &Option<api::Content>) -> Result<String, ApiError> {
    match c {
        None => Ok(String::new()),
        Some(api::Content::Text(t)) => Ok(t.clone()),
        Some(api::Content::Parts(parts)) => parts
            .iter()
            .map(|p| match (p.kind.as_str(), &p.text) {
                ("text", Some(t)) => Ok(t.as_str()),
                _ => Err(ApiError::bad(
                    "messages",
                    format!("content parts of type {:?} are not supported", p.kind),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat()),
    }
}

/// The conversation as the template's messages: tool calls an assistant made and tool results
/// become text the model can read.
fn messages(req: &ChatRequest) -> Result<Vec<Message>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::bad("messages", "messages must not be empty"));
    }
    req.messages
        .iter()
        .map(|m| {
            if m.audio.is_some() {
                return Err(ApiError::bad("messages", "audio in messages is not supported"));
            }
            if m.function_call.is_some() {
                return Err(ApiError::bad(
                    "messages",
                    "function_call (the legacy form) is not supported: use tool_calls",
                ));
            }
            let mut text = content_text(&m.content)?;
            match m.role.as_str() {
                "system" | "developer" => Ok(Message::new("system", text)),
                "user" => Ok(Message::new("user", text)),
                "assistant" => {
                    if text.is_empty()
                        && let Some(refusal) = &m.refusal
                    {
                        text.clone_from(refusal);
                    }
                    for call in m.tool_calls.iter().flatten() {
                        let v = json!({"name": call.function.name, "arguments": serde_json::from_str::<Value>(&call.function.arguments).unwrap_or(Value::String(call.function.arguments.clone()))});
                        text.push_str(&v.to_string());
                    }
                    Ok(Message::new("assistant", text))
                }
                "tool" => {
                    let id = m.tool_call_id.as_deref().unwrap_or("");
                    Ok(Message::new("user", format!("Result of the function call {id}: {text}")))
                }
                other => Err(ApiError::bad("messages", format!("unknown role {other:?}"))),
            }
        })
        .collect()
}

async fn chat(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match chat_inner(state, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn chat_inner(state: Arc<AppState>, body: Body) -> Result<Response, Response> {
    let err = |e: ApiError| e.into_response();
    let req: ChatRequest = parse(&state, body, Some(api::CHAT_FIELDS)).await.map_err(err)?;
    let model = state.model(&req.model, true).map_err(err)?;
    let served = &state.models[model];
    let settings = settings(&req.sampling, &state.limits).map_err(err)?;
    let mut msgs = messages(&req).map_err(err)?;
    let (Some(template), Some(tokens)) = (&served.template, &served.tokens) else {
        return Err(err(ApiError::bad("model", "this model cannot chat")));
    };
    let constraint = constrain::for_chat(&req, tokens, &mut msgs).map_err(err)?;
    let prompt = template
        .encode(served.model.tokenizer(), &msgs)
        .map_err(|e| err(ApiError::bad("messages", e.to_string())))?;
    let tools = constraint.as_ref().is_some_and(|c| c.tool_call);
    let rx = start(&state, model, prompt, settings, constraint).map_err(err)?;
    let (id, name, created) = (state.id("chatcmpl"), served.name.clone(), now());
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        if tools {
            // A tool call is sent whole once it is complete (it must parse as a whole).
            return Ok(tool_call_stream(rx, id, name, created, include_usage));
        }
        let head = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": name});
        let wrap = move |delta: Value, finish: Option<&str>| {
            let mut v = head.clone();
            v["choices"] = json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
            v
        };
        let opening = wrap(json!({"role": "assistant", "content": ""}), None);
        let wrap2 = wrap.clone();
        let chunk = move |t: &str| wrap(json!({"content": t}), None);
        let last = move |finish: Finish, usage: Usage, cached: usize| {
            let mut out = vec![wrap2(json!({}), Some(finish_reason(finish, false)))];
            if include_usage {
                out.push(usage_chunk(&wrap2(json!({}), None), usage, cached));
            }
            out
        };
        return Ok(sse(rx, Some(opening), chunk, last));
    }
    Ok(answer_json(rx, move |c| {
        let (message, tool_call) = if tools {
            constrain::tool_message(&c.text, &id)
        } else {
            (json!({"role": "assistant", "content": c.text}), false)
        };
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(c.finish, tool_call)}],
            "usage": usage_json(c.usage, c.cached),
        })
    })
    .await)
}

/// A tool-call answer as server-sent events, sent once it is whole: the message in one chunk,
/// the finish, usage (heartbeat comments while it is made).
fn tool_call_stream(
    rx: mpsc::UnboundedReceiver<Event>,
    id: String,
    name: String,
    created: u64,
    include_usage: bool,
) -> Response {
    sse_values(move |tx| async move {
        let events = match collect(rx).await {
            Ok(c) => tool_call_events(&id, &name, created, c, include_usage),
            Err(e) => vec![e.json()],
        };
        send_values(&tx, events);
    })
}

/// The events of a whole tool-call answer.
fn tool_call_events(id: &str, name: &str, created: u64, c: Collected, include_usage: bool) -> Vec<Value> {
    let (message, tool_call) = constrain::tool_message(&c.text, id);
    let mut delta = message;
    if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for (i, call) in calls.iter_mut().enumerate() {
            call["index"] = json!(i);
        }
    }
    let head = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": name});
    let mut events = Vec::new();
    let mut add = |choices: Value, usage: Option<Value>| {
        let mut v = head.clone();
        v["choices"] = choices;
        if let Some(u) = usage {
            v["usage"] = u;
        }
        events.push(v);
    };
    add(json!([{"index": 0, "delta": delta, "finish_reason": null}]), None);
    add(
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason(c.finish, tool_call)}]),
        None,
    );
    if include_usage {
        add(json!([]), Some(usage_json(c.usage, c.cached)));
    }
    events
}

async fn completions(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match completions_inner(state, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn completions_inner(state: Arc<AppState>, body: Body) -> Result<Response, Response> {
    let err = |e: ApiError| e.into_response();
    let req: CompletionRequest = parse(&state, body, Some(api::COMPLETION_FIELDS))
        .await
        .map_err(err)?;
    let model = state.model(&req.model, true).map_err(err)?;
    let served = &state.models[model];
    if req.echo == Some(true) {
        return Err(err(ApiError::bad("echo", "echo is not supported")));
    }
    let prompts = req.prompt.clone().into_vec();
    let [text] = prompts.as_slice() else {
        return Err(err(ApiError::bad("prompt", "give one prompt per request")));
    };
    let settings = settings(&req.sampling, &state.limits).map_err(err)?;
    let opts = EncodeOptions {
        add_special: true,
        parse_special: false,
        max_length: None,
    };
    let prompt = served
        .model
        .tokenizer()
        .encode(text, opts)
        .map_err(|e| err(ApiError::bad("prompt", e.to_string())))?;
    let rx = start(&state, model, prompt, settings, None).map_err(err)?;
    let (id, name, created) = (state.id("cmpl"), served.name.clone(), now());
    let head = json!({"id": id, "object": "text_completion", "created": created, "model": name});
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let (h1, h2) = (head.clone(), head);
        let chunk = move |t: &str| {
            let mut v = h1.clone();
            v["choices"] = json!([{"text": t, "index": 0, "logprobs": null, "finish_reason": null}]);
            v
        };
        let last = move |finish: Finish, usage: Usage, cached: usize| {
            let mut v = h2.clone();
            v["choices"] = json!([{"text": "", "index": 0, "logprobs": null, "finish_reason": finish_reason(finish, false)}]);
            let mut out = vec![v];
            if include_usage {
                out.push(usage_chunk(&h2, usage, cached));
            }
            out
        };
        return Ok(sse(rx, None, chunk, last));
    }
    Ok(answer_json(rx, move |c| {
        let mut v = head;
        v["choices"] = json!([{"text": c.text, "index": 0, "logprobs": null, "finish_reason": finish_reason(c.finish, false)}]);
        v["usage"] = usage_json(c.usage, c.cached);
        v
    })
    .await)
}

async fn embeddings(State(state): State<Arc<AppState>>, body: Body) -> Response {
    match embeddings_inner(state, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn embeddings_inner(state: Arc<AppState>, body: Body) -> Result<Response, Response> {
    let err = |e: ApiError| e.into_response();
    let req: EmbeddingRequest = parse(&state, body, None).await.map_err(err)?;
    let model = state.model(&req.model, false).map_err(err)?;
    let texts = req.input.into_vec();
    if texts.is_empty() || texts.len() > state.limits.embed_inputs {
        return Err(err(ApiError::bad(
            "input",
            format!("give 1 to {} texts", state.limits.embed_inputs),
        )));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(err(ApiError::bad(
                "encoding_format",
                format!("unknown encoding_format {other:?}"),
            )));
        }
    };
    let (reply, rx) = oneshot::channel();
    state
        .submit(Work::Embed(EmbedJob { model, texts, reply }))
        .map_err(err)?;
    let Vectors { values, dim, tokens } = rx
        .await
        .map_err(|_| {
            err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the compute thread ended",
            ))
        })?
        .map_err(|e| err(ApiError::bad("input", e)))?;
    if req.dimensions.is_some_and(|d| d != dim) {
        return Err(err(ApiError::bad(
            "dimensions",
            format!("this model's vectors have {dim} dimensions"),
        )));
    }
    let data: Vec<Value> = values
        .chunks_exact(dim.max(1))
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": state.models[model].name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}
