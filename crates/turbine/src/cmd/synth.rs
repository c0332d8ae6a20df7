//! `turbine synth`: writes a random-weight GGUF model of a real architecture and shape (e.g.
//! Qwen3-8B, all matrices q4_K), loadable by turbine and llama.cpp, for speed and memory
//! measurements where the real model cannot be copied.

use std::path::PathBuf;

use anyhow::Context as _;
use formats::GgmlType;
use synth::{shape, shape_names, Arch, Options, ALL_ARCHES};

#[derive(clap::Args)]
#[command(after_help = shapes_help())]
pub struct Args {
    /// Architecture (llama, qwen2, qwen3, qwen3moe, qwen35, qwen35moe).
    #[arg(long)]
    pub arch: String,
    /// Named shape of that architecture (see the list below).
    #[arg(long)]
    pub shape: String,
    /// Type of the weight matrices (q4_K, q8_0, f16, ...); norms, biases and routers stay f32.
    #[arg(long = "type", default_value = "q4_K")]
    pub ty: String,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write only the header (metadata and tensor table, no data), for `turbine plan`.
    #[arg(long)]
    pub header_only: bool,
    /// Copy the tokenizer from this GGUF (e.g. a llama.cpp ggml-vocab-*.gguf), padded to the
    /// shape's vocabulary; default: a built-in byte-level BPE vocabulary of that size.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Override the number of layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Override the vocabulary size.
    #[arg(long)]
    pub n_vocab: Option<usize>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

fn shapes_help() -> String {
    let mut s = String::from("Shapes:\n");
    for a in ALL_ARCHES {
        s.push_str(&format!(
            "  {:<10} {}\n",
            a.name(),
            shape_names(a).join(", ")
        ));
    }
    s
}

fn gib(n: u64) -> f64 {
    n as f64 / (1u64 << 30) as f64
}

/// `12.34 MiB`-style sizes.
fn human(n: u64) -> String {
    let mut x = n as f64;
    for unit in ["B", "KiB", "MiB"] {
        if x < 1024.0 {
            return format!("{x:.2} {unit}");
        }
        x /= 1024.0;
    }
    format!("{x:.2} GiB")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let arch = Arch::from_name(&args.arch)?;
    let mut shape = shape(arch, &args.shape)?;
    if let Some(n) = args.layers {
        anyhow::ensure!(n > 0, "--layers must be at least 1");
        shape.n_layer = n;
    }
    if let Some(n) = args.n_vocab {
        shape.n_vocab = n;
    }
    let ty = GgmlType::from_name(&args.ty)
        .with_context(|| format!("--type {}: unknown type", args.ty))?;
    let opts = Options {
        arch,
        shape,
        ty,
        seed: args.seed,
        output: args.output.clone(),
        header_only: args.header_only,
        vocab: args.vocab.clone(),
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        pool = pool.num_threads(t);
    }
    let pool = pool.build().context("thread pool")?;
    let r = pool.install(|| synth::synthesize(&opts))?;
    let s = &r.shape;
    println!(
        "wrote {}: {} {} ({} layers, n_embd {}, {} heads / {} kv of {}, n_vocab {}), {} matrices",
        args.output.display(),
        arch.name(),
        s.name,
        s.n_layer,
        s.n_embd,
        s.n_head,
        s.n_head_kv,
        s.head_dim,
        s.n_vocab,
        ty
    );
    let types: Vec<String> = r
        .by_type
        .iter()
        .map(|(t, n, b)| format!("{t}: {n} tensors {}", human(*b)))
        .collect();
    println!(
        "  {} tensors, {:.3} B params; {}",
        r.n_tensors,
        r.n_params as f64 / 1e9,
        types.join(", ")
    );
    if args.header_only {
        println!(
            "  header only: {} (data would be {}) in {:.2} s, seed {}",
            human(r.file_bytes),
            human(r.data_bytes),
            r.seconds,
            args.seed
        );
    } else {
        println!(
            "  file {} B = {} in {:.2} s ({:.2} GiB/s), seed {}",
            r.file_bytes,
            human(r.file_bytes),
            r.seconds,
            gib(r.file_bytes) / r.seconds.max(1e-9),
            args.seed
        );
    }
    Ok(())
}
