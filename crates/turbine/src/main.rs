//! `turbine`: one binary, one subcommand per job (see `cmd/`).

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(name = "turbine", version, about = "LLM inference engine and OpenAI-compatible server for GGUF models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's metadata, tensor table and totals.
    Inspect(cmd::inspect::Args),
    /// Tokenize text with a model's tokenizer, like llama-tokenize.
    Tokenize(cmd::tokenize::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Tokenize(args) => cmd::tokenize::run(args),
    };
    if let Err(err) = result {
        // One line, the whole cause chain: users grep logs for it.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
