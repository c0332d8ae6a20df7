//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> anyhow::Result<()>`.
pub mod inspect;
pub mod tokenize;
