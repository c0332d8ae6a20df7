//! Shared test helpers: locating the shared assets and the Python venv, with the skip rule of
//! the team (skip with a message unless TURBINE_REQUIRE_ASSETS=1).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_assets() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// `rel` under the workspace root, or `None` (after printing why) when it is absent and
/// assets are not required.
pub fn asset(rel: &str) -> Option<PathBuf> {
    let path = root().join(rel);
    if path.exists() {
        return Some(path);
    }
    if require_assets() {
        panic!("missing asset {rel}: run scripts/fetch-models.sh");
    }
    eprintln!("skipped: {rel} is missing; run scripts/fetch-models.sh");
    None
}

pub const SMOLLM: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The venv's Python with the `gguf` package (env TURBINE_PYTHON overrides), or `None`.
pub fn python() -> Option<PathBuf> {
    let path = match std::env::var_os("TURBINE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root().join(".venv/bin/python"),
    };
    let ok = Command::new(&path)
        .args(["-c", "import gguf, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(path);
    }
    if require_assets() {
        panic!("no Python with the gguf package at {}", path.display());
    }
    eprintln!("skipped: no Python with the gguf package (.venv/bin/python or TURBINE_PYTHON)");
    None
}

/// Runs a Python script with `args`, returning stdout; panics with stderr on failure.
pub fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}

/// A fresh empty directory for a test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gguf-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
