//! `turbine tokenize` on the default model: the ids llama.cpp gives (ASSETS.md), the piece
//! listing, and one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have_model() -> bool {
    if root()
        .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        .exists()
    {
        return true;
    }
    assert!(
        std::env::var("TURBINE_REQUIRE_ASSETS").ok().as_deref() != Some("1"),
        "models/SmolLM2-135M-Instruct.Q4_1.gguf is missing"
    );
    eprintln!(
        "skipped: models/SmolLM2-135M-Instruct.Q4_1.gguf is missing; run scripts/fetch-models.sh"
    );
    false
}

fn turbine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turbine"))
        .current_dir(root())
        .arg("tokenize")
        .args(args)
        .output()
        .expect("run turbine")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("utf-8 output")
}

#[test]
fn prints_the_ids_llama_cpp_gives() {
    if !have_model() {
        return;
    }
    let o = turbine(&["The capital of France is 12345 héllo 🦙"]);
    assert_eq!(
        stdout(&o),
        "[504, 3575, 282, 4649, 314, 216, 33, 34, 35, 36, 37, 294, 2756, 31394, 15107, 116, 243]\n"
    );
    // Same with an explicit -m and -p.
    let o = turbine(&[
        "-m",
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "-p",
        "The capital",
    ]);
    assert_eq!(stdout(&o), "[504, 3575]\n");
}

#[test]
fn pieces_and_special_tokens() {
    if !have_model() {
        return;
    }
    // llama.cpp's /tokenize (xllamacpp) gives [1, 4093, 198, 10813, 116, 243] here, the
    // emoji's four bytes split over three tokens.
    let o = turbine(&["--pieces", "--show-count", "<|im_start|>user\n🦙"]);
    assert_eq!(
        stdout(&o),
        "     1 -> '<|im_start|>'\n  4093 -> 'user'\n   198 -> '\\n'\n 10813 -> '\\xf0\\x9f'\n   116 -> '\\xa6'\n   243 -> '\\x99'\nTotal number of tokens: 6\n"
    );
    // Without parsing, the control token's text is tokenized as text.
    let o = turbine(&["--no-parse-special", "<|im_start|>"]);
    assert_ne!(stdout(&o), "[1]\n");
}

#[test]
fn errors_are_one_line() {
    let o = turbine(&["-m", "no/such/file.gguf", "x"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no/such/file.gguf"), "{err}");
    let o = turbine(&[]);
    assert!(!o.status.success());
}
