//! `turbine run` and `turbine plan` as a user runs them.

use std::path::PathBuf;
use std::process::Command;

fn model() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
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

/// `CPU | T = F free + (S = M model + C context + K compute) + U unaccounted`, numbers adding up.
fn check_breakdown(line: &str) {
    let nums: Vec<i64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(line.starts_with("CPU | ") && nums.len() == 7, "{line}");
    let [total, free, own, m, c, k, u] = nums[..] else {
        unreachable!()
    };
    assert_eq!(own, m + c + k, "{line}");
    assert_eq!(total, free + own + u, "{line}");
}

#[test]
fn run_greedy_paris_with_breakdown_lines() {
    let Some(m) = model() else { return };
    let m = m.to_str().unwrap();
    let (ok, out, err) = turbine(&[
        "run",
        "-m",
        m,
        "-p",
        "The capital of France is",
        "-n",
        "4",
        "--temp",
        "0",
        "-c",
        "512",
        "-t",
        "2",
        "-ctk",
        "q8_0",
        "-ctv",
        "turbo4",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with(" Paris."), "{out:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("CPU | ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    for l in lines {
        check_breakdown(l);
    }
    assert!(err.contains("tok/s"), "{err}");
}

#[test]
fn run_chat_answers_in_one_sentence() {
    let Some(m) = model() else { return };
    let (ok, out, err) = turbine(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "--chat",
        "-p",
        "What is the capital of France? Answer in one sentence.",
        "-n",
        "30",
        "--temp",
        "0",
        "-c",
        "512",
    ]);
    assert!(ok, "{err}");
    // llama.cpp's answer (ASSETS.md); generation stops at the end-of-turn token.
    assert_eq!(out.trim(), "The capital of France is Paris.");
    assert!(err.contains("end of generation"), "{err}");
}

#[test]
fn bad_cache_type_is_one_clear_line() {
    let Some(m) = model() else { return };
    let (ok, _, err) = turbine(&["run", "-m", m.to_str().unwrap(), "-p", "x", "-ctk", "q9"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown KV cache type `q9`") && err.contains("turbo3"),
        "{err}"
    );
}

#[test]
fn plan_prints_table_and_breakdown() {
    let Some(m) = model() else { return };
    let (ok, out, err) = turbine(&["plan", "-m", m.to_str().unwrap(), "-c", "8192", "-t", "2"]);
    assert!(ok, "{err}");
    for buf in [
        "weights",
        "kv",
        "act.x",
        "logits",
        "attn.workspace",
        "sampler",
    ] {
        assert!(out.contains(buf), "{buf} missing:\n{out}");
    }
    // 30 layers × 8192 cells × 3 KV heads × 64 × 2 B × (K + V) = 180 MiB of f16 cache.
    let line = out.lines().find(|l| l.starts_with("CPU | ")).unwrap();
    check_breakdown(line);
    assert!(line.contains("180 context"), "{line}");
}
