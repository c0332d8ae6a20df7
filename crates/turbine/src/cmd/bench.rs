//! `turbine bench`: a llama-bench-style table of prompt processing (`ppN`) and token generation
//! (`tgN`) speed at given context depths, for each K/V cache type pair.
//!
//! Every row also shows the memory bandwidth it implies (gpt-fast style): decode reads every
//! weight byte and every cached K/V byte once per token, so `GB/s = t/s × bytes per token`.
//! For prompt processing the same bytes are read once per ubatch, so its GB/s figure is that
//! traffic per second and is usually far from the roofline (it is compute-bound).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};
use formats::GgmlType;
use models::plan_memory;
use models::{parse_kv_type, HParams, Model, RunConfig};
use turbine_core::{Backend, KvSpec, Role};

use super::device::dispatch;
use super::plan::ModelArgs;
use backends::BackendJob;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt lengths to time (0 = none), comma separated.
    #[arg(
        short = 'p',
        long = "n-prompt",
        default_value = "512",
        value_delimiter = ','
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to time (0 = none), comma separated.
    #[arg(
        short = 'n',
        long = "n-gen",
        default_value = "128",
        value_delimiter = ','
    )]
    pub n_gen: Vec<usize>,
    /// Context depths: tokens already in the cache before each test, comma separated.
    #[arg(
        short = 'd',
        long = "n-depth",
        default_value = "0",
        value_delimiter = ','
    )]
    pub depth: Vec<usize>,
    /// K cache types to try, comma separated (overrides -ctk).
    #[arg(long = "types-k", value_delimiter = ',')]
    pub types_k: Vec<String>,
    /// V cache types to try, comma separated (overrides -ctv).
    #[arg(long = "types-v", value_delimiter = ',')]
    pub types_v: Vec<String>,
    /// Repetitions of each test (mean ± standard deviation).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    pub repetitions: usize,
}

/// One test of the table.
#[derive(Clone, Copy)]
enum Test {
    Prompt(usize),
    Gen(usize),
}

impl Test {
    fn name(self, depth: usize) -> String {
        let base = match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Gen(n) => format!("tg{n}"),
        };
        if depth > 0 {
            format!("{base} @ d{depth}")
        } else {
            base
        }
    }

    fn tokens(self) -> usize {
        match self {
            Test::Prompt(n) | Test::Gen(n) => n,
        }
    }
}

/// K plus V bytes one token takes in one cached layer, as `backend` stores them: the growth of
/// the backend's own cache-size formula over a span of cells, per layer (so the padding or
/// packing of turbo heads is the backend's, not a formula repeated here).
fn kv_token_layer_bytes<B: Backend>(backend: &B, spec: &KvSpec) -> anyhow::Result<f64> {
    if spec.layers.is_empty() {
        return Ok(0.0);
    }
    let (lo, hi) = (4096, 8192);
    let at = |n_ctx| {
        backend.kv_cache_bytes(&KvSpec {
            n_ctx,
            n_seq: 1,
            ..spec.clone()
        })
    };
    let growth = at(hi)?.saturating_sub(at(lo)?);
    Ok(growth as f64 / (hi - lo) as f64 / spec.layers.len() as f64)
}

/// K/V bytes attention reads for one query at position `pos` (it sees `pos + 1` keys, fewer
/// in sliding-window layers).
fn kv_bytes_read(spec: &KvSpec, token_layer_bytes: f64, pos: usize) -> f64 {
    spec.layers
        .iter()
        .map(|l| l.window.map_or(pos + 1, |w| (pos + 1).min(w)) as f64 * token_layer_bytes)
        .sum()
}

/// Prompt tokens of the untimed warm-up pass (more than the matvec's 8 rows, so the prefill
/// kernels run too), followed by one decode step.
const WARMUP_TOKENS: usize = 16;

/// Deterministic pseudo-random token ids (llama-bench also times random tokens).
struct TokenSource(u64);

