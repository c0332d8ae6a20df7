//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> anyhow::Result<()>`.
pub mod inspect;
pub mod plan;
pub mod run;
pub mod tokenize;
