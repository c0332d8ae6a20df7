//! `turbine run`: one prompt, text streamed to stdout as it is generated.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use engine::{plan_engine, Generator, SamplerParams, StopReason};
use models::{HParams, Model};
use text::template::{ChatRequest, ChatTemplate};
use text::tokenizer::{StreamDecoder, Tokenizer};
use turbine_core::Backend;

use super::device::dispatch;
use super::plan::{breakdown_lines, ModelArgs};
use backends::BackendJob;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text.
    #[arg(short = 'p', long = "prompt", required_unless_present = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    pub file: Option<std::path::PathBuf>,
    /// Keep generating past end-of-generation tokens (benchmarks).
    #[arg(long = "ignore-eos")]
    pub ignore_eos: bool,
    /// Tokens to generate (-1: until end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Apply the model's chat template to the prompt as one user message.
    #[arg(long)]
    pub chat: bool,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: i32,
    /// Keep the smallest set of tokens whose probability reaches p (1 = all).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens less likely than min-p times the most likely (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalize repeats of the last --repeat-last-n tokens (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Window of the penalties (0 = off, -1 = whole context).
    #[arg(
        long = "repeat-last-n",
        default_value_t = 64,
        allow_negative_numbers = true
    )]
    pub repeat_last_n: i32,
    #[arg(long = "presence-penalty", default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long = "frequency-penalty", default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Random seed (default: from the clock).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
    /// Print the memory plan table before generating.
    #[arg(long)]
    pub show_plan: bool,
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.model;
    let file = a.open()?;
    let hp = HParams::from_gguf(&file)?;
    let cfg = a.run_config(&hp)?;
    if cfg.n_seq != 1 {
        bail!("run generates one sequence; -np {} is for serve", cfg.n_seq);
    }
    let tokenizer = Tokenizer::from_gguf(&file).context("tokenizer")?;

    let user_text = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read prompt file {}", path.display()))?,
        (None, None) => bail!("give a prompt with -p or -f"),
    };
    let prompt_text = if args.chat {
        let template = ChatTemplate::from_gguf(&file, None).context("chat template")?;
        let request = ChatRequest {
            messages: vec![serde_json::json!({"role": "user", "content": user_text})],
            add_generation_prompt: true,
            ..ChatRequest::default()
        };
        template.render(&request).context("chat template")?
    } else {
        user_text
    };
    let prompt = tokenizer.encode(&prompt_text, true, true);
    if prompt.is_empty() {
        bail!("the prompt is empty after tokenization");
    }

    let n_layer = hp.n_layer;
    let job = GenerateJob {
        args: &args,
        file,
        hp,
        cfg,
        tokenizer,
        prompt,
    };
    dispatch(a, n_layer, job)
}

/// The generation itself, on whichever backend `-ngl` picked.
struct GenerateJob<'a> {
    args: &'a Args,
    file: Arc<gguf::GgufFile>,
    hp: HParams,
    cfg: models::RunConfig,
    tokenizer: Tokenizer,
    prompt: Vec<u32>,
}

impl BackendJob for GenerateJob<'_> {
    type Output = ();

    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<()> {
        let GenerateJob {
            args,
            file,
            hp,
            cfg,
            tokenizer,
            prompt,
        } = self;
        generate(args, backend, file, hp, cfg, tokenizer, prompt)
    }
}

fn generate<B: Backend + 'static>(
    args: &Args,
    backend: Arc<B>,
    file: Arc<gguf::GgufFile>,
    hp: HParams,
    cfg: models::RunConfig,
    tokenizer: Tokenizer,
    prompt: Vec<u32>,
) -> anyhow::Result<()> {
    let plan = plan_engine(backend.as_ref(), &file, &hp, &cfg)?;
    if args.show_plan {
        eprint!("{}", plan.table());
    }
    let model = Model::load_planned(backend.clone(), file.clone(), hp, cfg, plan.clone())?;
    let params = SamplerParams {
        temp: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        frequency_penalty: args.frequency_penalty,
        presence_penalty: args.presence_penalty,
        seed: args.seed.unwrap_or_else(seed_from_clock),
    };
    let mut generator = Generator::new(model, params);
    if let Err(problems) = backend.allocation_log().compare(&plan) {
        bail!("allocations differ from the plan: {}", problems.join("; "));
    }
    for line in breakdown_lines(backend.as_ref(), &plan, backend.memory().as_ref()) {
        eprintln!("{line}");
    }

    let n_predict = if args.n_predict < 0 {
        usize::MAX
    } else {
        args.n_predict as usize
    };
    let mut decoder = StreamDecoder::new();
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let stats = generator.generate(
        &prompt,
        n_predict,
        |t| !args.ignore_eos && tokenizer.is_eog(t),
        |t| {
            let piece = tokenizer.decode_stream(&mut decoder, t, false);
            match stdout
                .write_all(piece.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Ok(()) => true,
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    let _ = writeln!(stdout);
    drop(stdout);

    eprintln!(
        "prompt: {} tokens ({} cached) in {:.1} ms, {:.2} tok/s",
        stats.prompt_eval,
        stats.prompt_cached,
        stats.prefill_time.as_secs_f64() * 1e3,
        stats.prefill_tokens_per_s()
    );
    eprintln!(
        "generated: {} tokens in {:.1} ms, {:.2} tok/s (decode, {})",
        stats.generated,
        stats.decode_time.as_secs_f64() * 1e3,
        stats.decode_tokens_per_s(),
        if backend.host_visible() {
            format!("-t {}", args.model.threads())
        } else {
            backend.label()
        }
    );
    let why = match stats.stop {
        StopReason::EndOfGeneration(t) => format!("end of generation (token {t})"),
        StopReason::Length => "token limit".to_string(),
        StopReason::ContextFull => "context full".to_string(),
        StopReason::Callback => "stopped".to_string(),
    };
    eprintln!("stop: {why}");
    for line in breakdown_lines(backend.as_ref(), &plan, backend.memory().as_ref()) {
        eprintln!("{line}");
    }
    Ok(())
}
