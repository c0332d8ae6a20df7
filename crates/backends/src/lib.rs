//! Which backend a job runs on, from `-ngl` (llama.cpp's `--n-gpu-layers`).
//!
//! Commands and the server write their work once, generic over [`Backend`], as a
//! [`BackendJob`]; [`dispatch`] builds the backend a [`Placement`] names and runs the job on it.
//! `-ngl 0` (the default) is the CPU; `-ngl all` (or any N ≥ the model's layer count, as in
//! llama.cpp where the output layer counts as one more) puts the whole model on CUDA device
//! `--main-gpu`. Splitting the layers between the two is not implemented yet and is refused
//! with a clear message rather than silently running everything on one side.

use std::sync::Arc;

use anyhow::bail;
use turbine_core::cpu::CpuBackend;
use turbine_core::Backend;

/// Where the model's layers go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Cpu,
    /// Every layer, the embeddings and the output on CUDA device `ordinal`.
    Cuda {
        ordinal: usize,
    },
}

/// How many layers `-ngl` asks to offload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuLayers {
    Count(usize),
    /// `all`, `max`, `auto` or a negative count.
    All,
}

impl GpuLayers {
    /// Parses `-ngl`: a layer count, `all`/`max`/`auto`, or a negative number (llama.cpp's
    /// "all").
    pub fn parse(value: &str) -> anyhow::Result<GpuLayers> {
        let v = value.trim();
        if ["all", "max", "auto"]
            .iter()
            .any(|w| v.eq_ignore_ascii_case(w))
        {
            return Ok(GpuLayers::All);
        }
        match v.parse::<i64>() {
            Ok(n) => Ok(GpuLayers::from_count(n)),
            Err(_) => bail!("-ngl: expected a layer count or `all`, got `{value}`"),
        }
    }

    /// A signed count as llama.cpp's presets write it: negative means all.
    pub fn from_count(n: i64) -> GpuLayers {
        if n < 0 {
            GpuLayers::All
        } else {
            GpuLayers::Count(n as usize)
        }
    }
}

/// The placement `layers` (`None`: the flag was not given) asks for on a model of `n_layer`
/// layers, with `main_gpu` the CUDA device to use.
pub fn placement(
    layers: Option<GpuLayers>,
    main_gpu: usize,
    n_layer: usize,
) -> anyhow::Result<Placement> {
    let all = match layers.unwrap_or(GpuLayers::Count(0)) {
        GpuLayers::Count(0) => return Ok(Placement::Cpu),
        GpuLayers::All => true,
        GpuLayers::Count(n) if n >= n_layer => true,
        GpuLayers::Count(n) => bail!(
            "-ngl {n}: splitting layers between CPU and GPU is not implemented yet; \
             use -ngl 0 (CPU) or -ngl all ({n_layer} layers on the GPU)"
        ),
    };
    debug_assert!(all);
    if !cfg!(feature = "cuda") {
        eprintln!(
            "warning: -ngl asks for a GPU but this turbine was built without the `cuda` \
             feature; running on the CPU"
        );
        return Ok(Placement::Cpu);
    }
    Ok(Placement::Cuda { ordinal: main_gpu })
}

/// A job's work, written once for any backend.
pub trait BackendJob {
    type Output;
    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<Self::Output>;
}

/// Builds the backend `placement` names (the CPU one with `threads` workers) and runs `job` on
/// it.
pub fn dispatch<J: BackendJob>(
    placement: Placement,
    threads: usize,
    job: J,
) -> anyhow::Result<J::Output> {
    match placement {
        Placement::Cpu => job.run(Arc::new(CpuBackend::new(threads)?)),
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
        assert_eq!(GpuLayers::parse("0").unwrap(), GpuLayers::Count(0));
        assert_eq!(GpuLayers::parse("99").unwrap(), GpuLayers::Count(99));
        assert_eq!(GpuLayers::parse("all").unwrap(), GpuLayers::All);
        assert_eq!(GpuLayers::parse("-1").unwrap(), GpuLayers::All);
        assert!(GpuLayers::parse("lots").is_err());
    }

    #[test]
    fn no_flag_or_zero_is_the_cpu() {
        assert_eq!(placement(None, 0, 30).unwrap(), Placement::Cpu);
        assert_eq!(
            placement(Some(GpuLayers::Count(0)), 1, 30).unwrap(),
            Placement::Cpu
        );
    }

    #[test]
    fn partial_offload_is_refused_by_name() {
        let e = placement(Some(GpuLayers::Count(10)), 0, 30).unwrap_err();
        assert!(e.to_string().contains("-ngl 10"), "{e}");
    }

    #[test]
    fn whole_model_goes_to_the_main_gpu_when_built_with_cuda() {
        let p = placement(Some(GpuLayers::Count(30)), 2, 30).unwrap();
        if cfg!(feature = "cuda") {
            assert_eq!(p, Placement::Cuda { ordinal: 2 });
        } else {
            assert_eq!(p, Placement::Cpu);
        }
    }
}
