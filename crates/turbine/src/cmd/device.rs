//! Which backend a command runs on: `-ngl` / `--main-gpu` of [`ModelArgs`] turned into a
//! [`backends::Placement`] (the rules live in the `backends` crate, shared with `serve`).

use backends::{BackendJob, GpuLayers};

use super::plan::ModelArgs;

/// Builds the backend `a` asks for on a model of `n_layer` layers and runs `job` on it.
pub fn dispatch<J: BackendJob>(a: &ModelArgs, n_layer: usize, job: J) -> anyhow::Result<J::Output> {
    let layers = a
        .n_gpu_layers
        .as_deref()
        .map(GpuLayers::parse)
        .transpose()?;
    let placement = backends::placement(layers, a.main_gpu, n_layer)?;
    backends::dispatch(placement, a.threads(), job)
}
