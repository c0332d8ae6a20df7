//! `turbine check-backend`: runs every CUDA op against a CPU reference on fresh random data
//! (all weight and KV types, shapes that are not multiples of the block sizes, n_kv = 1, GQA
//! ratios 1–8, head sizes 64/128/256), then a whole random-weight model on the CPU and CUDA
//! backends, and prints a pass/fail table with the error of each check. Exits non-zero on any
//! failure.
//!
//! Without a usable CUDA device (no GPU, no driver, no NVRTC, or a turbine built without the
//! `cuda` feature) it says so and exits 0 with every check skipped.

use clap::Args as ClapArgs;

#[cfg(feature = "cuda")]
mod hf_ref;
#[cfg(feature = "cuda")]
mod hybrid;
#[cfg(feature = "cuda")]
mod model;
#[cfg(feature = "cuda")]
mod ops;
#[cfg(feature = "cuda")]
mod report;
#[cfg(feature = "cuda")]
mod rng;
#[cfg(feature = "cuda")]
mod timing;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Seed of the random inputs (default: from the clock; printed so a failure can be rerun).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run only the op checks whose name contains this (e.g. `attention`, `matmul`, `model`).
    #[arg(long)]
    pub only: Option<String>,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Directory of the compiled-kernel cache (default: ~/.cache/turbine/cuda).
    #[arg(long)]
    pub kernel_cache: Option<std::path::PathBuf>,
    /// Time the matmul kernels on real model shapes instead of checking (µs per call, GB/s).
    #[arg(long)]
    pub time: bool,
    /// Also compare a model with its `transformers` reference logits on CUDA, all layers on the
    /// GPU (repeatable; `--only hf_ref` runs just these).
    #[arg(long, num_args = 2, value_names = ["MODEL", "REF"], action = clap::ArgAction::Append)]
    pub hf_ref: Vec<std::path::PathBuf>,
    /// Largest relative logit difference `--hf-ref` accepts (max |Δ| / max |ref| per row).
    #[arg(long, default_value_t = 1e-3)]
    pub hf_tol: f64,
}

#[cfg(not(feature = "cuda"))]
pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    println!(
        "no CUDA device: this turbine was built without the `cuda` feature; every check skipped"
    );
    Ok(())
}

#[cfg(feature = "cuda")]
pub fn run(args: Args) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Instant;

    use anyhow::Context;
    use turbine_cuda::{CudaBackend, CudaConfig};

    let n_devices = match turbine_cuda::probe() {
        Ok(n) => n,
        Err(reason) => {
            println!("no CUDA device: {reason}; every check skipped");
            return Ok(());
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let cfg = CudaConfig {
        ordinal: args.device,
        cache_dir: args
            .kernel_cache
            .clone()
            .or_else(turbine_cuda::compile::default_cache_dir),
    };
    let be = Arc::new(CudaBackend::new(cfg.clone()).context("CUDA backend")?);
    println!(
        "device {} of {n_devices}: {} (sm_{}{}), seed {seed}",
        args.device,
        be.device_model(),
        be.arch().0,
        be.arch().1
    );
    if args.time {
        return timing::run(&be, seed, args.only.as_deref());
    }
    // A fault inside a kernel is reported by the op that caused it.
    be.set_sync_each_op(true);
    let mut ctx = ops::Ctx {
        be: &be,
        rng: rng::Rng::new(seed),
        report: report::Report::default(),
    };
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    type Check = fn(&mut ops::Ctx) -> anyhow::Result<()>;
    let checks: &[(&str, Check)] = &[
        ("matmul", ops::matmul),
        ("fused matmul", ops::fused_matmuls),
        ("get_rows", ops::get_rows),
        ("rms_norm", ops::rms_norm),
        ("add_rms_norm", ops::add_rms_norm),
        ("rope", ops::rope),
        ("norm_rope_qk", ops::norm_rope_qk),
        ("elementwise", ops::elementwise),
        ("kv_store", ops::kv_store),
        ("attention", ops::attention),
        ("moe_ffn", hybrid::moe_ffn),
        ("delta_net", hybrid::delta_net),
        ("gates", hybrid::gates),
    ];
    for &(name, check) in checks {
        if !wanted(name) {
            continue;
        }
        let t = Instant::now();
        if let Err(e) = check(&mut ctx) {
            ctx.report
                .push(name, "(error)".into(), format!("{e:#}"), false);
        }
        eprintln!("{name}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let mut report = ctx.report;
    if !args.hf_ref.is_empty() && wanted("hf_ref") {
        if let Err(e) = hf_ref::run(&mut report, &cfg, &args.hf_ref, args.hf_tol) {
            report.push("hf_ref", "(error)".into(), format!("{e:#}"), false);
        }
    }
    if wanted("model") {
        let t = Instant::now();
        if let Err(e) = model_checks(&cfg, seed, &mut report) {
            report.push("model", "(error)".into(), format!("{e:#}"), false);
        }
        eprintln!("model: {:.1} s", t.elapsed().as_secs_f64());
    }
    println!();
    print!("{}", report.summary());
    let failed = report.failed();
    println!(
        "{} checks, {} failed (seed {seed})",
        report.rows.len(),
        failed
    );
    if failed > 0 {
        anyhow::bail!("{failed} of {} backend checks failed", report.rows.len());
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn model_checks(
    cuda: &turbine_cuda::CudaConfig,
    seed: u64,
    report: &mut report::Report,
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use formats::GgmlType::*;
    use turbine_core::cpu::CpuBackend;

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // The CUDA backend does not yet pack 64-wide turbo heads or center turbo keys (CPU-side
    // refinements); its reference stores turbo rows the same way it does.
    let cpu = Arc::new(CpuBackend::new(threads)?.with_cuda_turbo_layout());
    let mut rng = rng::Rng::new(seed ^ 0x006d_6f64_656c);
    let prompt: Vec<u32> = (0..23).map(|_| rng.below(300) as u32).collect();
    for (arch, tied, only, label) in [
        (model::Arch::Llama, false, Some(F32), "llama f32 weights"),
        (model::Arch::Llama, false, None, "llama"),
        (model::Arch::Qwen2, true, None, "qwen2 (bias, tied output)"),
        (model::Arch::Qwen3, false, None, "qwen3 (q/k norm)"),
    ] {
        let file = Arc::new(model::synth_gguf(arch, tied, only, &mut rng)?);
        let pairs: &[(formats::GgmlType, formats::GgmlType)] = if arch == model::Arch::Llama {
            &[
                (F16, F16),
                (Q8_0, Q8_0),
                (Q4_0, Q5_1),
                (Bf16, Iq4Nl),
                (Q8_0, Turbo4),
                (Turbo4, Turbo4),
                (Turbo3, Turbo3),
                (Turbo2, Q4_1),
            ]
        } else {
            &[(F16, F16), (Q8_0, Turbo3)]
        };
        for &(k, v) in pairs {
            let min_cos = model::min_cosine(only == Some(F32), k, v);
            model::compare(report, cuda, &cpu, &file, label, k, v, &prompt, 12, min_cos)?;
        }
    }
    Ok(())
}
