//! `turbine inspect`.

#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF).
    pub model: std::path::PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`inspect` is being built")
}
