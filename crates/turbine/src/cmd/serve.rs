//! `turbine serve`: the OpenAI-compatible HTTP server (see the `server` crate).

pub use server::Args;

pub fn run(args: Args) -> anyhow::Result<()> {
    server::run(args)
}
