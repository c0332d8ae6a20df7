//! llama.cpp's tokenizer test vectors: every `ggml-vocab-*.gguf` that has `.inp`/`.out` files
//! (strings, and the ids Hugging Face `tokenizers` gave for them without special tokens) must
//! tokenize exactly; ids → text → ids must round-trip where the tokenizer is lossless.

use std::path::{Path, PathBuf};

use gguf::GgufFile;
use text::tokenizer::{Tokenizer, TokenizerKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_assets() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// The vocab directory, or `None` (after saying so) when the fixtures are not fetched.
fn vocab_dir() -> Option<PathBuf> {
    let dir = root().join("fixtures/llama.cpp/models");
    if dir.join("ggml-vocab-llama-bpe.gguf").exists() {
        return Some(dir);
    }
    assert!(
        !require_assets(),
        "fixtures missing: {} (run scripts/fetch-models.sh)",
        dir.display()
    );
    eprintln!("skipped: fixtures missing, run scripts/fetch-models.sh");
    None
}

/// (input, expected ids) pairs, split the way llama.cpp's test-tokenizer-0 splits them.
fn read_cases(gguf: &Path) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(format!("{}.inp", gguf.display())).expect("read .inp");
    let out = std::fs::read_to_string(format!("{}.out", gguf.display())).expect("read .out");
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            Some(n) => {
                inputs.push(inp[pos..pos + n].to_owned());
                pos += n + sep.len();
            }
            None => {
                inputs.push(inp[pos..].to_owned());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("id"))
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{}: .inp and .out disagree in count",
        gguf.display()
    );
    inputs.into_iter().zip(outputs).collect()
}

fn vocab_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read vocab dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ggml-vocab-")
                && name.ends_with(".gguf")
                && Path::new(&format!("{}.inp", p.display())).exists()
                && Path::new(&format!("{}.out", p.display())).exists()
        })
        .collect();
    files.sort();
    files
}

fn show(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

#[test]
fn every_vocab_matches_llama_cpp_test_vectors() {
    let Some(dir) = vocab_dir() else { return };
    let files = vocab_files(&dir);
    assert!(
        files.len() >= 15,
        "expected the 15 vocab files with test vectors, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = GgufFile::open(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tok = Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases = read_cases(path);
        let mut pass = 0;
        let mut round_trips = 0;
        for (input, expected) in &cases {
            let got = tok.encode(input, false, false);
            if got == *expected {
                pass += 1;
            } else {
                failures.push(format!(
                    "{name}: {input:?}\n   expected {}\n   got      {}",
                    show(expected),
                    show(&got)
                ));
            }
            let text = tok.decode(&got, true);
            if tok.encode(&text, false, false) == got {
                round_trips += 1;
            }
        }
        report.push(format!(
            "{name:32} {:?} pre={:16} {pass}/{} match, {round_trips}/{} round-trip",
            tok.kind(),
            tok.pre_tokenizer_name(),
            cases.len(),
            cases.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
    for f in failures.iter().take(40) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} strings tokenized differently",
        failures.len()
    );
}

/// Ids → text → ids for every test string: exact for the byte-level BPE vocabularies. (SPM
/// adds a leading space and WordPiece lower-cases and drops accents, so those are checked on
/// their own terms in `tokenizer_models.rs`.)
#[test]
fn byte_level_vocabs_round_trip() {
    let Some(dir) = vocab_dir() else { return };
    for path in vocab_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = GgufFile::open(&path).unwrap();
        let tok = Tokenizer::from_gguf(&file).unwrap();
        if tok.kind() != TokenizerKind::Bpe || tok.model_name() != "gpt2" {
            continue;
        }
        for (input, _) in read_cases(&path) {
            let ids = tok.encode(&input, false, false);
            // Raw bytes of the pieces, without the clean-up passes: must give the input back.
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&id| tok.token_to_piece(id, true).to_vec())
                .collect();
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                input,
                "{name}: pieces do not spell the input"
            );
            let again = tok.encode(&String::from_utf8_lossy(&bytes), false, false);
            assert_eq!(again, ids, "{name}: {input:?} does not round-trip");
        }
    }
}
