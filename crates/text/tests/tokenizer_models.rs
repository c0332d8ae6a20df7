//! Tokenizers of the real models against llama.cpp itself: `data/tokenizer_llamacpp.json`
//! holds what llama.cpp's server (the prebuilt `xllamacpp` package) answered on /tokenize and
//! /detokenize for 63 strings per model; `tokenizer_llamacpp_golden.py` regenerates it.
//! Plus the SmolLM2 facts from ASSETS.md, streaming decode, and Gemma 3 round trips.

use std::path::{Path, PathBuf};

use gguf::GgufFile;
use text::tokenizer::{StreamDecoder, Tokenizer, TokenizerKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_assets() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// The model's tokenizer, or `None` (after saying so) when the model is not fetched.
fn load(model: &str) -> Option<Tokenizer> {
    let path = root().join("models").join(model);
    if !path.exists() {
        assert!(
            !require_assets(),
            "model missing: {} (run scripts/fetch-models.sh)",
            path.display()
        );
        eprintln!("skipped: {model} missing, run scripts/fetch-models.sh");
        return None;
    }
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{model}: {e}"));
    Some(Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{model}: {e}")))
}

fn golden() -> serde_json::Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer_llamacpp.json"),
    )
    .expect("read golden");
    serde_json::from_str(&text).expect("parse golden")
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn check_model(model: &str) {
    let Some(tok) = load(model) else { return };
    let g = golden();
    let strings: Vec<&str> = g["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let cases = g["models"][model].as_array().unwrap();
    assert_eq!(strings.len(), cases.len());
    let mut failures = Vec::new();
    for (s, case) in strings.iter().zip(cases) {
        let plain = tok.encode(s, false, false);
        if plain != ids(&case["plain"]) {
            failures.push(format!(
                "plain {s:?}\n  want {:?}\n  got  {plain:?}",
                ids(&case["plain"])
            ));
        }
        let special = tok.encode(s, true, true);
        if special != ids(&case["special"]) {
            failures.push(format!(
                "special {s:?}\n  want {:?}\n  got  {special:?}",
                ids(&case["special"])
            ));
        }
        // llama.cpp's /detokenize joins the pieces, special tokens rendered.
        let want = case["detokenized"].as_str().unwrap();
        let mut joined = Vec::new();
        for &id in &ids(&case["plain"]) {
            joined.extend_from_slice(tok.token_to_piece(id, true));
        }
        if String::from_utf8_lossy(&joined) != want {
            failures.push(format!(
                "detokenize {s:?}: got {:?}",
                String::from_utf8_lossy(&joined)
            ));
        }
    }
    eprintln!(
        "{model}: {} strings x 3 checks, {} failures",
        strings.len(),
        failures.len()
    );
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{model}: {} mismatches with llama.cpp",
        failures.len()
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model("SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn qwen25_coder_matches_llama_cpp() {
    check_model("qwen2.5-coder-0.5b-instruct.gguf");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model("gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn smollm2_facts() {
    let Some(tok) = load("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    assert_eq!(tok.kind(), TokenizerKind::Bpe);
    assert_eq!(tok.pre_tokenizer_name(), "smollm");
    assert_eq!(tok.n_vocab(), 49152);
    let ids = tok.encode("The capital of France is 12345 héllo 🦙", false, false);
    assert_eq!(
        ids,
        [504, 3575, 282, 4649, 314, 216, 33, 34, 35, 36, 37, 294, 2756, 31394, 15107, 116, 243]
    );
    assert_eq!(
        tok.encode("The capital of France is", true, false),
        [504, 3575, 282, 4649, 314]
    );
    assert!(!tok.add_bos());
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert_eq!(tok.token_text(1), Some("<|im_start|>"));
    assert!(tok.is_eog(2));
    assert!(tok.is_eog(0), "<|endoftext|> ends generation");
    assert!(!tok.is_eog(1));
    assert!(!tok.is_eog(504));
    // Control tokens are parsed only on request.
    let chat = "<|im_start|>user\nHi<|im_end|>";
    assert_eq!(tok.encode(chat, false, true)[0], 1);
    assert!(!tok.encode(chat, false, false).contains(&1));
    assert_eq!(tok.decode(&tok.encode(chat, false, true), true), chat);
    assert_eq!(
        tok.decode(&tok.encode(chat, false, true), false),
        "user\nHi"
    );
    assert_eq!(tok.token_to_piece(7042, false), b" Paris");
    assert!(tok.token_to_piece(u32::MAX, true).is_empty());
    assert!(tok.warnings().is_empty(), "{:?}", tok.warnings());
}

/// Streams every golden string's tokens one at a time: the pieces never come out as invalid
/// UTF-8, a character split across tokens is held back until complete, and the whole equals
/// the text.
#[test]
fn streaming_decode_never_splits_characters() {
    let g = golden();
    let strings: Vec<&str> = g["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut split_chars_seen = 0;
    for model in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ] {
        let Some(tok) = load(model) else { continue };
        for s in &strings {
            let mut d = StreamDecoder::new();
            let mut text = String::new();
            for id in tok.encode(s, false, false) {
                let chunk = tok.decode_stream(&mut d, id, true);
                if !d.pending().is_empty() {
                    split_chars_seen += 1;
                }
                text.push_str(&chunk);
            }
            text.push_str(&d.finish());
            // SentencePiece writes no leading space here (add_space_prefix is off for Gemma 3).
            assert_eq!(&text, s, "{model}");
        }
    }
    if load("SmolLM2-135M-Instruct.Q4_1.gguf").is_some() {
        // The llama emoji is three tokens in SmolLM2: [15107, 116, 243].
        assert!(split_chars_seen > 0);
        let tok = load("SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
        let mut d = StreamDecoder::new();
        assert_eq!(tok.decode_stream(&mut d, 31394, false), "llo");
        // " " plus the first bytes of the emoji: the space comes out, the bytes wait.
        assert_eq!(tok.decode_stream(&mut d, 15107, false), " ");
        assert!(!d.pending().is_empty());
        assert_eq!(tok.decode_stream(&mut d, 116, false), "");
        assert_eq!(tok.decode_stream(&mut d, 243, false), "🦙");
        assert!(d.pending().is_empty());
    }
}

#[test]
fn gemma3_loads_and_round_trips() {
    let Some(tok) = load("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    assert_eq!(tok.kind(), TokenizerKind::Spm);
    assert_eq!(tok.n_vocab(), 262144);
    assert!(tok.add_bos());
    assert!(!tok.add_space_prefix());
    assert_eq!(tok.bos(), Some(2));
    let eot = tok.token_id("<end_of_turn>").unwrap();
    assert!(tok.is_eog(eot));
    assert!(tok.is_eog(1));
    let g = golden();
    for s in g["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
    {
        let ids = tok.encode(s, true, false);
        assert_eq!(ids.first().copied(), Some(2));
        assert_eq!(tok.decode(&ids[1..], false), s);
        assert_eq!(
            String::from_utf8_lossy(&tok.detokenize(&ids, true, false)),
            s
        );
    }
}
