//! One module per subcommand; each exposes `Args` (clap) and `run(Args) -> anyhow::Result<()>`.
pub mod bench;
pub mod check_backend;
pub mod device;
pub mod inspect;
pub mod perplexity;
pub mod plan;
pub mod run;
pub mod serve;
pub mod synth;
pub mod tokenize;
