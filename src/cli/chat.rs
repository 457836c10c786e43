//! `edgelm chat MODEL`: interactive multi-turn chat. Each turn re-renders the conversation
//! with the chat template and only feeds what the KV cache does not already hold; Ctrl-C
//! stops the answer, Ctrl-D (or /exit) ends the chat.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use edgelm::chat::{ChatTemplate, Message};
use edgelm::format::text::read_text_line;
use edgelm::generate::{GenerateOptions, GenerationStats, LoopGuard, StopReason, generate};
use edgelm::model::Model;
use edgelm::sampling::Sampler;
use edgelm::session::Session;
use rustyline::error::ReadlineError;

use super::common::{
    GrammarArgs, LoopGuardArgs, SamplingArgs, SessionArgs, load, matcher, rate, restore_prompt_cache,
    save_prompt_cache,
};

/// Arguments of `edgelm chat`.
#[derive(clap::Args)]
pub struct ChatArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub max_tokens: usize,
    /// Turn special-token text in the lines typed and the system text (`<|im_end|>`) into
    /// control tokens; without it they are plain text and only the chat template's markup is.
    #[arg(long)]
    pub special: bool,
    /// When the context fills up, keep the conversation's first N tokens and slide the rest
    /// within an answer, and drop the oldest turns before a new one (without it, a full
    /// context starts a new conversation).
    #[arg(long = "keep")]
    pub keep: Option<usize>,
    /// Prompt cache file: the first prompt maps the state of the longest prefix it shares
    /// with the file instead of computing it, and the conversation is saved to it after each
    /// answer.
    #[arg(long)]
    pub prompt_cache: Option<PathBuf>,
    /// Use the prompt cache but never write it (a cache prepared for a read-only image).
    #[arg(long, requires = "prompt_cache")]
    pub prompt_cache_ro: bool,
    /// Print timings after each answer.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub loop_guard: LoopGuardArgs,
    #[command(flatten)]
    pub grammar: GrammarArgs,
}

/// One conversation with a chat model: the session, its sampler, the template and the messages
/// so far. Each turn re-renders the conversation and feeds only what the KV cache does not hold.
/// `chat` and `assist` hold one.
pub struct Conversation<'m> {
    model: &'m Model,
    template: ChatTemplate,
    /// The model's session.
    pub session: Session<'m>,
    /// The sampler (its grammar can be set before a turn).
    pub sampler: Sampler,
    messages: Vec<Message>,
    /// Messages before the first turn (the system prompt) that every new conversation keeps.
    first: usize,
    /// Generation settings of every answer.
    pub turn: TurnOptions,
}

/// What every answer of a [`Conversation`] is generated with.
#[derive(Clone, Debug)]
pub struct TurnOptions {
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// `--keep`: slide the context instead of starting over (see [`ChatArgs::keep`]).
    pub keep: Option<usize>,
    /// Special-token text in the messages becomes control tokens.
    pub special: bool,
    /// Stop an answer that repeats itself.
    pub loop_guard: Option<LoopGuard>,
}

impl<'m> Conversation<'m> {
    /// A conversation with `model`, started by `system` if given.
    pub fn new(
        model: &'m Model,
        session: &SessionArgs,
        sampling: &SamplingArgs,
        system: Option<&str>,
        turn: TurnOptions,
    ) -> anyhow::Result<Self> {
        let template = ChatTemplate::for_model(model)?;
        let session = Session::new(model, &session.options(model)?)?;
        super::common::check_keep(turn.keep, &session)?;
        let messages: Vec<Message> = system.iter().map(|s| Message::new("system", *s)).collect();
        Ok(Conversation {
            model,
            template,
            session,
            sampler: Sampler::new(sampling.params()?, model),
            first: messages.len(),
            messages,
            turn,
        })
    }

    /// Answers `line`, handing the answer's text to `on_text` as it is generated (`Break` stops
    /// it); the answer joins the conversation. With `prompt_cache`, the first prompt maps the
    /// state of the longest prefix it shares with that file. A failed generation is reported on
    /// stderr and starts a new conversation: `Ok(None)`.
    pub fn reply(
        &mut self,
        line: &str,
        prompt_cache: Option<&Path>,
        mut on_text: impl FnMut(&str) -> ControlFlow<()> + Send,
    ) -> anyhow::Result<Option<GenerationStats>> {
        let (model, t) = (self.model, &self.turn);
        self.messages.push(Message::new("user", line));
        let mut prompt = super::encode_chat(model, &self.template, &self.messages, t.special)?;
        // With --keep the conversation slides too: when it leaves no room for an answer (a
        // quarter of the context at most), the oldest turns go until it fills half the context
        // (the system message and the new line stay), so that the turns after it reuse the
        // cache again until the next slide.
        let ctx = self.session.context();
        if t.keep.is_some() && prompt.len() + t.max_tokens.min(ctx / 4) > ctx {
            while prompt.len() > ctx / 2 && self.messages.len() > self.first + 2 {
                self.messages.drain(self.first..self.first + 2);
                prompt = super::encode_chat(model, &self.template, &self.messages, t.special)?;
            }
        }
        let cached = match prompt_cache {
            Some(path) if self.session.position() == 0 => {
                restore_prompt_cache(&mut self.session, path, &prompt)
            }
            _ => self.session.reuse_prefix(&prompt),
        };
        let opts = GenerateOptions {
            max_tokens: t.max_tokens,
            stop: Vec::new(),
            sliding_window: t.keep,
            loop_guard: t.loop_guard,
            cancel: None,
        };
        let mut answer = String::new();
        let result = generate(
            &mut self.session,
            &mut self.sampler,
            &prompt[cached..],
            &opts,
            |text| {
                answer.push_str(text);
                on_text(text)
            },
        );
        match result {
            Ok(stats) => {
                if stats.stop == StopReason::Repetition {
                    eprintln!("[stopped: the answer repeats itself]");
                }
                self.messages.push(Message::new("assistant", answer));
                Ok(Some(stats))
            }
            Err(e) => {
                eprintln!("error: {e}; starting a new conversation");
                self.session.reset();
                self.messages.truncate(self.first);
                Ok(None)
            }
        }
    }
}

