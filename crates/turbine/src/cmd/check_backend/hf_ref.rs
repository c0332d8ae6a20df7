//! `check-backend --hf-ref MODEL REF`: a model against its PyTorch `transformers` reference
//! logits on CUDA with every layer on the GPU, through the same comparison as the CPU test
//! (`models::hf_ref`: prompt in ubatches of 16, then one decode step per continuation token,
//! worst row's max |Δ| / max |ref|), plus the CUDA allocations against the memory plan.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use gguf::GgufFile;
use models::hf_ref::{self, HfReference};
use models::Model;
use turbine_core::Backend;
use turbine_cuda::{CudaBackend, CudaConfig};

use super::report::Report;

/// `paths` are (model, reference) pairs.
pub fn run(report: &mut Report, cuda: &CudaConfig, paths: &[PathBuf], tol: f64) -> Result<()> {
    for pair in paths.chunks(2) {
        let [model, reference] = pair else {
            anyhow::bail!("--hf-ref takes a model and its reference file");
        };
        let name = model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let r = HfReference::open(reference)?;
        let file =
            Arc::new(GgufFile::open(model).with_context(|| format!("open {}", model.display()))?);
        let be = Arc::new(CudaBackend::new(cuda.clone())?);
        let mut m = Model::load(be, file, hf_ref::run_config())
            .with_context(|| format!("{name}: CUDA load"))?;
        let plan_ok = m.backend().allocation_log().compare(m.plan());
        report.push(
            "hf_ref plan",
            name.clone(),
            match &plan_ok {
                Ok(()) => "CUDA allocations = plan".to_string(),
                Err(p) => p.join("; "),
            },
            plan_ok.is_ok(),
        );
        let c = hf_ref::compare(&mut m, &r).with_context(|| format!("{name}: forward"))?;
        report.push(
            "hf_ref",
            format!("{name} prompt {} + {} decode", r.n_prompt, c.n_decode),
            format!(
                "worst row rel {:.2e} (row {}, tolerance {tol:.0e})  argmax {}/{}",
                c.worst, c.worst_row, c.argmax_agree, c.n_decode
            ),
            c.worst <= tol && c.argmax_agree == c.n_decode,
        );
    }
    Ok(())
}
