//! `edgelm._edgelm`: the native module of the Python package (see `python/README.md`).
//!
//! A `Model` keeps the loaded model in an `Arc` with idle sessions and embedders for reuse
//! (made on demand, so that two threads can generate at once). Generation runs on its own
//! thread and streams pieces through a bounded channel to a `TextStream` iterator; every wait
//! and every computation releases the GIL (`Python::detach`).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::embed::EmbedOptions;
use edgelm::generate::{GenerateOptions, GenerationStats, LoopGuard, generate};
use edgelm::model::Model as EModel;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::SessionOptions;
use edgelm::tokenizer::EncodeOptions;
use edgelm_ffi::{Error as CError, ErrorKind, OwnedEmbedder, OwnedSession};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyString};

create_exception!(edgelm, Error, PyException, "Base class of edgelm's errors.");
create_exception!(
    edgelm,
    ModelError,
    Error,
    "The model file cannot be read or is not a valid edgelm model."
);
create_exception!(
    edgelm,
    InvalidInputError,
    Error,
    "An argument is out of range or an option is invalid."
);
create_exception!(
    edgelm,
    UnsupportedError,
    Error,
    "The model cannot do this (generate with an encoder, embed with a decoder)."
);
create_exception!(
    edgelm,
    ContextFullError,
    Error,
    "The prompt and answer do not fit in the context."
);
create_exception!(
    edgelm,
    TemplateError,
    Error,
    "The chat template failed to render."
);

/// The Python exception of an edgelm error.
fn py_err(e: impl Into<CError>) -> PyErr {
    let e = e.into();
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::Model => ModelError::new_err(msg),
        ErrorKind::Unsupported => UnsupportedError::new_err(msg),
        ErrorKind::ContextFull => ContextFullError::new_err(msg),
        ErrorKind::Template => TemplateError::new_err(msg),
        ErrorKind::InvalidArgument | ErrorKind::NullArgument | ErrorKind::BufferTooSmall => {
            InvalidInputError::new_err(msg)
        }
        _ => Error::new_err(msg),
    }
}

/// Idle values kept for reuse.
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Pool<T> {
    fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, value: T) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(value);
    }
}

struct Inner {
    model: Arc<EModel>,
    template: Result<ChatTemplate, String>,
    session_options: SessionOptions,
    threads: Option<usize>,
    sessions: Pool<OwnedSession>,
    embedders: Pool<OwnedEmbedder>,
}

impl Inner {
    /// An idle session (reset) or a new one.
    fn session(&self) -> Result<OwnedSession, CError> {
        match self.sessions.take() {
            Some(mut s) => {
                s.with(|s| s.reset());
                Ok(s)
            }
            None => Ok(OwnedSession::open(self.model.clone(), &self.session_options)?),
        }
    }

    fn embedder(&self) -> Result<OwnedEmbedder, CError> {
        match self.embedders.take() {
            Some(e) => Ok(e),
            None => {
                let opts = EmbedOptions {
                    threads: self.threads,
                    ..EmbedOptions::default()
                };
                Ok(OwnedEmbedder::open(self.model.clone(), &opts)?)
            }
        }
    }
}

/// A language model or sentence encoder loaded from a packed `.edgelm` file.
#[pyclass(frozen, module = "edgelm")]
struct Model {
    inner: Arc<Inner>,
}

/// Sampling and stopping settings shared by `generate` and `chat`.
struct Settings {
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<String>,
    loop_guard: bool,
}

/// The value of keyword argument `key`: one out of range is an `InvalidInputError` (a
/// `ValueError`), one of the wrong type a `TypeError`, both naming `key`.
fn arg<'a, 'py, T: FromPyObject<'a, 'py>>(key: &str, v: &'a Bound<'py, PyAny>) -> PyResult<T> {
    v.extract::<T>().map_err(|e| {
        let e: PyErr = e.into();
        let msg = format!("{key}: {}", e.value(v.py()));
        if e.is_instance_of::<PyOverflowError>(v.py()) {
            InvalidInputError::new_err(msg)
        } else {
            PyTypeError::new_err(msg)
        }
    })
}

