//! `edgelm chat MODEL`: interactive multi-turn chat. Each turn re-renders the conversation
//! with the chat template and only feeds what the KV cache does not already hold; Ctrl-C
//! stops the answer, Ctrl-D (or /exit) ends the chat.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, GenerationStats, StopReason, generate};
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

/// Runs the conversation loop.
pub fn run(args: ChatArgs) -> anyhow::Result<()> {
    let grammar = args.grammar.grammar()?;
    let mut table = None;
    let (model, _) = load(&args.model)?;
    let template = ChatTemplate::for_model(&model)?;
    let mut session = Session::new(&model, &args.session.options(&model)?)?;
    super::common::check_keep(args.keep, &session)?;
    let mut sampler = Sampler::new(args.sampling.params()?, &model);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let mut editor = rustyline::DefaultEditor::new()?;
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    eprintln!(
        "edgelm chat: {} ({} kernels, {} threads, context {}). Ctrl-C stops an answer, Ctrl-D or /exit quits.",
        args.model.display(),
        session.kernels().isa,
        session.threads(),
        session.context()
    );
    loop {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            // The bytes of the line are consumed; the conversation goes on.
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                eprintln!("edgelm chat: that line was not valid UTF-8 text and was skipped");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/exit" {
            break;
        }
        let _ = editor.add_history_entry(line);
        messages.push(Message::new("user", line));
        let mut prompt = super::encode_chat(&model, &template, &messages, args.special)?;
        // With --keep the conversation slides too: the oldest turns go (the system message and
        // the new line stay) until it leaves room for an answer (a quarter of the context at most).
        let first = usize::from(args.system.is_some());
        let room = args.max_tokens.min(session.context() / 4);
        while args.keep.is_some() && prompt.len() + room > session.context() && messages.len() > first + 2 {
            messages.drain(first..first + 2);
            prompt = super::encode_chat(&model, &template, &messages, args.special)?;
        }
        let cached = match &args.prompt_cache {
            Some(path) if session.position() == 0 => restore_prompt_cache(&mut session, path, &prompt),
            _ => session.reuse_prefix(&prompt),
        };
        let new = &prompt[cached..];
        let opts = GenerateOptions {
            max_tokens: args.max_tokens,
            stop: Vec::new(),
            sliding_window: args.keep,
            loop_guard: args.loop_guard.guard(true)?,
        };
        if let Some(g) = &grammar {
            // Each answer starts the grammar afresh.
            sampler.set_grammar(Some(matcher(g, &mut table, &model)));
        }
        stop.store(false, Ordering::SeqCst);
        let mut answer = String::new();
        let mut stdout = std::io::stdout();
        let mut written = Ok(());
        let result = generate(&mut session, &mut sampler, new, &opts, |text| {
            answer.push_str(text);
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
        if let Ok(GenerationStats {
            stop: StopReason::Repetition,
            ..
        }) = result
        {
            eprintln!("[stopped: the answer repeats itself]");
        }
        match result {
            Ok(stats) if args.verbose => eprintln!(
                "[{} new prompt tokens, {:.1} tok/s; {} generated, {:.1} tok/s]",
                stats.prompt_tokens,
                rate(stats.prompt_tokens, stats.prompt_time),
                stats.generated_tokens,
                rate(stats.generated_tokens, stats.generation_time)
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}; starting a new conversation");
                session.reset();
                messages.truncate(usize::from(args.system.is_some()));
                continue;
            }
        }
        messages.push(Message::new("assistant", answer));
        if let Some(path) = args.prompt_cache.as_ref().filter(|_| !args.prompt_cache_ro) {
            save_prompt_cache(&session, path, session.position());
        }
    }
    Ok(())
}
