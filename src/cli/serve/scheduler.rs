//! The server's one compute thread: requests wait in a bounded queue, each decoder model has
//! `parallel` slots (a [`Sequence`] each, sharing the mapped weights), and every step feeds
//! all active slots of a model in one forward pass: one token per generating slot, then
//! chunks of waiting prompts in what is left of the batch, so a long prompt never stalls the
//! others for more than one pass. A new request takes the free slot whose cached tokens share
//! the longest prefix with its prompt (a continued chat is not processed again).

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use edgelm::batch::{BatchDecoder, Logits, Sequence, Span};
use edgelm::embed::{EmbedOptions, Embedder};
use edgelm::generate::{Answer, GenerateOptions, StopReason};
use edgelm::grammar::GrammarMatcher;
use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::SessionOptions;
use tokio::sync::{mpsc, oneshot};

/// Why an answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The answer's own reason.
    Stop(StopReason),
    /// The slot's context is full.
    ContextFull,
    /// The server is shutting down.
    Shutdown,
}

/// What a generating request hears from the compute thread.
#[derive(Debug)]
pub enum Event {
    /// The next piece of text.
    Text(String),
    /// The end, with the token counts.
    Done {
        finish: Finish,
        prompt_tokens: usize,
        cached_tokens: usize,
        completion_tokens: usize,
    },
    /// The request failed.
    Error(String),
}

/// A request to generate.
pub struct GenerateJob {
    /// Index of the model.
    pub model: usize,
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub options: GenerateOptions,
    /// The grammar the answer follows, if any.
    pub grammar: Option<GrammarMatcher>,
    pub events: mpsc::UnboundedSender<Event>,
}

/// The sentence vectors of an embeddings request.
pub struct Vectors {
    /// One vector after another.
    pub values: Vec<f32>,
    pub dim: usize,
    /// Tokens read.
    pub tokens: usize,
}

/// A request for sentence vectors.
pub struct EmbedJob {
    pub model: usize,
    pub texts: Vec<String>,
    pub reply: oneshot::Sender<Result<Vectors, String>>,
}

/// Work for the compute thread.
pub enum Work {
    Generate(Box<GenerateJob>),
    Embed(EmbedJob),
}

impl Work {
    fn model(&self) -> usize {
        match self {
            Work::Generate(j) => j.model,
            Work::Embed(j) => j.model,
        }
    }
}

/// The bounded queue between the HTTP handlers and the compute thread.
pub struct Queue {
    items: Mutex<VecDeque<Work>>,
    wake: Condvar,
    limit: usize,
    /// No new work; finish what runs.
    closing: AtomicBool,
    /// End what runs now.
    cancel: AtomicBool,
}

impl Queue {
    pub fn new(limit: usize) -> Arc<Queue> {
        Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            limit,
            closing: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
        })
    }

    /// Adds `work`, or gives it back when the queue is full or closing.
    pub fn push(&self, work: Work) -> Result<(), Work> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() >= self.limit || self.closing.load(Ordering::Relaxed) {
            return Err(work);
        }
        items.push_back(work);
        self.wake.notify_one();
        Ok(())
    }

    /// Whether the server takes no new work.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Stops taking work; with `cancel`, also ends the answers being generated.
    pub fn close(&self, cancel: bool) {
        self.closing.store(true, Ordering::Relaxed);
        if cancel {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.wake.notify_one();
    }
}

/// What the compute thread is set up with.
pub struct Setup {
    pub session: SessionOptions,
    /// Slots per decoder model.
    pub parallel: usize,
    /// Context of each slot, per model.
    pub slot_contexts: Vec<usize>,
}

