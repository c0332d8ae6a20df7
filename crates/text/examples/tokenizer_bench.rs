//! Tokenizer throughput: encodes a text repeated to a target size and reports MB/s.
//!
//! cargo run --release -p text --example tokenizer_bench -- [TEXT] [MB] [GGUF ...]
//!
//! Defaults: fixtures/botchan.txt, 10 MB, the Llama 3 vocabulary
//! (fixtures/llama.cpp/models/ggml-vocab-llama-bpe.gguf) and SmolLM2's
//! (models/SmolLM2-135M-Instruct.Q4_1.gguf). Each model: one warm-up run, then the best of
//! five timed runs of `encode(text, add_special = false, parse_special = false)`, and a
//! decode of the ids back to text.

use std::time::Instant;

use gguf::GgufFile;
use text::tokenizer::Tokenizer;

/// CPU time this thread has used, in seconds (Linux scheduler statistics, nanoseconds;
/// `None` elsewhere). On a shared machine wall time also counts the time other processes held
/// the core; CPU time does not.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let text_path = args
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{root}/fixtures/botchan.txt"));
    let mb: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10.0);
    let models: Vec<String> = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        vec![
            format!("{root}/fixtures/llama.cpp/models/ggml-vocab-llama-bpe.gguf"),
            format!("{root}/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ]
    };

    let base = std::fs::read_to_string(&text_path).map_err(|e| format!("{text_path}: {e}"))?;
    if base.is_empty() {
        return Err(format!("{text_path} is empty").into());
    }
    let target = (mb * 1e6) as usize;
    let mut text = String::with_capacity(target + base.len());
    while text.len() < target {
        text.push_str(&base);
    }
    println!(
        "text: {text_path} repeated to {:.2} MB",
        text.len() as f64 / 1e6
    );

    for model in &models {
        let t = Instant::now();
        let file = GgufFile::open(model).map_err(|e| format!("{model}: {e}"))?;
        let tok = Tokenizer::from_gguf(&file).map_err(|e| format!("{model}: {e}"))?;
        let load = t.elapsed().as_secs_f64();
        let name = std::path::Path::new(model)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();

        let mut ids = tok.encode(&text, false, false);
        let mut best = f64::MAX;
        let cpu0 = thread_cpu_seconds();
        const RUNS: usize = 5;
        for _ in 0..RUNS {
            let t = Instant::now();
            ids = tok.encode(&text, false, false);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let cpu = match (cpu0, thread_cpu_seconds()) {
            (Some(a), Some(b)) if b > a => (b - a) / RUNS as f64,
            _ => f64::NAN,
        };
        // The pre-tokenizer alone (word splitting, no merges), for where the time goes.
        let mut pre_best = f64::MAX;
        if let Some(pre) = tok.pre_tokenizer() {
            for _ in 0..3 {
                let t = Instant::now();
                let mut words = 0usize;
                pre.split(&text, 0, text.len(), &mut |_, _| words += 1);
                pre_best = pre_best.min(t.elapsed().as_secs_f64());
                std::hint::black_box(words);
            }
        }
        let t = Instant::now();
        let back = tok.detokenize(&ids, false, false);
        let dec = t.elapsed().as_secs_f64();
        let mb = text.len() as f64 / 1e6;
        println!(
            "{name:32} {:?}/{:10} load {:5.0} ms | encode {:6.1} MB/s ({:.3} s; {:6.1} MB/s of CPU time) {} tokens, {:.2} bytes/token | pre-tokenize alone {:>6} MB/s | decode {:6.1} MB/s",
            tok.kind(),
            tok.pre_tokenizer_name(),
            load * 1e3,
            mb / best,
            best,
            mb / cpu,
            ids.len(),
            text.len() as f64 / ids.len() as f64,
            if pre_best < f64::MAX { format!("{:.1}", mb / pre_best) } else { "-".to_owned() },
            back.len() as f64 / 1e6 / dec,
        );
    }
    Ok(())
}