impl TokenSource {
    fn take(&mut self, n: usize, n_vocab: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 33) % n_vocab as u64) as u32
            })
            .collect()
    }
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn fill<B: Backend>(model: &mut Model<B>, tokens: &[u32]) -> anyhow::Result<()> {
    let ub = model.config().n_ubatch;
    for batch in tokens.chunks(ub) {
        model.forward(0, batch, false)?;
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.model;
    let file = a.open()?;
    let hp = HParams::from_gguf(&file)?;
    let base_cfg = a.run_config(&hp)?;
    let types_k = if args.types_k.is_empty() {
        vec![base_cfg.type_k]
    } else {
        args.types_k
            .iter()
            .map(|s| parse_kv_type(s).context("--types-k"))
            .collect::<anyhow::Result<_>>()?
    };
    let types_v = if args.types_v.is_empty() {
        vec![base_cfg.type_v]
    } else {
        args.types_v
            .iter()
            .map(|s| parse_kv_type(s).context("--types-v"))
            .collect::<anyhow::Result<_>>()?
    };
    let mut tests: Vec<Test> = args
        .n_prompt
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| Test::Prompt(n))
        .collect();
    tests.extend(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| Test::Gen(n)));
    if tests.is_empty() {
        bail!("nothing to time: every -p and -n is 0");
    }
    let reps = args.repetitions.max(1);
    let model_name = a
        .model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n_params: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let job = BenchJob {
        file,
        hp,
        base_cfg,
        types_k,
        types_v,
        tests,
        depths: args.depth.clone(),
        reps,
        model_name,
        n_params,
        threads: a.threads(),
    };
    dispatch(a, job.hp.n_layer, job)
}

/// Everything one bench run needs, ready to run on any backend.
struct BenchJob {
    file: Arc<gguf::GgufFile>,
    hp: HParams,
    base_cfg: RunConfig,
    types_k: Vec<GgmlType>,
    types_v: Vec<GgmlType>,
    tests: Vec<Test>,
    depths: Vec<usize>,
    reps: usize,
    model_name: String,
    n_params: u64,
    threads: usize,
}

