//! `turbine synth` as a user runs it: tiny random models of each architecture, written by the
//! CLI, read back by turbine's GGUF reader and tokenizer, and run by both turbine and llama.cpp
//! (the prebuilt `xllamacpp`); the two agreeing on the generated text proves the names, shapes
//! and layouts are llama.cpp's.

use std::path::{Path, PathBuf};
use std::process::Command;

use gguf::GgufFile;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("turbine-synth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn turbine(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_turbine"))
        .args(args)
        .output()
        .expect("run turbine");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `arch`/`shape` with `extra` flags to `dir/<arch>.gguf`.
fn synth(dir: &Path, arch: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("{arch}.gguf"));
    let p = path.to_str().unwrap();
    let mut args = vec!["synth", "--arch", arch, "--shape", "tiny", "-o", p];
    args.extend_from_slice(extra);
    let (ok, out, err) = turbine(&args);
    assert!(ok, "synth {arch}: {err}");
    assert!(out.starts_with(&format!("wrote {p}: {arch} tiny")), "{out}");
    path
}

/// The venv's Python with xllamacpp (env TURBINE_PYTHON overrides), or `None` (skip) unless
/// TURBINE_REQUIRE_ASSETS=1.
fn python() -> Option<PathBuf> {
    let p = std::env::var_os("TURBINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{} missing: run scripts/fetch-models.sh", p.display());
    }
    eprintln!(
        "skipped: {} missing; run scripts/fetch-models.sh",
        p.display()
    );
    None
}

/// llama.cpp's greedy run of `model`.
struct LlamaRun {
    ids: Vec<u32>,
    text: String,
    /// Smallest gap (nat) between the best and second-best token over the steps llama.cpp
    /// reports (byte tokens that end inside a UTF-8 character are not reported).
    min_gap: f64,
}

/// Loads `model` in llama.cpp (scripts/reference/llamacpp_golden.py) and generates greedily,
/// once per prompt.
fn llama_cpp_generate(py: &Path, model: &Path) -> Vec<LlamaRun> {
    let script = root().join("scripts/reference/llamacpp_golden.py");
    let out = Command::new(py)
        .arg(&script)
        .args([model.to_str().unwrap(), "4", "2"])
        .args(PROMPTS)
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "llama.cpp failed on {}: {}",
        model.display(),
        stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n")
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("golden json");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), PROMPTS.len());
    runs.iter().map(llama_run).collect()
}

fn llama_run(run: &serde_json::Value) -> LlamaRun {
    assert!(run["prompt_tokens"].as_u64().unwrap_or(0) > 1, "{run}");
    let lps = run["logprobs"].as_array().expect("logprobs");
    assert!(
        lps.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)),
        "{run}"
    );
    let gap = |step: &serde_json::Value| match step.as_array().map(|t| t.as_slice()) {
        Some([a, b, ..]) => a[1].as_f64().unwrap_or(0.0) - b[1].as_f64().unwrap_or(0.0),
        _ => 0.0,
    };
    LlamaRun {
        ids: run["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(|x| x.as_u64().map(|i| i as u32))
            .collect(),
        text: run["text"].as_str().unwrap_or_default().to_string(),
        min_gap: run["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(gap)
            .fold(f64::INFINITY, f64::min),
    }
}

const PROMPTS: [&str; 8] = [
    "Hello world, the",
    "The capital of France is",
    "Once upon a time there",
    "abc def ghi jkl",
    "In the beginning was",
    "Rust and Python are",
    "what is the answer to",
    "My name is Bob and I",
];

fn check_header(path: &Path, arch: &str) -> GgufFile {
    let f = GgufFile::open(path).expect("synth output opens");
    let md = f.metadata();
    assert_eq!(md.get_str("general.architecture"), Some(arch));
    let n_vocab = md.get_str_array("tokenizer.ggml.tokens").unwrap().len() as u64;
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims[1], n_vocab);
    // Every tensor the table lists, with its shape and type, and nothing else.
    let shape = synth::shape(synth::Arch::from_name(arch).unwrap(), "tiny").unwrap();
    let table = synth::tensor_table(
        synth::Arch::from_name(arch).unwrap(),
        &shape,
        formats::GgmlType::Q4K,
    );
    assert_eq!(f.tensors().len(), table.len());
    for t in &table {
        let info = f
            .tensor(&t.name)
            .unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!((&info.dims, info.ty), (&t.dims, t.ty), "{}", t.name);
    }
    let tok = text::Tokenizer::from_gguf(&f).expect("turbine's tokenizer loads the vocabulary");
    let ids = tok.encode("Hello world, the answer", false, true);
    assert!(ids.len() > 2 && ids.len() < 23, "{ids:?}");
    f
}

