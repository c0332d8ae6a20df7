//! Tokenizers from hand-made metadata: hostile or incomplete metadata gives a one-line error
//! naming the key, never a panic; and small synthetic vocabularies exercise the rules directly.

use gguf::{Array, Metadata, Value};
use text::tokenizer::{Tokenizer, TokenizerError, TokenizerKind};

/// A tiny byte-level BPE vocabulary: all 256 byte characters, plus "ab", "abc" and specials.
fn bpe_metadata(pre: &str) -> Metadata {
    let mut tokens: Vec<String> = Vec::new();
    // Bytes in their byte-level spelling: printable ASCII stands for itself, ' ' is 'Ġ', ...
    for b in 0..=255u8 {
        let c = match b {
            0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => char::from(b),
            _ => {
                let k = (0..b)
                    .filter(|&x| !matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF))
                    .count();
                char::from_u32(0x100 + k as u32).unwrap()
            }
        };
        tokens.push(c.to_string());
    }
    tokens.extend(["ab", "abc", "Ġa", "<|end|>", "<special>"].map(String::from));
    let n = tokens.len();
    let mut types = vec![1i32; n];
    types[n - 2] = 3; // control
    types[n - 1] = 4; // user-defined
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "gpt2");
    md.insert("tokenizer.ggml.pre", pre);
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.token_type", Array::I32(types));
    md.insert(
        "tokenizer.ggml.merges",
        Array::String(vec!["a b".into(), "ab c".into(), "Ġ a".into()]),
    );
    md.insert("tokenizer.ggml.eos_token_id", (n - 2) as u32);
    md
}

fn err(md: &Metadata) -> TokenizerError {
    match Tokenizer::from_metadata(md) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn synthetic_bpe_works() {
    let tok = Tokenizer::from_metadata(&bpe_metadata("gpt-2")).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Bpe);
    let abc = tok.token_id("abc").unwrap();
    let a = tok.token_id("Ġa").unwrap();
    assert_eq!(tok.encode("abc a", false, false), [abc, a]);
    // Control tokens only with parse_special; user-defined always.
    let end = tok.token_id("<|end|>").unwrap();
    let sp = tok.token_id("<special>").unwrap();
    assert!(tok.encode("<|end|>", false, true) == [end]);
    assert!(tok.encode("<|end|>", false, false).len() > 1);
    assert_eq!(tok.encode("x<special>y", false, false)[1], sp);
    assert!(tok.is_eog(end));
    assert_eq!(
        tok.decode(&tok.encode("ab\u{0}ç é", false, false), false),
        "ab\u{0}ç é"
    );
}

#[test]
fn unknown_names_are_errors_naming_them() {
    let e = err(&bpe_metadata("no-such-pre"));
    assert_eq!(e, TokenizerError::UnknownPreTokenizer("no-such-pre".into()));
    assert!(e.to_string().contains("no-such-pre") && e.to_string().contains("tokenizer.ggml.pre"));

    let mut md = bpe_metadata("gpt-2");
    md.insert("tokenizer.ggml.model", "wordsalad");
    let e = err(&md);
    assert!(
        e.to_string().contains("wordsalad") && e.to_string().contains("tokenizer.ggml.model"),
        "{e}"
    );

    md.insert("tokenizer.ggml.model", "t5");
    assert_eq!(err(&md), TokenizerError::UnsupportedModel("t5".into()));
}

#[test]
fn missing_pre_falls_back_to_default_with_a_warning() {
    let mut md = bpe_metadata("gpt-2");
    md.remove("tokenizer.ggml.pre");
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.pre_tokenizer_name(), "default");
    assert!(tok
        .warnings()
        .iter()
        .any(|w| w.contains("tokenizer.ggml.pre")));
}

#[test]
fn missing_keys_are_errors() {
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
    ] {
        let mut md = bpe_metadata("gpt-2");
        md.remove(key);
        let e = err(&md);
        assert!(e.to_string().contains(key), "{key}: {e}");
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn wrong_types_are_errors() {
    let cases: Vec<(&str, Value)> = vec![
        ("tokenizer.ggml.model", Value::U32(7)),
        ("tokenizer.ggml.pre", Value::Bool(true)),
        ("tokenizer.ggml.tokens", Value::String("abc".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(Array::I32(vec![1, 2])),
        ),
        ("tokenizer.ggml.merges", Value::Array(Array::F32(vec![1.0]))),
        (
            "tokenizer.ggml.scores",
            Value::Array(Array::String(vec!["x".into()])),
        ),
        ("tokenizer.ggml.scores", Value::F32(1.0)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(Array::F32(vec![1.0])),
        ),
        ("tokenizer.ggml.bos_token_id", Value::String("1".into())),
        ("tokenizer.ggml.eos_token_id", Value::F32(1.0)),
        ("tokenizer.ggml.add_bos_token", Value::U8(1)),
        ("tokenizer.ggml.add_eos_token", Value::String("true".into())),
        ("tokenizer.ggml.add_space_prefix", Value::I32(0)),
        (
            "tokenizer.ggml.normalizer.lowercase",
            Value::String("yes".into()),
        ),
        ("general.name", Value::U32(3)),
    ];
    for (key, value) in cases {
        let mut md = bpe_metadata("gpt-2");
        let shown = format!("{value:?}");
        md.insert(key, value);
        let e = err(&md);
        assert!(e.to_string().contains(key), "{key} = {shown}: {e}");
    }
}

#[test]
fn inconsistent_metadata_is_an_error() {
    // Arrays shorter than the token list.
    let mut md = bpe_metadata("gpt-2");
    md.insert("tokenizer.ggml.token_type", Array::I32(vec![1; 10]));
    assert!(err(&md).to_string().contains("tokenizer.ggml.token_type"));
    let mut md = bpe_metadata("gpt-2");
    md.insert("tokenizer.ggml.scores", Array::F32(vec![0.0; 3]));
    assert!(err(&md).to_string().contains("tokenizer.ggml.scores"));
    // An empty vocabulary.
    let mut md = bpe_metadata("gpt-2");
    md.insert("tokenizer.ggml.tokens", Array::String(vec![]));
    assert!(err(&md).to_string().contains("tokenizer.ggml.tokens"));
    // BOS requested but there is none (the GPT-2 default, id 11, is a plain byte here, so make
    // the vocabulary smaller than that).
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "gpt2");
    md.insert("tokenizer.ggml.pre", "gpt-2");
    md.insert(
        "tokenizer.ggml.tokens",
        Array::String(vec!["a".into(), "b".into()]),
    );
    md.insert("tokenizer.ggml.merges", Array::String(vec![]));
    md.insert("tokenizer.ggml.add_bos_token", true);
    assert!(err(&md).to_string().contains("add_bos_token"));
}

#[test]
fn out_of_range_ids_are_ignored_with_a_warning() {
    let mut md = bpe_metadata("gpt-2");
    md.insert("tokenizer.ggml.bos_token_id", 1_000_000u32);
    md.insert("tokenizer.ggml.eot_token_id", -5i32);
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.bos(), Some(11), "falls back to the GPT-2 default");
    assert_eq!(tok.warnings().len(), 2, "{:?}", tok.warnings());
}