/// Starts the compute thread for `models`; returns once every model has its slots (or the
/// first error, such as too little memory for the caches).
pub fn start(
    models: Vec<Arc<Model>>,
    setup: Setup,
    queue: Arc<Queue>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("edgelm-compute".into())
        .spawn(move || {
            let runners: Result<Vec<Runner<'_>>, String> = models
                .iter()
                .zip(&setup.slot_contexts)
                .map(|(m, &ctx)| Runner::new(m, &setup, ctx))
                .collect();
            match runners {
                Ok(mut runners) => {
                    let _ = ready_tx.send(Ok(()));
                    run(&mut runners, &queue);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => Err(anyhow::anyhow!(e)),
        Err(_) => Err(anyhow::anyhow!("the compute thread ended while starting")),
    }
}

/// A model's runner.
enum Runner<'m> {
    Decoder(Box<Slots<'m>>),
    Encoder(Box<Embedder<'m>>),
}

impl<'m> Runner<'m> {
    fn new(model: &'m Model, setup: &Setup, slot_context: usize) -> Result<Runner<'m>, String> {
        if !model.config().architecture.is_decoder() {
            let opts = EmbedOptions {
                threads: setup.session.threads,
                ..EmbedOptions::default()
            };
            return Embedder::new(model, &opts)
                .map(|e| Runner::Encoder(Box::new(e)))
                .map_err(|e| e.to_string());
        }
        let session = SessionOptions {
            context: Some(slot_context),
            ..setup.session.clone()
        };
        let dec = BatchDecoder::new(model, &session).map_err(|e| e.to_string())?;
        let seqs = (0..setup.parallel)
            .map(|_| dec.sequence(slot_context))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Runner::Decoder(Box::new(Slots {
            active: (0..setup.parallel).map(|_| None).collect(),
            last_used: vec![0; setup.parallel],
            tokens: Vec::with_capacity(dec.batch()),
            spans: Vec::with_capacity(dec.batch()),
            clock: 0,
            model,
            dec,
            seqs,
        })))
    }

    /// How many more requests can start now.
    fn free(&self) -> usize {
        match self {
            Runner::Decoder(s) => s.active.iter().filter(|a| a.is_none()).count(),
            Runner::Encoder(_) => usize::MAX,
        }
    }

    fn is_busy(&self) -> bool {
        match self {
            Runner::Decoder(s) => s.active.iter().any(Option::is_some),
            Runner::Encoder(_) => false,
        }
    }
}

/// The compute loop: take what can start, step every busy model, until closed and idle.
fn run(runners: &mut [Runner<'_>], queue: &Queue) {
    let mut taken = Vec::new();
    loop {
        {
            let mut items = queue.items.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                // Take, in order, the work whose model can start it now.
                let mut i = 0;
                while i < items.len() {
                    let m = items[i].model();
                    let starting = taken.iter().filter(|w: &&Work| w.model() == m).count();
                    if starting < runners[m].free() {
                        taken.extend(items.remove(i));
                    } else {
                        i += 1;
                    }
                }
                let busy = runners.iter().any(Runner::is_busy);
                if busy || !taken.is_empty() {
                    break;
                }
                if queue.closing.load(Ordering::Relaxed) && items.is_empty() {
                    return;
                }
                items = queue
                    .wake
                    .wait_timeout(items, Duration::from_millis(200))
                    .map_or_else(|p| p.into_inner().0, |r| r.0);
            }
        }
        for work in taken.drain(..) {
            match work {
                Work::Embed(job) => embed(&mut runners[job.model], job),
                Work::Generate(job) => {
                    if let Runner::Decoder(s) = &mut runners[job.model] {
                        s.admit(*job);
                    }
                }
            }
        }
        let cancel = queue.cancel.load(Ordering::Relaxed);
        for runner in runners.iter_mut() {
            if let Runner::Decoder(s) = runner {
                if cancel {
                    s.end_all(Finish::Shutdown);
                }
                s.step();
            }
        }
    }
}

fn embed(runner: &mut Runner<'_>, job: EmbedJob) {
    let Runner::Encoder(e) = runner else {
        let _ = job.reply.send(Err("not an encoder model".into()));
        return;
    };
    let result = e
        .embed(&job.texts)
        .map(|v| {
            let tokens = job
                .texts
                .iter()
                .map(|t| e.tokenize(t).map_or(0, |ids| ids.len()))
                .sum();
            Vectors {
                values: v.as_slice().to_vec(),
                dim: v.dim(),
                tokens,
            }
        })
        .map_err(|err| err.to_string());
    let _ = job.reply.send(result);
}

/// A request being answered in a slot.
struct Active<'m> {
    prompt: Vec<u32>,
    /// Prompt tokens in the slot's sequence.
    fed: usize,
    /// Prompt tokens that were already there.
    cached: usize,
    /// The sampled token still to be fed.
    next: Option<u32>,
    sampler: Sampler,
    answer: Answer<'m>,
    events: mpsc::UnboundedSender<Event>,
}

/// A decoder model's slots.
struct Slots<'m> {
    model: &'m Model,
    dec: BatchDecoder<'m>,
    seqs: Vec<Sequence>,
    active: Vec<Option<Active<'m>>>,
    /// When each slot was last given a request (for least-recently-used reuse).
    last_used: Vec<u64>,
    clock: u64,
    /// The tokens and spans of the next pass.
    tokens: Vec<u32>,
    spans: Vec<Span>,
}

impl<'m> Slots<'m> {
    /// Puts `job` in the free slot that holds the longest prefix of its prompt (else the least
    /// recently used one).
    fn admit(&mut self, job: GenerateJob) {
        let shared = |s: &Sequence| {
            s.tokens()
                .iter()
                .zip(&job.prompt)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let Some(slot) = (0..self.seqs.len())
            .filter(|&i| self.active[i].is_none())
            .max_by_key(|&i| (shared(&self.seqs[i]), u64::MAX - self.last_used[i]))
        else {
            let _ = job.events.send(Event::Error("no free slot".into()));
            return;
        };
        let ctx = self.seqs[slot].context();
        if job.prompt.is_empty() || job.prompt.len() >= ctx {
            let _ = job.events.send(Event::Error(format!(
                "the prompt has {} tokens; a slot's context holds {ctx}",
                job.prompt.len()
            )));
            return;
        }
        self.clock += 1;
        self.last_used[slot] = self.clock;
        let cached = self.seqs[slot].reuse_prefix(&job.prompt);
        let mut sampler = Sampler::new(job.sampling, self.model);
        sampler.set_grammar(job.grammar);
        self.active[slot] = Some(Active {
            answer: Answer::new(self.model.tokenizer(), &job.options),
            prompt: job.prompt,
            fed: cached,
            cached,
            next: None,
            sampler,
            events: job.events,
        });
    }

    /// Ends the answer in `slot` for `finish`.
    fn end(&mut self, slot: usize, finish: Finish) {
        if let Some(a) = self.active[slot].take() {
            let _ = a.events.send(Event::Done {
                finish,
                prompt_tokens: a.prompt.len(),
                cached_tokens: a.cached,
                completion_tokens: a.answer.generated(),
            });
        }
    }

    fn end_all(&mut self, finish: Finish) {
        for slot in 0..self.active.len() {
            self.end(slot, finish);
        }
    }

    /// One forward pass over every active slot, then one sampled token per slot whose prompt
    /// is all in.
    fn step(&mut self) {
        self.tokens.clear();
        self.spans.clear();
        let budget = self.dec.batch();
        for slot in 0..self.active.len() {
            let Some(a) = &self.active[slot] else { continue };
            if a.events.is_closed() {
                // The client went away: free the slot now.
                self.active[slot] = None;
            } else if let Some(t) = a.next {
                if self.seqs[slot].position() >= self.seqs[slot].context() {
                    self.end(slot, Finish::ContextFull);
                } else {
                    self.tokens.push(t);
                    self.spans.push(Span { seq: slot, len: 1 });
                }
            }
        }
        for (slot, a) in self.active.iter().enumerate() {
            let room = budget - self.tokens.len();
            let Some(a) = a else { continue };
            if room == 0 {
                break;
            }
            if a.next.is_none() {
                let n = room.min(a.prompt.len() - a.fed);
                self.tokens.extend_from_slice(&a.prompt[a.fed..a.fed + n]);
                self.spans.push(Span { seq: slot, len: n });
            }
        }
        if self.spans.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.spans);
        if let Err(e) = self
            .dec
            .forward(&mut self.seqs, &self.tokens, &spans, Logits::Last)
        {
            for sp in &spans {
                if let Some(a) = self.active[sp.seq].take() {
                    let _ = a.events.send(Event::Error(e.to_string()));
                }
            }
        } else {
            for (row, sp) in spans.iter().enumerate() {
                self.after_pass(row, *sp);
            }
        }
        self.spans = spans;
    }

    /// Samples the next token of the slot of `span` (row `row` of the logits) once its
    /// prompt is all in, and passes its text on.
    fn after_pass(&mut self, row: usize, span: Span) {
        let Some(a) = &mut self.active[span.seq] else {
            return;
        };
        if a.next.take().is_none() {
            a.fed += span.len;
            if a.fed < a.prompt.len() {
                return;
            }
        }
        let token = a
            .sampler
            .sample(self.dec.logits_mut(row), self.seqs[span.seq].tokens());
        let Active { answer, events, .. } = a;
        let mut on_text = |text: &str| match events.send(Event::Text(text.to_owned())) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        };
        match answer.push(token, &mut on_text) {
            Some(stop) => {
                answer.finish(stop, &mut on_text);
                self.end(span.seq, Finish::Stop(stop));
            }
            None => a.next = Some(token),
        }
    }
}
