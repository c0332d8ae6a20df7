//! Which backend a command runs on, from `-ngl` (llama.cpp's `--n-gpu-layers`).
//!
//! Commands write their work once, generic over [`Backend`], as a [`BackendJob`]; [`dispatch`]
//! builds the backend the flags ask for and runs the job on it. `-ngl 0` (the default) is the
//! CPU; `-ngl all` (or any N ≥ the model's layer count, as in llama.cpp where the output layer
//! counts as one more) puts the whole model on CUDA device `--main-gpu`. Splitting the layers
//! between the two is not implemented yet and is refused with a clear message rather than
//! silently running everything on one side.

use std::sync::Arc;

use anyhow::bail;
use turbine_core::cpu::CpuBackend;
use turbine_core::Backend;

use super::plan::ModelArgs;

/// Where the model's layers go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Cpu,
    /// Every layer, the embeddings and the output on CUDA device `ordinal`.
    Cuda {
        ordinal: usize,
    },
}

/// Parses `-ngl`: a layer count, `all`, or a negative number (llama.cpp's "all").
pub fn parse_gpu_layers(value: &str) -> anyhow::Result<Option<usize>> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("all") || v.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(n) if n < 0 => Ok(None),
        Ok(n) => Ok(Some(n as usize)),
        Err(_) => bail!("-ngl: expected a layer count or `all`, got `{value}`"),
    }
}

/// The placement `-ngl` asks for on a model of `n_layer` layers.
pub fn placement(a: &ModelArgs, n_layer: usize) -> anyhow::Result<Placement> {
    let layers = match a.n_gpu_layers.as_deref() {
        None => Some(0),
        Some(v) => parse_gpu_layers(v)?,
    };
    let all = match layers {
        Some(0) => return Ok(Placement::Cpu),
        None => true,
        Some(n) => n >= n_layer,
    };
    if !all {
        bail!(
            "-ngl {}: splitting layers between CPU and GPU is not implemented yet; \
             use -ngl 0 (CPU) or -ngl all ({n_layer} layers on the GPU)",
            layers.unwrap_or(0)
        );
    }
    if !cfg!(feature = "cuda") {
        eprintln!(
            "warning: -ngl asks for a GPU but this turbine was built without the `cuda` \
             feature; running on the CPU"
        );
        return Ok(Placement::Cpu);
    }
    Ok(Placement::Cuda {
        ordinal: a.main_gpu,
    })
}

/// A command's work, written once for any backend.
pub trait BackendJob {
    type Output;
    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<Self::Output>;
}

/// Builds the backend `a` asks for (see [`placement`]) and runs `job` on it.
pub fn dispatch<J: BackendJob>(a: &ModelArgs, n_layer: usize, job: J) -> anyhow::Result<J::Output> {
    match placement(a, n_layer)? {
        Placement::Cpu => job.run(Arc::new(CpuBackend::new(a.threads())?)),
        Placement::Cuda { ordinal } => run_cuda(ordinal, job),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda<J: BackendJob>(ordinal: usize, job: J) -> anyhow::Result<J::Output> {
    use anyhow::Context as _;
    if let Err(reason) = turbine_cuda::probe() {
        bail!("-ngl asks for a GPU but CUDA is unusable here: {reason}");
    }
    let backend = turbine_cuda::CudaBackend::new(turbine_cuda::CudaConfig::device(ordinal))
        .with_context(|| format!("CUDA device {ordinal}"))?;
    job.run(Arc::new(backend))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<J: BackendJob>(_ordinal: usize, _job: J) -> anyhow::Result<J::Output> {
    bail!("this turbine was built without the `cuda` feature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_layer_counts() {
        assert_eq!(parse_gpu_layers("0").unwrap(), Some(0));
        assert_eq!(parse_gpu_layers("99").unwrap(), Some(99));
        assert_eq!(parse_gpu_layers("all").unwrap(), None);
        assert_eq!(parse_gpu_layers("-1").unwrap(), None);
        assert!(parse_gpu_layers("lots").is_err());
    }
}
