//! qwen3moe, qwen35 and qwen35moe against llama.cpp itself (the prebuilt `xllamacpp` in the
//! venv) on `turbine synth` tiny models with f32 weights: llama.cpp reads the same GGUF, so this
//! checks that turbine interprets every tensor layout and key exactly as llama.cpp does
//! (value-head tiling, `ssm_a` sign, conv layout, gated query, shared-expert gate), beside the
//! transformers reference of crates/models/tests/hf_reference.rs.
//!
//! Greedy, 12 steps: while both engines chose the same tokens, the chosen token's log-prob
//! must agree within 2e-3 nat (f32 weights: llama.cpp does not quantize activations there).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use gguf::GgufFile;
use models::{Model, RunConfig};
use text::Tokenizer;
use turbine_core::cpu::CpuBackend;

const PROMPT: &str = "The quick brown fox jumps over the lazy dog and";
const STEPS: usize = 12;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("TURBINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let ok = p.exists()
        && Command::new(&p)
            .args(["-c", "import xllamacpp"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!(
            "{}: no Python with xllamacpp (run scripts/test.sh)",
            p.display()
        );
    }
    eprintln!("skipped: no Python with xllamacpp at {}", p.display());
    None
}

fn synth(arch: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{arch}-tiny-f32.gguf"));
    let out = Command::new(env!("CARGO_BIN_EXE_turbine"))
        .args([
            "synth", "--arch", arch, "--shape", "tiny", "--type", "f32", "-o",
        ])
        .arg(&path)
        .output()
        .expect("run turbine synth");
    assert!(
        out.status.success(),
        "synth {arch}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// llama.cpp's greedy ids and chosen-token log-probs.
fn llama_cpp(py: &Path, model: &Path) -> (Vec<u32>, Vec<f64>) {
    let out = Command::new(py)
        .arg(root().join("scripts/reference/llamacpp_golden.py"))
        .arg(model)
        .args([&STEPS.to_string(), "1", PROMPT])
        .output()
        .expect("run llamacpp_golden.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("golden JSON");
    let run = &v["runs"][0];
    let ids = run["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32);
    let lps = run["logprobs"]
        .as_array()
        .expect("logprobs")
        .iter()
        .map(|x| x.as_f64().expect("lp"));
    (ids.collect(), lps.collect())
}

fn log_softmax_at(logits: &[f32], id: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[id] as f64 - max - sum.ln()
}

fn check(py: &Path, arch: &str) {
    let path = synth(arch);
    let (ids, lps) = llama_cpp(py, &path);
    let file = Arc::new(GgufFile::open(&path).expect("open"));
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let prompt = tok.encode(PROMPT, true, true);
    let backend = Arc::new(CpuBackend::new(2).expect("backend"));
    let cfg = RunConfig {
        n_ctx: 256,
        n_ubatch: 16,
        ..RunConfig::default()
    };
    let mut model = Model::load(backend, file, cfg).expect("load");
    for chunk in prompt.chunks(16) {
        model.forward(0, chunk, false).expect("prefill");
    }
    let mut worst = 0f64;
    let mut compared = 0;
    for (i, (&id, &lp)) in ids.iter().zip(&lps).enumerate() {
        let logits = model.logits(0).expect("logits");
        let ours_best = logits
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (j, &x)| if x > b.1 { (j, x) } else { b },
            )
            .0;
        worst = worst.max((log_softmax_at(logits, id as usize) - lp).abs());
        compared += 1;
        if ours_best != id as usize {
            // A near-tie may be broken either way; after it the sequences differ.
            eprintln!(
                "{arch}: step {i} greedy choice differs (llama.cpp {id}, turbine {ours_best})"
            );
            break;
        }
        model.forward(0, &[id], false).expect("decode");
    }
    eprintln!("{arch}: {compared} steps, worst |Δ log-prob| {worst:.2e}");
    assert!(compared >= 4, "{arch}: only {compared} steps agreed");
    assert!(
        worst < 2e-3,
        "{arch}: log-probs differ from llama.cpp by {worst:.3e}"
    );
}

#[test]
fn hybrid_and_moe_archs_match_llama_cpp() {
    let Some(py) = python() else {
        return;
    };
    for arch in ["qwen3moe", "qwen35", "qwen35moe"] {
        check(&py, arch);
    }
}