/// The settings in the keyword arguments of `generate` and `chat` (see `_edgelm.pyi`), checked
/// by the library's one sampling check.
fn settings(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Settings> {
    let mut s = Settings {
        max_tokens: 256,
        sampling: SamplingParams::default(),
        stop: Vec::new(),
        loop_guard: false,
    };
    for (k, v) in kwargs.into_iter().flat_map(|d| d.iter()) {
        let key: String = k.extract()?;
        let p = &mut s.sampling;
        match key.as_str() {
            "max_tokens" => s.max_tokens = arg(&key, &v)?,
            "temperature" => p.temperature = arg(&key, &v)?,
            "top_k" => p.top_k = arg(&key, &v)?,
            "top_p" => p.top_p = arg(&key, &v)?,
            "min_p" => p.min_p = arg(&key, &v)?,
            "repeat_penalty" => p.repeat_penalty = arg(&key, &v)?,
            "repeat_last_n" => p.repeat_last_n = arg(&key, &v)?,
            "presence_penalty" => p.presence_penalty = arg(&key, &v)?,
            "frequency_penalty" => p.frequency_penalty = arg(&key, &v)?,
            "dry_multiplier" => p.dry_multiplier = arg(&key, &v)?,
            "dry_base" => p.dry_base = arg(&key, &v)?,
            "dry_allowed_length" => p.dry_allowed_length = arg(&key, &v)?,
            "dry_penalty_last_n" => p.dry_penalty_last_n = arg(&key, &v)?,
            "dry_sequence_breakers" => p.dry_sequence_breakers = arg(&key, &v)?,
            "seed" if !v.is_none() => p.seed = arg(&key, &v)?,
            // One string is one stop string, as in the OpenAI API (not a list of characters).
            "stop" if v.is_instance_of::<PyString>() => s.stop = vec![arg(&key, &v)?],
            "stop" if !v.is_none() => s.stop = arg(&key, &v)?,
            "loop_guard" => s.loop_guard = arg(&key, &v)?,
            "seed" | "stop" => {}
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unexpected keyword argument {key:?}"
                )));
            }
        }
    }
    s.sampling = edgelm_ffi::checked_sampling(s.sampling).map_err(py_err)?;
    s.stop = edgelm_ffi::checked_stop(s.stop).map_err(py_err)?;
    Ok(s)
}

