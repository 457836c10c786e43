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

#[derive(Subcommand)]
enum Command {
    /// Print a packed model's format version, config, tokenizer and tensor table.
    Inspect(cli::inspect::InspectArgs),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Inspect(a) => cli::inspect::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