impl BackendJob for BenchJob {
    type Output = ();

    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<()> {
        let BenchJob {
            file,
            hp,
            base_cfg,
            types_k,
            types_v,
            tests,
            depths,
            reps,
            model_name,
            n_params,
            threads,
        } = self;
        let threads = if backend.host_visible() {
            threads.to_string()
        } else {
            "-".to_string()
        };

        println!(
        "| model | params | backend | threads | type_k | type_v | test | t/s | GB/s |\n|---|---|---|---|---|---|---|---|---|"
    );
        let mut source = TokenSource(0x5eed);
        for &type_k in &types_k {
            for &type_v in &types_v {
                for &depth in &depths {
                    let longest = tests.iter().map(|t| t.tokens()).max().unwrap_or(0);
                    let cfg = RunConfig {
                        // Room for the warm-up too when the tests are shorter than it.
                        n_ctx: (depth + longest).max(WARMUP_TOKENS + 1),
                        type_k,
                        type_v,
                        ..base_cfg.clone()
                    }
                    .validated()?;
                    let plan = plan_memory(backend.as_ref(), &file, &hp, &cfg)?;
                    let weight_bytes = plan.role_bytes(backend.device(), Role::Model);
                    // A decode token of an MoE model reads only its experts' share.
                    let decode_bytes = models::decode_weight_bytes(&file, &hp)?;
                    let mut model = Model::load_planned(
                        backend.clone(),
                        file.clone(),
                        hp.clone(),
                        cfg.clone(),
                        plan,
                    )?;
                    // Warm-up, untimed (like llama-bench's): one prefill batch and one decode
                    // step run every kernel once, so first-use costs (CUDA kernel compilation
                    // and loading, page faults of the weights) stay out of the timings.
                    let warm = source.take(WARMUP_TOKENS + 1, hp.n_vocab);
                    fill(&mut model, &warm[..WARMUP_TOKENS])?;
                    model.forward(0, &warm[WARMUP_TOKENS..], false)?;
                    model.truncate(0, 0)?;
                    let _ = backend.profile_report();
                    let prefix = source.take(depth, hp.n_vocab);
                    fill(&mut model, &prefix)?;
                    for &test in &tests {
                        let n = test.tokens();
                        let mut rates = Vec::with_capacity(reps);
                        for _ in 0..reps {
                            if model.can_truncate_prefix() || depth == 0 {
                                model.truncate(0, depth)?;
                            } else {
                                // A recurrent state cannot be rewound: clear, refill the depth
                                // (untimed).
                                model.truncate(0, 0)?;
                                fill(&mut model, &prefix)?;
                            }
                            let toks = source.take(n, hp.n_vocab);
                            let t0 = Instant::now();
                            match test {
                                Test::Prompt(_) => fill(&mut model, &toks)?,
                                Test::Gen(_) => {
                                    for t in &toks {
                                        model.forward(0, std::slice::from_ref(t), false)?;
                                    }
                                }
                            }
                            rates.push(n as f64 / t0.elapsed().as_secs_f64());
                        }
                        if let Some(report) = backend.profile_report() {
                            eprintln!(
                                "{} device time per op ({reps} reps):\n{report}",
                                test.name(depth)
                            );
                        }
                        let (mean, std) = mean_std(&rates);
                        // Bytes read per token of the test, averaged over its positions.
                        let spec = models::plan::kv_spec(&hp, &cfg);
                        let token_layer = kv_token_layer_bytes(backend.as_ref(), &spec)?;
                        let kv_avg = (depth..depth + n)
                            .map(|p| kv_bytes_read(&spec, token_layer, p))
                            .sum::<f64>()
                            / n as f64;
                        let per_token = match test {
                            Test::Gen(_) => decode_bytes as f64 + kv_avg,
                            Test::Prompt(_) => {
                                let ubatches = n.div_ceil(cfg.n_ubatch) as f64;
                                (weight_bytes as f64 * ubatches + kv_avg * n as f64) / n as f64
                            }
                        };
                        println!(
                            "| {} | {:.1} M | {} | {} | {} | {} | {} | {:.2} ± {:.2} | {:.1} |",
                            model_name,
                            n_params as f64 / 1e6,
                            backend.device(),
                            threads,
                            type_k.name(),
                            type_v.name(),
                            test.name(depth),
                            mean,
                            std,
                            mean * per_token / 1e9
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: GgmlType) -> KvSpec {
        KvSpec {
            layers: vec![turbine_core::KvLayerShape {
                n_head_kv: 3,
                head_dim_k: 64,
                head_dim_v: 64,
                window: None,
            }],
            n_ctx: 4096,
            n_seq: 1,
            type_k: ty,
            type_v: ty,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        // Page bookkeeping adds a fraction of a byte per token.
        (a - b).abs() < 0.5
    }

    #[test]
    fn token_bytes_follow_the_backends_turbo_layout() {
        // 3 KV heads of 64, K and V: f16 2 × 192 values; q8_0 2 × 6 blocks of 34 bytes.
        let cpu = turbine_core::cpu::CpuBackend::new(1).unwrap();
        let bytes =
            |b: &turbine_core::cpu::CpuBackend, ty| kv_token_layer_bytes(b, &spec(ty)).unwrap();
        assert!(close(bytes(&cpu, GgmlType::F16), 768.0));
        assert!(close(bytes(&cpu, GgmlType::Q8_0), 408.0));
        // The CPU packs two 64-wide heads per 128-group: 2 turbo3 blocks of 50 bytes each for K
        // and V; stored like the CUDA kernels (a group per head), 3 blocks each.
        assert!(close(bytes(&cpu, GgmlType::Turbo3), 200.0));
        let padded = turbine_core::cpu::CpuBackend::new(1)
            .unwrap()
            .with_cuda_turbo_layout();
        assert!(close(bytes(&padded, GgmlType::Turbo3), 300.0));
    }

    #[test]
    fn token_source_stays_in_vocab_and_is_deterministic() {
        let a = TokenSource(1).take(1000, 17);
        assert!(a.iter().all(|&t| t < 17));
        assert_eq!(a, TokenSource(1).take(1000, 17));
    }
}