#[pymethods]
impl Model {
    /// Opens the packed model at `path`. `context` (tokens, default: the model's maximum capped
    /// at 4096) and `threads` (default: the physical performance cores, at most the available
    /// ones) apply to the sessions
    /// and embedders the model makes.
    #[new]
    #[pyo3(signature = (path, *, context=None, threads=None))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        context: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Model> {
        // `os.fsdecode` takes what `open` takes: str, bytes and os.PathLike.
        let path: PathBuf = py.import("os")?.call_method1("fsdecode", (path,))?.extract()?;
        let threads = edgelm_ffi::threads(threads);
        let model = py.detach(|| EModel::open(&path)).map_err(py_err)?;
        let max = model.config().max_context;
        if let Some(c) = context.filter(|&c| c == 0 || c > max) {
            return Err(InvalidInputError::new_err(format!(
                "context {c}: must be between 1 and {max} (the model's longest)"
            )));
        }
        let template = ChatTemplate::for_model(&model).map_err(|e| e.to_string());
        Ok(Model {
            inner: Arc::new(Inner {
                model: Arc::new(model),
                template,
                session_options: SessionOptions {
                    context,
                    threads,
                    ..SessionOptions::default()
                },
                threads,
                sessions: Pool(Mutex::new(Vec::new())),
                embedders: Pool(Mutex::new(Vec::new())),
            }),
        })
    }

    /// The architecture name (`llama`, `qwen2`, `gemma3`, `bert`, ...).
    #[getter]
    fn architecture(&self) -> &'static str {
        self.inner.model.config().architecture.name()
    }

    /// Tokens in the vocabulary.
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.model.config().vocab_size
    }

    /// The longest context the model supports, in tokens.
    #[getter]
    fn max_context(&self) -> usize {
        self.inner.model.config().max_context
    }

    /// Values per sentence vector for encoder models, `None` for decoders.
    #[getter]
    fn embedding_dim(&self) -> Option<usize> {
        let c = self.inner.model.config();
        (!c.architecture.is_decoder()).then_some(c.hidden_size)
    }

    /// The token ids of `text`. `add_special` adds the tokens the model expects around a text
    /// (BOS, `[CLS]` ...); `special` turns text spelling a special token (`<|im_end|>`) into
    /// that token; leave it off for text from other people.
    #[pyo3(signature = (text, *, add_special=true, special=false))]
    fn tokenize(&self, py: Python<'_>, text: &str, add_special: bool, special: bool) -> PyResult<Vec<u32>> {
        let opts = EncodeOptions {
            add_special,
            parse_special: special,
            max_length: None,
        };
        py.detach(|| self.inner.model.tokenizer().encode(text, opts))
            .map_err(py_err)
    }

    /// The text of token ids (bytes that are not UTF-8 become U+FFFD).
    fn detokenize(&self, ids: Vec<u32>) -> PyResult<String> {
        let tok = self.inner.model.tokenizer();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
            return Err(InvalidInputError::new_err(format!(
                "token id {bad} is outside the vocabulary of {}",
                tok.vocab_size()
            )));
        }
        Ok(String::from_utf8_lossy(&tok.decode(&ids)).into_owned())
    }

    /// Streams the continuation of `prompt` (fed as plain text unless `special`) as an
    /// iterator of text pieces.
    #[pyo3(signature = (prompt, *, special=false, **options))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        special: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<TextStream> {
        let s = settings(options)?;
        let ids = self.tokenize(py, prompt, true, special)?;
        self.stream(ids, s)
    }

    /// Streams the assistant's answer to `messages` (dicts with `role` and `content`),
    /// rendered with the model's chat template; message text is always plain text.
    #[pyo3(signature = (messages, **options))]
    fn chat(
        &self,
        py: Python<'_>,
        messages: Vec<Bound<'_, PyDict>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<TextStream> {
        let s = settings(options)?;
        let field = |m: &Bound<'_, PyDict>, key: &str| -> PyResult<String> {
            m.get_item(key)?
                .ok_or_else(|| InvalidInputError::new_err(format!("a message has no {key:?}")))?
                .extract()
        };
        let messages = messages
            .iter()
            .map(|m| Ok(Message::new(&field(m, "role")?, field(m, "content")?)))
            .collect::<PyResult<Vec<_>>>()?;
        let inner = &self.inner;
        let template = inner
            .template
            .as_ref()
            .map_err(|e| TemplateError::new_err(e.clone()))?;
        let ids = py
            .detach(|| template.encode(inner.model.tokenizer(), &messages))
            .map_err(py_err)?;
        self.stream(ids, s)
    }

    /// Sentence vectors of `texts` (encoder models): a float32 array of shape
    /// `(len(texts), embedding_dim)`.
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let inner = &self.inner;
        let vectors = py
            .detach(|| -> Result<_, CError> {
                let mut e = inner.embedder()?;
                let result = e.with(|e| e.run_in_pool(|e| e.embed(&texts)));
                inner.embedders.put(e);
                Ok(result?)
            })
            .map_err(py_err)?;
        let bytes: Vec<u8> = vectors.as_slice().iter().flat_map(|v| v.to_ne_bytes()).collect();
        let array = py
            .import("numpy")?
            .call_method1("frombuffer", (PyByteArray::new(py, &bytes), "float32"))?;
        let dim = self.embedding_dim().unwrap_or(0);
        array.call_method1("reshape", ((texts.len(), dim),))
    }

    fn __repr__(&self) -> String {
        let c = self.inner.model.config();
        format!(
            "edgelm.Model(architecture={:?}, vocab_size={}, max_context={})",
            c.architecture.name(),
            c.vocab_size,
            c.max_context
        )
    }
}

