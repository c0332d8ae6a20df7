//! `turbine perplexity`: perplexity over fixed-size chunks of a text, the way llama-perplexity
//! computes it, and KL divergence against a saved base run (e.g. the same model with f16 KV).
//!
//! Each chunk of `-c` tokens is evaluated from an empty cache; only the second half of each
//! chunk is scored, so every scored token sees at least `c/2` tokens of context. With
//! `--save-logits` the log-probabilities of every scored position are written to a file (f16,
//! full vocabulary); `--kl-base` reads such a file and compares this run against it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _};
use half::f16;
use models::plan_memory;
use models::{HParams, Model};
use text::tokenizer::Tokenizer;
use turbine_core::cpu::CpuBackend;
use turbine_core::Backend;

use super::plan::{breakdown_lines, ModelArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text file to evaluate.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Evaluate at most this many chunks (default: all that fit).
    #[arg(long = "chunks")]
    pub chunks: Option<usize>,
    /// Write the log-probabilities of every scored token to this file (base for --kl-base).
    #[arg(long = "save-logits")]
    pub save_logits: Option<PathBuf>,
    /// Compare against a file written by --save-logits: KL divergence, same top-1, Δp.
    #[arg(long = "kl-base")]
    pub kl_base: Option<PathBuf>,
}

const MAGIC: &[u8; 8] = b"TRBLOGP1";

/// Header of a saved log-prob file; the same text, model vocabulary and chunking are required
/// for a comparison to mean anything, so all of it is checked.
#[derive(Debug, PartialEq, Eq)]
struct LogitsHeader {
    n_vocab: u32,
    n_ctx: u32,
    n_chunk: u32,
    /// Tokens of all chunks, `n_chunk * n_ctx`.
    tokens: Vec<u32>,
}

impl LogitsHeader {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        for v in [self.n_vocab, self.n_ctx, self.n_chunk] {
            w.write_all(&v.to_le_bytes())?;
        }
        for t in &self.tokens {
            w.write_all(&t.to_le_bytes())?;
        }
        Ok(())
    }

    fn read(r: &mut impl Read) -> anyhow::Result<LogitsHeader> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).context("reading header")?;
        ensure!(&magic == MAGIC, "not a turbine log-prob file (bad magic)");
        let mut word = || -> anyhow::Result<u32> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).context("truncated header")?;
            Ok(u32::from_le_bytes(b))
        };
        let (n_vocab, n_ctx, n_chunk) = (word()?, word()?, word()?);
        let n_tokens = (n_chunk as usize)
            .checked_mul(n_ctx as usize)
            .filter(|&n| n <= 1 << 28)
            .context("header token count is implausible")?;
        let mut tokens = Vec::with_capacity(n_tokens);
        for _ in 0..n_tokens {
            tokens.push(word()?);
        }
        Ok(LogitsHeader {
            n_vocab,
            n_ctx,
            n_chunk,
            tokens,
        })
    }
}

/// Log-softmax of `logits` into `out`, in f64 for the normalizer.
fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let log_z = max as f64 + sum.ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l as f64 - log_z) as f32;
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Running statistics of the comparison against a base run.
#[derive(Default)]
struct KlStats {
    n: usize,
    kl_sum: f64,
    kl_sq_sum: f64,
    kl_max: f64,
    same_top1: usize,
    dp_sum: f64,
    dp_sq_sum: f64,
    base_nll: f64,
}

impl KlStats {
    /// `base` and `test` are log-probs over the vocabulary; `tok` is the actual next token.
    fn add(&mut self, base: &[f32], test: &[f32], tok: usize) {
        let mut kl = 0.0f64;
        for (&b, &t) in base.iter().zip(test) {
            let pb = (b as f64).exp();
            if pb > 0.0 {
                kl += pb * (b as f64 - t as f64);
            }
        }
        let kl = kl.max(0.0);
        self.n += 1;
        self.kl_sum += kl;
        self.kl_sq_sum += kl * kl;
        self.kl_max = self.kl_max.max(kl);
        if argmax(base) == argmax(test) {
            self.same_top1 += 1;
        }
        let dp = (test[tok] as f64).exp() - (base[tok] as f64).exp();
        self.dp_sum += dp;
        self.dp_sq_sum += dp * dp;
        self.base_nll -= base[tok] as f64;
    }