/// Where the lines typed come from: a terminal (line editing and history) or a pipe or file,
/// read with a bound on the line ([`read_text_line`]) so that endless input (`< /dev/zero`)
/// ends the chat with an error instead of filling memory.
enum Lines {
    Terminal(rustyline::DefaultEditor),
    Piped(std::io::StdinLock<'static>),
}

/// One line of input, or why there is none.
enum Line {
    Text(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    NotUtf8,
    End,
}

impl Lines {
    fn next(&mut self) -> anyhow::Result<Line> {
        match self {
            Lines::Terminal(editor) => match editor.readline("> ") {
                Ok(line) => Ok(Line::Text(line)),
                Err(ReadlineError::Interrupted) => Ok(Line::Interrupted),
                Err(ReadlineError::Eof) => Ok(Line::End),
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => Ok(Line::NotUtf8),
                Err(e) => Err(e.into()),
            },
            Lines::Piped(stdin) => {
                let bytes = read_text_line(stdin).map_err(|e| anyhow::anyhow!("standard input: {e}"))?;
                if bytes.is_empty() {
                    return Ok(Line::End);
                }
                Ok(String::from_utf8(bytes).map_or(Line::NotUtf8, Line::Text))
            }
        }
    }
}

/// Runs the conversation loop.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let grammar = args.grammar.grammar()?;
    let mut table = None;
    let (model, _) = load(&args.model)?;
    let turn = TurnOptions {
        max_tokens: args.max_tokens,
        keep: args.keep,
        special: args.special,
        loop_guard: args.loop_guard.guard(true)?,
    };
    let mut chat = Conversation::new(
        &model,
        &args.session,
        &args.sampling,
        args.system.as_deref(),
        turn,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let mut lines = if std::io::stdin().is_terminal() {
        Lines::Terminal(rustyline::DefaultEditor::new()?)
    } else {
        Lines::Piped(std::io::stdin().lock())
    };
    eprintln!(
        "edgelm chat: {} ({} kernels, {} threads, context {}). Ctrl-C stops an answer, Ctrl-D or /exit quits.",
        args.model.display(),
        chat.session.kernels().isa,
        chat.session.threads(),
        chat.session.context()
    );
    loop {
        let line = match lines.next()? {
            Line::Text(line) => line,
            Line::Interrupted => continue,
            Line::End => break,
            // The bytes of the line are consumed; the conversation goes on.
            Line::NotUtf8 => {
                eprintln!("edgelm chat: that line was not valid UTF-8 text and was skipped");
                continue;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/exit" {
            break;
        }
        if let Lines::Terminal(editor) = &mut lines {
            let _ = editor.add_history_entry(line);
        }
        if let Some(g) = &grammar {
            // Each answer starts the grammar afresh.
            chat.sampler.set_grammar(Some(matcher(g, &mut table, &model)));
        }
        stop.store(false, Ordering::SeqCst);
        let mut stdout = std::io::stdout();
        let mut written = Ok(());
        let result = chat.reply(line, args.prompt_cache.as_deref(), |text| {
            written = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
            if written.is_err() || stop.load(Ordering::SeqCst) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        // A closed stdout ends the chat (quietly, see main).
        written?;
        writeln!(stdout)?;
        let Some(stats) = result? else { continue };
        if args.verbose {
            eprintln!(
                "[{} new prompt tokens, {:.1} tok/s; {} generated, {:.1} tok/s]",
                stats.prompt_tokens,
                rate(stats.prompt_tokens, stats.prompt_time),
                stats.generated_tokens,
                rate(stats.generated_tokens, stats.generation_time)
            );
        }
        if let Some(path) = args.prompt_cache.as_ref().filter(|_| !args.prompt_cache_ro) {
            save_prompt_cache(&chat.session, path, chat.session.position());
        }
    }
    Ok(())
}