impl Model {
    /// Starts generating from `ids` on a thread of its own and returns the stream.
    fn stream(&self, ids: Vec<u32>, s: Settings) -> PyResult<TextStream> {
        self.inner.model.decoder().map_err(py_err)?;
        let (tx, rx) = sync_channel(64);
        let cancelled = Arc::new(AtomicBool::new(false));
        let inner = self.inner.clone();
        let stop = cancelled.clone();
        std::thread::Builder::new()
            .name("edgelm-generate".into())
            .spawn(move || run_generation(&inner, &ids, s, &stop, &tx))
            .map_err(|e| Error::new_err(format!("cannot start the generation thread: {e}")))?;
        Ok(TextStream {
            rx: Mutex::new(rx),
            cancelled,
            stats: Mutex::new(None),
        })
    }
}

enum Piece {
    Text(String),
    End(Result<GenerationStats, CError>),
}

fn run_generation(
    inner: &Inner,
    ids: &[u32],
    s: Settings,
    cancelled: &Arc<AtomicBool>,
    tx: &SyncSender<Piece>,
) {
    let result = inner.session().and_then(|mut session| {
        let mut sampler = Sampler::new(s.sampling, &inner.model);
        let opts = GenerateOptions {
            max_tokens: s.max_tokens,
            stop: s.stop,
            sliding_window: None,
            loop_guard: s.loop_guard.then(LoopGuard::default),
            // Stops a long prompt too, not only the tokens after it.
            cancel: Some(cancelled.clone()),
        };
        let result = session.with(|session| {
            generate(session, &mut sampler, ids, &opts, |piece| {
                let go_on =
                    !cancelled.load(Ordering::Relaxed) && tx.send(Piece::Text(piece.to_owned())).is_ok();
                if go_on {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(())
                }
            })
        });
        inner.sessions.put(session);
        Ok(result?)
    });
    // The stream may be gone already: nothing left to tell.
    let _ = tx.send(Piece::End(result));
}

/// The pieces of text of one generation, as they are produced. Stop early with `close()` or
/// by dropping it; `stats` is set once it is exhausted.
#[pyclass(module = "edgelm")]
struct TextStream {
    rx: Mutex<Receiver<Piece>>,
    cancelled: Arc<AtomicBool>,
    stats: Mutex<Option<Py<PyDict>>>,
}

#[pymethods]
impl TextStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let piece = loop {
            // Waits in short steps so that Ctrl-C is not held up by a long prompt.
            let wait = || {
                let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
                rx.recv_timeout(Duration::from_millis(50))
            };
            match py.detach(wait) {
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        self.cancelled.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break None,
                Ok(piece) => break Some(piece),
            }
        };
        match piece {
            Some(Piece::Text(text)) => Ok(Some(text)),
            Some(Piece::End(Ok(stats))) => {
                let d = PyDict::new(py);
                d.set_item("prompt_tokens", stats.prompt_tokens)?;
                d.set_item("generated_tokens", stats.generated_tokens)?;
                d.set_item("prompt_seconds", stats.prompt_time.as_secs_f64())?;
                d.set_item("generation_seconds", stats.generation_time.as_secs_f64())?;
                d.set_item("stop", format!("{:?}", stats.stop))?;
                *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = Some(d.unbind());
                Ok(None)
            }
            Some(Piece::End(Err(e))) => Err(py_err(e)),
            None => Ok(None),
        }
    }

    /// Stops the generation; the iterator ends.
    fn close(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        // Unblock the generating thread if it waits on a full channel.
        while self
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .is_ok()
        {}
    }

    /// Counts and timings (`prompt_tokens`, `generated_tokens`, `prompt_seconds`,
    /// `generation_seconds`, `stop`) once the stream is exhausted, else `None`.
    #[getter]
    fn stats(&self, py: Python<'_>) -> Option<Py<PyDict>> {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|d| d.clone_ref(py))
    }
}

impl Drop for TextStream {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

#[pymodule]
fn _edgelm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add_class::<TextStream>()?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    // Also a `ValueError`, as Python code expects of a bad argument.
    let invalid = py.get_type::<InvalidInputError>();
    invalid.setattr(
        "__bases__",
        (py.get_type::<Error>(), py.get_type::<PyValueError>()),
    )?;
    m.add("InvalidInputError", invalid)?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("ContextFullError", py.get_type::<ContextFullError>())?;
    m.add("TemplateError", py.get_type::<TemplateError>())?;
    Ok(())
}