#[test]
fn odd_merges_and_tokens_do_not_panic() {
    let mut md = bpe_metadata("llama-bpe");
    md.insert(
        "tokenizer.ggml.merges",
        Array::String(vec![
            "".into(),
            " ".into(),
            "nospace".into(),
            "a b".into(),
            "a b".into(),
            "x y".into(),  // parts that are not tokens
            "xy z".into(), // a result that is not a token
            "ab ".into(),  // empty right part
            "é ü".into(),
        ]),
    );
    let tok = Tokenizer::from_metadata(&md).unwrap();
    for s in ["xyz", "ab", "ab ", "é ü", "", " ", "\u{10FFFF}", "a\u{0}b"] {
        let ids = tok.encode(s, true, true);
        assert!(
            ids.iter().all(|&id| (id as usize) < tok.n_vocab()),
            "{s:?}: {ids:?}"
        );
    }
    // "xyz" merges to a non-token "xyz": its bytes are emitted one by one instead.
    let x = tok.token_id("x").unwrap();
    assert_eq!(tok.encode("xyz", false, false), [x, x + 1, x + 2]);
}

#[test]
fn spm_and_wpm_from_synthetic_metadata() {
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "llama");
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(["▁", "▁h", "▁hi", "h", "i"].map(String::from));
    let n = tokens.len();
    let mut types = vec![6i32; n];
    (types[0], types[1], types[2]) = (2, 3, 3);
    for t in &mut types[n - 5..] {
        *t = 1;
    }
    let scores: Vec<f32> = (0..n)
        .map(|i| if i >= n - 5 { -(i as f32) } else { 0.0 })
        .collect();
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.token_type", Array::I32(types));
    md.insert("tokenizer.ggml.scores", Array::F32(scores));
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Spm);
    let hi = tok.token_id("▁hi").unwrap();
    assert_eq!(tok.encode("hi", true, false), [1, hi]);
    // "é" is not a token: byte fallback.
    assert_eq!(tok.encode("é", false, false)[1..], [3 + 0xC3, 3 + 0xA9]);
    assert_eq!(tok.decode(&tok.encode("hi é", false, false), false), "hi é");

    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "bert");
    let tokens: Vec<String> = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "▁hello", "▁world", "▁!", "▁wor", "ld",
    ]
    .map(String::from)
    .to_vec();
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.unknown_token_id", 1u32);
    md.insert("tokenizer.ggml.bos_token_id", 2u32);
    md.insert("tokenizer.ggml.seperator_token_id", 3u32);
    let tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Wpm);
    assert_eq!(tok.encode("Hello WÖRLD!", true, false), [2, 4, 5, 6, 3]);
    assert_eq!(tok.encode("hello xyz", false, false), [4, 1]);
}

/// Arbitrary text through every synthetic model: no panics, ids in range.
#[test]
fn arbitrary_text_never_panics() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pres = [
        "gpt-2",
        "llama-bpe",
        "qwen2",
        "qwen35",
        "deepseek-llm",
        "deepseek-coder",
        "falcon",
        "starcoder",
        "default",
    ];
    let toks: Vec<Tokenizer> = pres
        .iter()
        .map(|p| Tokenizer::from_metadata(&bpe_metadata(p)).unwrap())
        .collect();
    let alphabet: Vec<char> =
        " \t\n\r'sSab0129.,!?<>|$`\u{a0}\u{3000}éü\u{301}中한🦙\u{0}\u{7f}\u{85}\u{200d}\u{10ffff}"
            .chars()
            .collect();
    for _ in 0..2000 {
        let len = (next() % 24) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for tok in &toks {
            let ids = tok.encode(&s, true, true);
            assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()));
            // Every byte-level vocabulary here has all 256 bytes: pieces spell the input.
            let bytes: Vec<u8> = tok
                .encode(&s, false, false)
                .iter()
                .flat_map(|&i| tok.token_to_piece(i, true).to_vec())
                .collect();
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                s,
                "{}",
                tok.pre_tokenizer_name()
            );
        }
    }
}

/// Engines share one tokenizer across threads.
#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<text::tokenizer::StreamDecoder>();
}
