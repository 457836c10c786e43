//! `edgelm run MODEL -p TEXT`: one prompt, the answer streamed to stdout.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, generate};
use edgelm::sampling::Sampler;
use edgelm::session::Session;

use super::common::{
    GrammarArgs, LoopGuardArgs, SamplingArgs, SessionArgs, load, matcher, rate, restore_prompt_cache,
    save_prompt_cache,
};

/// Arguments of `edgelm run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// The prompt.
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    pub max_tokens: usize,
    /// System prompt (chat template only).
    #[arg(long)]
    pub system: Option<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Turn special-token text in the prompt and system text (`<|im_end|>`) into control
    /// tokens; without it they are plain text and only the chat template's markup is.
    #[arg(long)]
    pub special: bool,
    /// Stop when this text appears (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// When the context fills up, keep the prompt's first N tokens and slide the rest.
    #[arg(long = "keep")]
    pub keep: Option<usize>,
    /// Prompt cache file: the state of the longest prefix of the prompt it holds is mapped
    /// instead of computed, and the prompt's state is saved to it (when it held less).
    #[arg(long)]
    pub prompt_cache: Option<PathBuf>,
    /// Use the prompt cache but never write it (a cache prepared for a read-only image).
    #[arg(long, requires = "prompt_cache")]
    pub prompt_cache_ro: bool,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub loop_guard: LoopGuardArgs,
    #[command(flatten)]
    pub grammar: GrammarArgs,
}

/// Generates and streams the answer; timings go to stderr.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let grammar = args.grammar.grammar()?;
    let (model, load_time) = load(&args.model)?;
    let mut session = Session::new(&model, &args.session.options(&model)?)?;
    let prompt = if args.raw {
        super::encode_text(&model, &args.prompt, true, args.special)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.push(Message::new("user", args.prompt.clone()));
        super::encode_chat(&model, &ChatTemplate::for_model(&model)?, &messages, args.special)?
    };
    super::common::check_keep(args.keep, &session)?;
    let mut sampler = Sampler::new(args.sampling.params()?, &model);
    if let Some(g) = &grammar {
        sampler.set_grammar(Some(matcher(g, &mut None, &model)));
    }
    let opts = GenerateOptions {
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
        sliding_window: args.keep,
        loop_guard: args.loop_guard.guard(false)?,
        cancel: None,
    };
    let cache = args.prompt_cache.as_deref();
    let reused = cache.map_or(0, |path| restore_prompt_cache(&mut session, path, &prompt));
    let mut stdout = std::io::stdout();
    let mut written = Ok(());
    let stats = generate(&mut session, &mut sampler, &prompt[reused..], &opts, |text| {
        written = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    })?;
    // A closed stdout ends the run (quietly, see main).
    written?;
    writeln!(stdout)?;
    // An answer shorter than the weights' background check is not left unchecked (the error
    // names the file already).
    model.file().wait_for_check()?;
    // Unless the cache held the prompt already, or a sliding window moved it.
    if let Some(path) = cache
        && !args.prompt_cache_ro
        && reused + 1 < prompt.len()
        && session.tokens().starts_with(&prompt)
    {
        save_prompt_cache(&session, path, prompt.len());
    }
    eprintln!(
        "edgelm: {} kernels, {} threads | load {:.0} ms | prompt {} tokens, {:.1} tok/s | generation {} tokens, {:.1} tok/s | stop: {:?}",
        session.kernels().isa,
        session.threads(),
        load_time.as_secs_f64() * 1e3,
        stats.prompt_tokens,
        rate(stats.prompt_tokens, stats.prompt_time),
        stats.generated_tokens,
        rate(stats.generated_tokens, stats.generation_time),
        stats.stop,
    );
    Ok(())
}
