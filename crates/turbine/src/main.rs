//! `turbine`: one binary, one subcommand per job (see `cmd/`).

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "turbine",
    version,
    about = "LLM inference engine and OpenAI-compatible server for GGUF models"
)]
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
    /// Generate text for one prompt, streamed to stdout.
    Run(cmd::run::Args),
    /// OpenAI-compatible HTTP server (llama-server's flags and endpoints).
    Serve(cmd::serve::Args),
    /// Print the memory plan (per-buffer table and breakdown line) from the GGUF header.
    Plan(cmd::plan::Args),
    /// Perplexity over chunks of a text, and KL divergence against a saved base run.
    Perplexity(cmd::perplexity::Args),
    /// llama-bench-style speed table: ppN / tgN at context depths, per K/V cache type.
    Bench(cmd::bench::Args),
    /// Check every CUDA op against the CPU reference (exits 0 with all skipped without a GPU).
    CheckBackend(cmd::check_backend::Args),
    /// Write a random-weight GGUF model of a real architecture and shape (for measurements).
    Synth(cmd::synth::Args),
}

fn main() {
    let cli = Cli::parse_from(cmd::plan::llama_style_args(std::env::args_os()));
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Tokenize(args) => cmd::tokenize::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Perplexity(args) => cmd::perplexity::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::CheckBackend(args) => cmd::check_backend::run(args),
        Command::Synth(args) => cmd::synth::run(args),
    };
    if let Err(err) = result {
        // One line, the whole cause chain: users grep logs for it.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
