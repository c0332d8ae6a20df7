//! `turbine perplexity` on the real default model and text.
//!
//! The reference is llama.cpp's llama-perplexity on the same file and text (shared/ASSETS.md:
//! SmolLM2-135M-Instruct Q4_1 on botchan.txt, ctx 512, 40 chunks: PPL 27.54). The KL test checks
//! the comparison machinery against facts that hold whatever the model: a run compared with
//! itself has zero divergence and identical top-1, and a coarser cache diverges more.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assets() -> Option<(PathBuf, PathBuf)> {
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let text = root().join("fixtures/botchan.txt");
    if model.exists() && text.exists() {
        return Some((model, text));
    }
    let why = "models/SmolLM2-135M-Instruct.Q4_1.gguf or fixtures/botchan.txt is missing";
    if std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}; run scripts/fetch-models.sh all");
    None
}

fn perplexity(model: &Path, text: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_turbine"))
        .arg("perplexity")
        .arg("-m")
        .arg(model)
        .arg("-f")
        .arg(text)
        // One thread: the two tests of this file run at once, and spinning pool workers on
        // an oversubscribed 2-core machine slow everything down.
        .args(["-c", "512", "-t", "1"])
        .args(extra)
        .output()
        .expect("run turbine perplexity");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "perplexity {extra:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after `label` in the output, e.g. `value(out, "PPL = ")`.
fn value(out: &str, label: &str) -> f64 {
    let at = out
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    let rest = &out[at + label.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("bad number after {label:?} in:\n{out}"))
}

#[test]
fn smollm2_botchan_perplexity_matches_llama_cpp_within_one_percent() {
    let Some((model, text)) = assets() else {
        return;
    };
    let out = perplexity(&model, &text, &["--chunks", "40"]);
    let ppl = value(&out, "Final estimate: PPL = ");
    let llama_cpp = 27.54;
    assert!(
        (ppl / llama_cpp - 1.0).abs() < 0.01,
        "PPL {ppl} vs llama.cpp {llama_cpp}\n{out}"
    );
}

#[test]
fn kl_divergence_is_zero_against_itself_and_grows_with_coarser_cache() {
    let Some((model, text)) = assets() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("turbine-kl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("f16.logp");
    let base_s = base.to_str().unwrap();
    perplexity(&model, &text, &["--chunks", "2", "--save-logits", base_s]);

    let same = perplexity(&model, &text, &["--chunks", "2", "--kl-base", base_s]);
    assert!(value(&same, "mean KLD           = ") < 1e-4, "{same}");
    // The base is stored as f16 log-probs, so near-ties may round either way.
    assert!(value(&same, "same top-1         = ") > 99.0, "{same}");

    let q8 = perplexity(
        &model,
        &text,
        &[
            "--chunks",
            "2",
            "-ctk",
            "q8_0",
            "-ctv",
            "q8_0",
            "--kl-base",
            base_s,
        ],
    );
    let t2 = perplexity(
        &model,
        &text,
        &[
            "--chunks",
            "2",
            "-ctk",
            "turbo2",
            "-ctv",
            "turbo2",
            "--kl-base",
            base_s,
        ],
    );
    let (kl_q8, kl_t2) = (
        value(&q8, "mean KLD           = "),
        value(&t2, "mean KLD           = "),
    );
    assert!(kl_q8 > 0.0 && kl_q8 < 0.01, "q8_0 KLD {kl_q8}\n{q8}");
    assert!(
        kl_t2 > kl_q8,
        "turbo2 KLD {kl_t2} should exceed q8_0's {kl_q8}"
    );
    assert!(value(&q8, "same top-1         = ") > 90.0, "{q8}");
    let _ = std::fs::remove_dir_all(&dir);
}