/// Writes the tiny shape of `arch`, checks it with turbine's reader and tokenizer, and runs it
/// in turbine and in llama.cpp: both must write the same text wherever llama.cpp's greedy
/// choice is clear (no near tie at any step).
fn check_arch(arch: &str) {
    let dir = tmp_dir(arch);
    let path = synth(&dir, arch, &[]);
    check_header(&path, arch);
    run_both(arch, &path);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Generates from `path` in turbine and llama.cpp and compares the texts.
fn run_both(arch: &str, path: &Path) {
    let p = path.to_str().unwrap();
    let turbine_out: Vec<String> = PROMPTS
        .iter()
        .map(|prompt| {
            let (ok, out, err) = turbine(&[
                "run",
                "-m",
                p,
                "-p",
                prompt,
                "-n",
                "4",
                "--temp",
                "0",
                "--ignore-eos",
                "-c",
                "256",
                "-t",
                "1",
            ]);
            assert!(ok, "turbine run {arch}: {err}");
            out
        })
        .collect();
    if let Some(py) = python() {
        let runs = llama_cpp_generate(&py, path);
        assert!(
            runs.iter().all(|r| !r.ids.is_empty()),
            "{arch}: llama.cpp generated nothing"
        );
        // llama.cpp may stop early at an end-of-generation token (turbine ignores them here),
        // and shows a character cut off at the end as U+FFFD where turbine holds it back.
        let clear: Vec<(&LlamaRun, &String)> = runs
            .iter()
            .zip(&turbine_out)
            .filter(|(r, _)| r.min_gap > 0.05)
            .collect();
        for (run, out) in &clear {
            assert!(
                out.starts_with(run.text.trim_end_matches('\u{FFFD}')),
                "{arch}: turbine wrote {out:?}, llama.cpp {:?}",
                run.text
            );
        }
        assert!(!clear.is_empty(), "{arch}: every prompt had a near tie");
        eprintln!(
            "{arch}: turbine writes llama.cpp's text on all {} of {} prompts without near ties",
            clear.len(),
            runs.len()
        );
    }
}

#[test]
fn llama_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("llama");
}

#[test]
fn qwen2_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("qwen2");
}

#[test]
fn qwen3_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("qwen3");
}

#[test]
fn qwen3moe_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("qwen3moe");
}

#[test]
fn qwen35_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("qwen35");
}

#[test]
fn qwen35moe_tiny_runs_in_turbine_and_llama_cpp() {
    check_arch("qwen35moe");
}

/// `--vocab`: llama.cpp's SentencePiece test vocabulary (32000 tokens with scores), padded to
/// 32100 with unused `[PADi]` tokens; both engines load and run the model.
#[test]
fn vocab_copied_from_a_vocab_file_is_padded_and_runs() {
    let vocab = root().join("fixtures/llama.cpp/models/ggml-vocab-llama-spm.gguf");
    if !vocab.exists() {
        if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
            panic!("{} missing: run scripts/fetch-models.sh", vocab.display());
        }
        eprintln!(
            "skipped: {} missing; run scripts/fetch-models.sh",
            vocab.display()
        );
        return;
    }
    let dir = tmp_dir("vocab");
    let path = synth(
        &dir,
        "llama",
        &["--vocab", vocab.to_str().unwrap(), "--n-vocab", "32100"],
    );
    let f = GgufFile::open(&path).expect("open");
    let md = f.metadata();
    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 32100);
    assert_eq!(tokens[32000], "[PAD32000]");
    assert_eq!(
        md.get_f32_array("tokenizer.ggml.scores").unwrap().len(),
        32100
    );
    let types = md.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!((types.len(), types[32099]), (32100, 5));
    assert_eq!(f.tensor("token_embd.weight").unwrap().dims, [256, 32100]);
    // The copied tokenizer tokenizes like the original.
    let original = text::Tokenizer::from_gguf(&GgufFile::open(&vocab).unwrap()).unwrap();
    let copied = text::Tokenizer::from_gguf(&f).unwrap();
    let s = "Hello world, the answer is 42";
    assert_eq!(copied.encode(s, true, true), original.encode(s, true, true));
    run_both("llama", &path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_seed_same_bytes_any_thread_count_and_header_only_plans() {
    let dir = tmp_dir("seed");
    let a = synth(&dir, "qwen3", &["--seed", "7", "-t", "1"]);
    let a2 = dir.join("a.gguf");
    std::fs::rename(&a, &a2).unwrap();
    let b = synth(&dir, "qwen3", &["--seed", "7", "-t", "3"]);
    let (ba, bb) = (std::fs::read(&a2).unwrap(), std::fs::read(&b).unwrap());
    assert!(ba == bb, "seeded output differs between thread counts");
    let c = synth(&dir, "qwen3", &["--seed", "8"]);
    assert!(std::fs::read(&c).unwrap() != ba);

    // Header only: turbine's header-only reader sees the same tensor table.
    let h = dir.join("header.gguf");
    let (ok, out, err) = turbine(&[
        "synth",
        "--arch",
        "qwen35moe",
        "--shape",
        "35b-a3b",
        "-o",
        h.to_str().unwrap(),
        "--header-only",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("header only"), "{out}");
    let f = GgufFile::open_header_only(&h).expect("header-only file opens");
    let table = synth::tensor_table(
        synth::Arch::Qwen35Moe,
        &synth::shape(synth::Arch::Qwen35Moe, "35b-a3b").unwrap(),
        formats::GgmlType::Q4K,
    );
    assert_eq!(f.tensors().len(), table.len());
    assert_eq!(f.metadata().get_u32("qwen35moe.expert_count"), Some(256));
    assert!(std::fs::metadata(&h).unwrap().len() < 16 << 20);

    // Errors are one line and name the problem.
    let (ok, _, err) = turbine(&["synth", "--arch", "qwen3", "--shape", "9b", "-o", "x.gguf"]);
    assert!(!ok && err.contains("unknown shape `9b`"), "{err}");
    let (ok, _, err) = turbine(&[
        "synth", "--arch", "qwen3", "--shape", "tiny", "--type", "q9", "-o", "x.gguf",
    ]);
    assert!(!ok && err.contains("--type q9"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
