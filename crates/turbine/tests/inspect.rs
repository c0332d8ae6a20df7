//! `turbine inspect` on the real model (expected values from the Python `gguf` package) and on
//! damaged copies (one-line error with the byte offset, exit status 1).

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_assets() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) {
    if require_assets() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}; run scripts/fetch-models.sh");
}

fn model() -> Option<PathBuf> {
    let p = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.exists() {
        Some(p)
    } else {
        skip("models/SmolLM2-135M-Instruct.Q4_1.gguf is missing");
        None
    }
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("TURBINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import gguf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(p)
    } else {
        skip("no Python with the gguf package (.venv/bin/python or TURBINE_PYTHON)");
        None
    }
}

fn inspect(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_turbine"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("run turbine")
}

/// What the Python `gguf` package reads from the file: per-type totals, tensors, keys.
/// Computed once (reading the model in Python takes seconds).
fn python_view(py: &PathBuf, path: &PathBuf) -> serde_json::Value {
    static VIEW: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    VIEW.get_or_init(|| python_view_uncached(py, path)).clone()
}

fn python_view_uncached(py: &PathBuf, path: &PathBuf) -> serde_json::Value {
    let script = r#"
import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
by_type = {}
for t in r.tensors:
    e = by_type.setdefault(t.tensor_type.name.lower(), [0, 0, 0])
    e[0] += 1; e[1] += int(t.n_elements); e[2] += int(t.n_bytes)
print(json.dumps({
    "arch": r.fields["general.architecture"].contents(),
    "by_type": by_type,
    "params": sum(int(t.n_elements) for t in r.tensors),
    "tensors": [[t.name, t.tensor_type.name.lower(), [int(d) for d in t.shape], int(t.data_offset), int(t.n_bytes)] for t in r.tensors],
    "keys": [k for k in r.fields if not k.startswith("GGUF.")],
}))
"#;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn grouped(n: u64) -> String {
    let d = n.to_string();
    d.chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let comma = i > 0 && (d.len() - i).is_multiple_of(3);
            comma.then_some(',').into_iter().chain([c])
        })
        .collect()
}

#[test]
fn json_report_matches_python_gguf() {
    let (Some(path), Some(py)) = (model(), python()) else {
        return;
    };
    let want = python_view(&py, &path);
    let out = inspect(&[path.as_os_str(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(got["architecture"], "llama");
    assert_eq!(want["arch"], "llama");
    assert_eq!(got["n_tensors"], 272);
    assert_eq!(got["n_parameters"], 134_515_008u64);
    assert_eq!(got["n_parameters"], want["params"]);
    assert_eq!(got["version"], 3);
    assert_eq!(got["file_size"], std::fs::metadata(&path).unwrap().len());

    let by_type = want["by_type"].as_object().unwrap();
    let mut types: Vec<&String> = by_type.keys().collect();
    types.sort();
    assert_eq!(types, ["f32", "q4_1", "q8_0"]);
    for (ty, w) in by_type {
        let g = &got["bytes_per_type"][ty];
        assert_eq!(g["tensors"], w[0], "{ty}");
        assert_eq!(g["parameters"], w[1], "{ty}");
        assert_eq!(g["bytes"], w[2], "{ty}");
    }

    let tensors = got["tensors"].as_array().unwrap();
    for (g, w) in tensors.iter().zip(want["tensors"].as_array().unwrap()) {
        assert_eq!(g["name"], w[0]);
        assert_eq!(g["type"], w[1]);
        assert_eq!(g["shape"], w[2]);
        assert_eq!(g["file_offset"], w[3]);
        assert_eq!(g["bytes"], w[4]);
    }
    let keys: Vec<&serde_json::Value> = got["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["key"])
        .collect();
    let want_keys: Vec<&serde_json::Value> = want["keys"].as_array().unwrap().iter().collect();
    assert_eq!(keys, want_keys);
    let tokens = got["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(tokens["element_type"], "STRING");
    assert_eq!(tokens["value"].as_array().unwrap().len(), 49152);
}

#[test]
fn text_report_shows_totals_and_summarized_arrays() {
    let (Some(path), Some(py)) = (model(), python()) else {
        return;
    };
    let want = python_view(&py, &path);
    let out = inspect(&[path.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("arch:       llama\n"), "{text}");
    assert!(text.contains("tensors:    272\n"));
    assert!(text.contains("parameters: 134,515,008\n"));
    assert!(
        text.contains(r#"[49152 x string] ["<|endoftext|>", "<|im_start|>", "<|im_end|>", ...]"#)
    );
    for (ty, w) in want["by_type"].as_object().unwrap() {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(ty))
            .unwrap_or_else(|| panic!("no totals line for {ty}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], w[0].to_string(), "{line}");
        assert_eq!(cols[2], grouped(w[1].as_u64().unwrap()), "{line}");
        assert_eq!(cols[3], grouped(w[2].as_u64().unwrap()), "{line}");
    }
    // One table row per tensor.
    let rows = text.lines().filter(|l| l.contains(".weight ")).count();
    assert_eq!(rows, 272);
}

fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err} lacks {n}");
    }
}

#[test]
fn damaged_files_fail_with_one_line() {
    let dir = std::env::temp_dir().join(format!("turbine-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let not_gguf = dir.join("not.gguf");
    std::fs::write(&not_gguf, b"hello world, not a model").unwrap();
    let out = inspect(&[not_gguf.as_os_str()]);
    assert_one_line_error(&out, &["not.gguf", "at byte 0", "not a GGUF file"]);

    let Some(path) = model() else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    // Cut inside the metadata (the vocabulary) and inside the tensor data.
    let cut_header = dir.join("cut-header.gguf");
    std::fs::write(&cut_header, &bytes[..500_000]).unwrap();
    let out = inspect(&[cut_header.as_os_str()]);
    assert_one_line_error(
        &out,
        &["cut-header.gguf", "at byte", "truncated", "tokenizer.ggml"],
    );

    let cut_data = dir.join("cut-data.gguf");
    std::fs::write(&cut_data, &bytes[..bytes.len() / 2]).unwrap();
    let out = inspect(&[cut_data.as_os_str(), "--json".as_ref()]);
    assert_one_line_error(&out, &["cut-data.gguf", "at byte", "lies outside the file"]);

    let _ = std::fs::remove_dir_all(&dir);
}
