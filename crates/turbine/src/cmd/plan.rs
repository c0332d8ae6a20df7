//! `turbine plan`: the memory breakdown of a configuration, from the GGUF header alone.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use backends::BackendJob;
use engine::plan_engine;
use gguf::GgufFile;
use models::{parse_kv_type, HParams, RunConfig};
use turbine_core::{Backend, DeviceMemory, MemoryPlan, Role};

/// The model and the flags that size memory (shared by `plan` and `run`).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model file (GGUF).
    #[arg(
        short = 'm',
        long = "model",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// Context size in tokens, shared by all sequences (0 = the model's training context).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    pub ctx_size: usize,
    /// Logical batch: most tokens submitted at once.
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    pub batch_size: usize,
    /// Physical batch: most rows one forward pass computes.
    #[arg(
        short = 'u',
        long = "ubatch-size",
        visible_alias = "ub",
        default_value_t = 512
    )]
    pub ubatch_size: usize,
    /// Parallel sequences.
    #[arg(long = "parallel", visible_alias = "np", default_value_t = 1)]
    pub parallel: usize,
    /// K cache type (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, turbo2, turbo3, turbo4),
    /// or `auto`: q8_0 when V is compressed below 8 bits (else the V type), and a turbo V raised
    /// to the smallest turbo type within 2% of f16 perplexity for this model's head size.
    #[arg(long = "cache-type-k", visible_alias = "ctk", default_value = "f16")]
    pub cache_type_k: String,
    /// V cache type (same names as -ctk).
    #[arg(long = "cache-type-v", visible_alias = "ctv", default_value = "f16")]
    pub cache_type_v: String,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Flash attention (`-fa on|off|auto`), accepted so llama.cpp command lines work: turbine's
    /// attention always runs over KV tiles and never holds a row of scores per cached token, so
    /// the plan is the same for every value.
    #[arg(long = "flash-attn", visible_alias = "fa", value_parser = ["on", "off", "auto"])]
    pub flash_attn: Option<String>,
    /// Layers on the GPU: 0 (CPU, the default) or `all` (also any N ≥ the layer count, or -1).
    #[arg(
        long = "n-gpu-layers",
        visible_aliases = ["ngl", "gpu-layers"],
        allow_hyphen_values = true
    )]
    pub n_gpu_layers: Option<String>,
    /// CUDA device used with -ngl.
    #[arg(long = "main-gpu", visible_alias = "mg", default_value_t = 0)]
    pub main_gpu: usize,
}

impl ModelArgs {
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    pub fn run_config(&self, hp: &HParams) -> anyhow::Result<RunConfig> {
        let n_ctx = if self.ctx_size == 0 {
            hp.n_ctx_train
        } else {
            self.ctx_size
        };
        let mut type_v = parse_kv_type(&self.cache_type_v).context("-ctv")?;
        // `-ctk auto`: K (and V where needed) chosen for this model and V; see
        // models::plan::auto_kv_types for the rule and the measurements behind it.
        let type_k = if self.cache_type_k.eq_ignore_ascii_case("auto") {
            let auto = models::plan::auto_kv_types(hp, type_v);
            if let Some(note) = &auto.note {
                eprintln!("{note}");
            }
            type_v = auto.type_v;
            auto.type_k
        } else {
            parse_kv_type(&self.cache_type_k).context("-ctk")?
        };
        let cfg = RunConfig {
            n_ctx,
            n_batch: self.batch_size,
            n_ubatch: self.ubatch_size,
            n_seq: self.parallel,
            type_k,
            type_v,
            logits_all: false,
        };
        Ok(cfg.validated()?)
    }