    fn report(&self, test_nll: f64) {
        let n = self.n.max(1) as f64;
        let kl_mean = self.kl_sum / n;
        let kl_err = ((self.kl_sq_sum / n - kl_mean * kl_mean).max(0.0) / n).sqrt();
        let dp_mean = self.dp_sum / n;
        let dp_rms = (self.dp_sq_sum / n).sqrt();
        let same = self.same_top1 as f64 / n;
        println!("KL divergence vs base over {} tokens:", self.n);
        println!("  PPL(base)          = {:.4}", (self.base_nll / n).exp());
        println!("  PPL(this)          = {:.4}", (test_nll / n).exp());
        println!(
            "  ln(PPL/PPL(base))  = {:.6}",
            (test_nll - self.base_nll) / n
        );
        println!("  mean KLD           = {kl_mean:.6} ± {kl_err:.6}");
        println!("  max KLD            = {:.6}", self.kl_max);
        println!(
            "  same top-1         = {:.3}% ± {:.3}%",
            100.0 * same,
            100.0 * (same * (1.0 - same) / n).sqrt()
        );
        println!("  mean Δp            = {:.4}%", 100.0 * dp_mean);
        println!("  RMS Δp             = {:.4}%", 100.0 * dp_rms);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.model;
    let file = a.open()?;
    let hp = HParams::from_gguf(&file)?;
    let mut cfg = a.run_config(&hp)?;
    if cfg.n_seq != 1 {
        bail!("perplexity evaluates one sequence at a time; drop -np");
    }
    let n_ctx = cfg.n_ctx;
    ensure!(n_ctx >= 8, "-c {n_ctx} is too small for perplexity");
    cfg.logits_all = true;
    cfg.n_batch = cfg.n_batch.max(n_ctx);

    let tokenizer = Tokenizer::from_gguf(&file).context("tokenizer")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let t0 = Instant::now();
    let tokens = tokenizer.encode(&text, true, false);
    eprintln!(
        "tokenized {} bytes into {} tokens in {:.2} s",
        text.len(),
        tokens.len(),
        t0.elapsed().as_secs_f64()
    );
    let available = tokens.len() / n_ctx;
    let n_chunk = args.chunks.map_or(available, |c| c.min(available));
    if n_chunk == 0 {
        bail!(
            "{} tokens are fewer than one chunk of -c {n_ctx}",
            tokens.len()
        );
    }

    let backend = Arc::new(CpuBackend::new(a.threads())?);
    let plan = plan_memory(backend.as_ref(), &file, &hp, &cfg)?;
    let mut model = Model::load_planned(backend.clone(), file.clone(), hp, cfg, plan.clone())?;
    if let Err(problems) = backend.allocation_log().compare(&plan) {
        bail!("allocations differ from the plan: {}", problems.join("; "));
    }
    for line in breakdown_lines(backend.as_ref(), &plan, backend.memory().as_ref()) {
        eprintln!("{line}");
    }

    let n_vocab = model.hparams().n_vocab;
    let ubatch = model.config().n_ubatch;
    let first = n_ctx / 2;
    let bos = tokenizer.bos().filter(|_| tokenizer.add_bos());
    let header = LogitsHeader {
        n_vocab: n_vocab as u32,
        n_ctx: n_ctx as u32,
        n_chunk: n_chunk as u32,
        tokens: tokens[..n_chunk * n_ctx].to_vec(),
    };

    let mut save = match &args.save_logits {
        Some(p) => {
            let mut w = BufWriter::new(
                File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
            );
            header.write(&mut w)?;
            Some(w)
        }
        None => None,
    };
    let mut base = match &args.kl_base {
        Some(p) => {
            let mut r = BufReader::new(
                File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            );
            let got =
                LogitsHeader::read(&mut r).with_context(|| format!("kl-base {}", p.display()))?;
            ensure!(
                got.n_vocab == header.n_vocab && got.n_ctx == header.n_ctx,
                "kl-base {} was saved with vocab {} and -c {}, this run has vocab {} and -c {}",
                p.display(),
                got.n_vocab,
                got.n_ctx,
                n_vocab,
                n_ctx
            );
            ensure!(
                got.n_chunk >= header.n_chunk
                    && got.tokens[..header.tokens.len()] == header.tokens[..],
                "kl-base {} was saved on other text or fewer chunks",
                p.display()
            );
            Some(r)
        }
        None => None,
    };

    let mut logp = vec![0f32; n_vocab];
    let mut base_logp = vec![0f32; n_vocab];
    let mut f16_row = vec![0u8; n_vocab * 2];
    let mut kl = KlStats::default();
    let mut nll = 0f64;
    let mut nll_sq = 0f64;
    let mut count = 0usize;
    let start = Instant::now();
    for chunk in 0..n_chunk {
        let mut chunk_tokens = tokens[chunk * n_ctx..(chunk + 1) * n_ctx].to_vec();
        if let Some(b) = bos {
            chunk_tokens[0] = b;
        }
        model.truncate(0, 0)?;
        for (batch_idx, batch) in chunk_tokens.chunks(ubatch).enumerate() {
            model.forward(0, batch, true)?;
            let batch_start = batch_idx * ubatch;
            for row in 0..batch.len() {
                let pos = batch_start + row;
                // Position `pos` predicts `pos + 1`; score the second half of the chunk.
                if pos < first || pos + 1 >= n_ctx {
                    continue;
                }
                let next = chunk_tokens[pos + 1] as usize;
                log_softmax(model.logits(row)?, &mut logp);
                let l = -(logp[next] as f64);
                nll += l;
                nll_sq += l * l;
                count += 1;
                if let Some(w) = save.as_mut() {
                    for (dst, &v) in f16_row.chunks_exact_mut(2).zip(&logp) {
                        dst.copy_from_slice(&f16::from_f32(v).to_le_bytes());
                    }
                    w.write_all(&f16_row)?;
                }
                if let Some(r) = base.as_mut() {
                    r.read_exact(&mut f16_row).context("kl-base is truncated")?;
                    for (dst, src) in base_logp.iter_mut().zip(f16_row.chunks_exact(2)) {
                        *dst = f16::from_le_bytes([src[0], src[1]]).to_f32();
                    }
                    kl.add(&base_logp, &logp, next);
                }
            }
        }
        let ppl = (nll / count as f64).exp();
        print!("[{}]{:.4},", chunk + 1, ppl);
        std::io::stdout().flush()?;
        if chunk == 0 {
            let per_chunk = start.elapsed().as_secs_f64();
            eprintln!(
                "\n{per_chunk:.2} s per chunk, about {:.1} min for {n_chunk} chunks",
                per_chunk * n_chunk as f64 / 60.0
            );
        }
    }
    println!();
    if let Some(mut w) = save {
        w.flush()?;
    }
    let n = count as f64;
    let mean = nll / n;
    // Standard error of exp(mean NLL), by the delta method, as llama-perplexity reports it.
    let var = (nll_sq / n - mean * mean).max(0.0) / (n - 1.0).max(1.0);
    let ppl = mean.exp();
    println!(
        "Final estimate: PPL = {ppl:.4} +/- {:.5} ({n_chunk} chunks of {n_ctx}, {count} tokens scored, -ctk {} -ctv {}, {:.1} s)",
        ppl * var.sqrt(),
        model.config().type_k.name(),
        model.config().type_v.name(),
        start.elapsed().as_secs_f64()
    );
    if base.is_some() {
        kl.report(nll);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalizes() {
        let logits = [1.0f32, 2.0, 3.0, -50.0];
        let mut out = [0f32; 4];
        log_softmax(&logits, &mut out);
        let total: f64 = out.iter().map(|&l| (l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(out[2] > out[1] && out[1] > out[0]);
    }

    #[test]
    fn kl_of_identical_distributions_is_zero_and_of_different_is_positive() {
        let mut a = [0f32; 3];
        let mut b = [0f32; 3];
        log_softmax(&[0.0, 1.0, 2.0], &mut a);
        log_softmax(&[2.0, 1.0, 0.0], &mut b);
        let mut same = KlStats::default();
        same.add(&a, &a, 2);
        assert!(same.kl_sum.abs() < 1e-9 && same.same_top1 == 1);
        let mut diff = KlStats::default();
        diff.add(&a, &b, 2);
        assert!(diff.kl_sum > 0.5 && diff.same_top1 == 0 && diff.dp_sum < 0.0);
    }

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let h = LogitsHeader {
            n_vocab: 7,
            n_ctx: 2,
            n_chunk: 2,
            tokens: vec![1, 2, 3, 4],
        };
        let mut bytes = Vec::new();
        h.write(&mut bytes).unwrap();
        assert_eq!(LogitsHeader::read(&mut bytes.as_slice()).unwrap(), h);
        assert!(LogitsHeader::read(&mut &bytes[..10]).is_err());
        assert!(LogitsHeader::read(&mut &b"NOTMAGIC...."[..]).is_err());
    }
}
