//! The `edgelm` command.

use clap::{Parser, Subcommand};

mod cli;

/// Run quantized transformer language models on edge hardware.
#[derive(Parser)]
#[command(name = "edgelm", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// `run` and `chat` take an option again to override it (the last one wins), so that scripts
/// can pass defaults before the user's own arguments.
#[derive(Subcommand)]
enum Command {
    /// Generate an answer to one prompt (streamed to stdout).
    #[command(args_override_self = true)]
    Run(Box<cli::run::RunArgs>),
    /// Chat interactively.
    #[command(args_override_self = true)]
    Chat(Box<cli::chat::ChatArgs>),
    /// Process a system prompt and save its state as a prompt cache (for `--prompt-cache`).
    CachePrompt(cli::cache_prompt::CachePromptArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Measure perplexity on a text file (llama.cpp's method).
    Perplexity(Box<cli::perplexity::PerplexityArgs>),
    /// Measure prompt-processing and generation speed (like llama-bench).
    Bench(cli::bench::BenchArgs),
    /// Print a packed model's format version, config, tokenizer and tensor table.
    Inspect(cli::inspect::InspectArgs),
    /// Print the sentence vectors of texts (encoder models) as a JSON array.
    Embed(cli::embed::EmbedArgs),
    /// Print the lines of a text file most similar in meaning to a query (encoder models).
    Search(cli::search::SearchArgs),
    /// Serve models over HTTP with OpenAI's API (chat, completions, embeddings).
    Serve(Box<cli::serve::ServeArgs>),
    /// Transcribe speech (a WAV file, or a live stream with --stream) with a Whisper model.
    Transcribe(cli::transcribe::TranscribeArgs),
    /// A voice assistant: speech in (Whisper), answers from a chat model, optionally spoken.
    #[command(args_override_self = true)]
    Assist(Box<cli::assist::AssistArgs>),
}

fn main() -> std::process::ExitCode {
    let start = std::time::Instant::now();
    let args = Args::parse();
    let result = match args.command {
        Command::Run(a) => cli::run::run(*a),
        Command::Chat(a) => cli::chat::run(*a),
        Command::CachePrompt(a) => cli::cache_prompt::run(a),
        Command::Tokenize(a) => cli::tokenize::run(a),
        Command::Perplexity(a) => cli::perplexity::run(*a),
        Command::Bench(a) => cli::bench::run(a, start),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Embed(a) => cli::embed::run(a),
        Command::Search(a) => cli::search::run(a),
        Command::Serve(a) => cli::serve::run(*a),
        Command::Transcribe(a) => cli::transcribe::run(a),
        Command::Assist(a) => cli::assist::run(*a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Whoever read the output stopped reading (`| head`): done, like other Unix tools.
        Err(e) if cli::common::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