    pub fn open(&self) -> anyhow::Result<Arc<GgufFile>> {
        let file = GgufFile::open(&self.model)
            .with_context(|| format!("cannot open model {}", self.model.display()))?;
        Ok(Arc::new(file))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The breakdown line of every device in the plan. `mem(device)` gives total/free memory.
pub fn breakdown_lines<B: Backend>(
    backend: &B,
    plan: &MemoryPlan,
    mem: Option<&DeviceMemory>,
) -> Vec<String> {
    plan.devices()
        .into_iter()
        .map(|d| {
            let label = if d == backend.device() {
                backend.label()
            } else {
                d.to_string()
            };
            plan.breakdown_line(d, &label, mem.filter(|_| d == backend.device()))
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.model;
    let file = GgufFile::open_header_only(&a.model)
        .with_context(|| format!("cannot open model {}", a.model.display()))?;
    let hp = HParams::from_gguf(&file)?;
    let cfg = a.run_config(&hp)?;
    let n_layer = hp.n_layer;
    let job = PlanJob {
        a,
        file: &file,
        hp,
        cfg,
    };
    super::device::dispatch(a, n_layer, job)
}

/// The plan on the backend `-ngl` picks (the CUDA backend sizes its own buffers: KV layout,
/// attention workspace, cuBLAS scratch), printed with that device's free memory.
struct PlanJob<'a> {
    a: &'a ModelArgs,
    file: &'a GgufFile,
    hp: HParams,
    cfg: RunConfig,
}

impl BackendJob for PlanJob<'_> {
    type Output = ();

    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<()> {
        let PlanJob { a, file, hp, cfg } = self;
        print_plan(a, backend.as_ref(), file, &hp, &cfg)
    }
}

fn print_plan<B: Backend>(
    a: &ModelArgs,
    backend: &B,
    file: &GgufFile,
    hp: &HParams,
    cfg: &RunConfig,
) -> anyhow::Result<()> {
    let (hp, cfg) = (hp.clone(), cfg.clone());
    let plan = plan_engine(backend, file, &hp, &cfg)?;

    println!(
        "model: {} ({}, {} layers, n_embd {}, {} heads / {} KV heads, head {}, vocab {})",
        a.model.display(),
        hp.arch_name(),
        hp.n_layer,
        hp.n_embd,
        hp.n_head,
        hp.n_head_kv,
        hp.head_dim_k,
        hp.n_vocab
    );
    println!(
        "config: -c {} -b {} -ub {} -np {} -ctk {} -ctv {} -t {}",
        cfg.n_ctx,
        cfg.n_batch,
        cfg.n_ubatch,
        cfg.n_seq,
        cfg.type_k.name(),
        cfg.type_v.name(),
        a.threads()
    );
    println!();
    print!("{}", plan.table());
    println!();
    // Projected: what would be free once the plan is allocated.
    let projected = backend.memory().map(|m| DeviceMemory {
        total: m.total,
        free: m.free.saturating_sub(plan.device_bytes(backend.device())),
    });
    println!("projected after allocation (MiB):");
    for line in breakdown_lines(backend, &plan, projected.as_ref()) {
        println!("{line}");
    }
    let rec = models::plan::recommended_kv(&hp);
    let (rk, rv) = (rec.type_k, rec.type_v);
    if (rk, rv) != (cfg.type_k, cfg.type_v) {
        let rec = RunConfig {
            type_k: rk,
            type_v: rv,
            ..cfg.clone()
        };
        let rec_plan = plan_engine(backend, file, &hp, &rec)?;
        println!(
            "recommended compressed cache: -ctk {} -ctv {} (what -ctk auto -ctv turbo3 picks for this model: within 2% of f16 perplexity), context {:.0} MiB",
            rk.name(),
            rv.name(),
            rec_plan.role_bytes(backend.device(), Role::Context) as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}

/// llama.cpp's multi-letter single-dash flags, which clap cannot declare as short options.
const LLAMA_FLAGS: [&str; 7] = ["ub", "np", "ctk", "ctv", "ngl", "fa", "mg"];

/// Rewrites `-ub 512` to `--ub 512` (and `-ub=512` to `--ub=512`) for the flags above, so
/// llama-server command lines work unchanged. Everything else passes through.
pub fn llama_style_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| {
            let Some(s) = a.to_str() else { return a };
            let Some(rest) = s.strip_prefix('-') else {
                return a;
            };
            let name = rest.split('=').next().unwrap_or(rest);
            if !rest.starts_with('-') && LLAMA_FLAGS.contains(&name) {
                format!("-{s}").into()
            } else {
                a
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_llama_flags_only() {
        let args = [
            "turbine",
            "run",
            "-ub",
            "64",
            "-ctk=q8_0",
            "-c",
            "8",
            "--np",
            "2",
            "-n",
            "-1",
        ];
        let got: Vec<String> = llama_style_args(args.iter().map(|s| s.into()))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "turbine",
                "run",
                "--ub",
                "64",
                "--ctk=q8_0",
                "-c",
                "8",
                "--np",
                "2",
                "-n",
                "-1"
            ]
        );
    }
}
