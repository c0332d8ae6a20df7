//! Shared by the chat-template tests: asset lookup (skip or fail per
//! TURBINE_REQUIRE_ASSETS), running `template_oracle.py`, and comparing its rows with
//! our renderings.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use text::template::{ChatRequest, ChatTemplate, DateTime, TemplateError};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn require_assets() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// The path if it exists; otherwise skips (None) or, under
/// TURBINE_REQUIRE_ASSETS=1, fails.
pub fn asset(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let msg = format!("{what} not found at {}", path.display());
    if require_assets() {
        panic!("{msg} (TURBINE_REQUIRE_ASSETS=1)");
    }
    eprintln!("skipped: {msg}; run scripts/fetch-models.sh");
    None
}

fn python() -> Option<PathBuf> {
    match std::env::var_os("TURBINE_PYTHON") {
        Some(p) => asset(PathBuf::from(p), "TURBINE_PYTHON"),
        None => asset(root().join(".venv/bin/python"), "Python venv"),
    }
}

/// The conversations file (bos/eos, fixed date, tools, conversations).
pub fn spec() -> Value {
    let text = std::fs::read_to_string(tests_dir().join("template_conversations.json"))
        .expect("read template_conversations.json");
    serde_json::from_str(&text).expect("parse template_conversations.json")
}

/// Runs template_oracle.py with `args` before the conversations file; None when
/// Python is missing (and assets are not required).
pub fn run_oracle(args: &[&Path]) -> Option<Value> {
    let python = python()?;
    let output = Command::new(&python)
        .arg(tests_dir().join("template_oracle.py"))
        .args(args)
        .arg(tests_dir().join("template_conversations.json"))
        .output()
        .expect("run template_oracle.py");
    assert!(
        output.status.success(),
        "template_oracle.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("oracle output is JSON"))
}

/// The request an oracle row was rendered with.
pub fn request_for(spec: &Value, row: &Value) -> ChatRequest {
    let name = row["conversation"].as_str().unwrap();
    let conv = spec["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .expect("conversation of oracle row");
    let with_tools = conv.get("with_tools").and_then(Value::as_bool) == Some(true);
    ChatRequest {
        messages: conv["messages"].as_array().unwrap().clone(),
        tools: with_tools.then(|| spec["tools"].as_array().unwrap().clone()),
        add_generation_prompt: row["add_generation_prompt"].as_bool().unwrap(),
        extra: conv
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        now: Some(DateTime::parse(spec["now"].as_str().unwrap()).expect("fixed date")),
    }
}

#[derive(Default)]
pub struct Comparison {
    pub same_text: usize,
    pub same_failure: usize,
    /// "template / conversation / add_generation_prompt=..: what differs".
    pub mismatches: Vec<String>,
}

/// Renders every oracle row with `template` (the compiled template or its
/// compile error) and compares: same text, or both failing with our error naming
/// the template. TEMPLATE_SHOW_FAILURES=1 prints both sides of shared failures.
pub fn compare_row(
    spec: &Value,
    row: &Value,
    template: &Result<ChatTemplate, TemplateError>,
    template_name: &str,
    out: &mut Comparison,
) {
    let got = match template {
        Ok(t) => t.render(&request_for(spec, row)),
        Err(e) => Err(e.clone()),
    };
    let case = format!(
        "{} / {} / add_generation_prompt={}",
        row["template"].as_str().unwrap(),
        row["conversation"].as_str().unwrap(),
        row["add_generation_prompt"]
    );
    match (row.get("output").and_then(Value::as_str), got) {
        (Some(want), Ok(got)) if want == got => out.same_text += 1,
        (Some(want), Ok(got)) => out
            .mismatches
            .push(format!("{case}: {}", describe_difference(want, &got))),
        (Some(_), Err(e)) => out
            .mismatches
            .push(format!("{case}: oracle renders, we fail: {e}")),
        (None, Ok(_)) => out.mismatches.push(format!(
            "{case}: oracle fails ({}), we render",
            row["error"].as_str().unwrap_or("?")
        )),
        (None, Err(e)) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("'{template_name}'")),
                "error does not name the template: {text}"
            );
            if std::env::var_os("TEMPLATE_SHOW_FAILURES").is_some() {
                println!(
                    "BOTH FAIL {case}\n  oracle: {}\n  ours:   {text}",
                    row["error"]
                );
            }
            out.same_failure += 1;
        }
    }
}

/// Where two renderings first differ, with some context from each.
pub fn describe_difference(want: &str, got: &str) -> String {
    let mut at = want
        .bytes()
        .zip(got.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    while !(want.is_char_boundary(at) && got.is_char_boundary(at)) {
        at -= 1;
    }
    let around = |s: &str| {
        let mut start = at.saturating_sub(40);
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (at + 60).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        format!("{:?}", &s[start..end])
    };
    format!(
        "first difference at byte {at} (lengths {} vs {}): want {} got {}",
        want.len(),
        got.len(),
        around(want),
        around(got)
    )
}
