//! `edgelm cache-prompt MODEL --system FILE -o CACHE`: prepares a prompt cache offline (for
//! images flashed read-only) from the part every conversation shares, the system prompt.

use std::path::PathBuf;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::session::Session;

use super::common::{SessionArgs, load, read_text_string};

/// Arguments of `edgelm cache-prompt`.
#[derive(clap::Args)]
pub struct CachePromptArgs {
    /// The packed model file.
    pub model: PathBuf,
    /// File holding the system prompt.
    #[arg(long)]
    pub system: PathBuf,
    /// The prompt cache to write.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Turn special-token text in the system prompt into control tokens.
    #[arg(long)]
    pub special: bool,
    /// The session setup of the runs that will use the cache (-c and --kv must match).
    #[command(flatten)]
    pub session: SessionArgs,
}

/// Renders the chat template with the system prompt only, processes it and saves the cache.
pub fn run(args: CachePromptArgs) -> anyhow::Result<()> {
    let system = read_text_string(&args.system)?;
    let (model, _) = load(&args.model)?;
    let mut session = Session::new(&model, &args.session.options(&model)?)?;
    let messages = [Message::new("system", system)];
    let prompt = super::encode_chat(&model, &ChatTemplate::for_model(&model)?, &messages, args.special)?;
    session.feed(&prompt)?;
    session.save_prompt_cache(&args.output, prompt.len())?;
    eprintln!(
        "prompt cache: {} tokens saved to {}",
        prompt.len(),
        args.output.display()
    );
    Ok(())
}
