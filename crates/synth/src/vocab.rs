//! The tokenizer written into a synthetic model: either a small self-contained GPT-2-style
//! byte-level BPE vocabulary sized to the shape, or the `tokenizer.*` keys of a vocab GGUF
//! (e.g. llama.cpp's `ggml-vocab-*.gguf`), padded to the shape's vocabulary size.

use std::path::Path;

use gguf::{Array, GgufFile, Metadata, Value};

use crate::error::SynthError;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_UNUSED: i32 = 5;

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// ChatML, the Qwen family's chat format, with the special tokens above.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}\
{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// GPT-2's reversible byte-to-character map: printable Latin-1 bytes stand for themselves, the
/// others are moved to U+0100 and up, so every byte is one visible character.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return char::from(b);
    }
    let k = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + k).unwrap_or('?')
}

/// The smallest vocabulary [`default_vocab`] can build.
pub const MIN_VOCAB: usize = 256 + SPECIALS.len() + 1;

/// Byte-level BPE vocabulary of exactly `n_vocab` tokens: the 256 byte tokens, the three
/// ChatML specials, then words built from letters by merges (two letters, then three, ...),
/// so text tokenizes into a realistic mix of short words. `pre` names the pre-tokenizer.
pub fn default_vocab(md: &mut Metadata, n_vocab: usize, pre: &str) -> Result<(), SynthError> {
    if n_vocab < MIN_VOCAB {
        return Err(SynthError::Input(format!(
            "vocabulary of {n_vocab} tokens is too small for the built-in tokenizer (at least {MIN_VOCAB})"
        )));
    }
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![TOKEN_NORMAL; 256];
    for s in SPECIALS {
        tokens.push(s.to_string());
        types.push(TOKEN_CONTROL);
    }
    let lower: Vec<String> = (b'a'..=b'z').map(|c| char::from(c).to_string()).collect();
    // Word starts: a space (Ġ) or any letter.
    let mut prev: Vec<String> = std::iter::once(byte_char(b' ').to_string())
        .chain(
            (b'a'..=b'z')
                .chain(b'A'..=b'Z')
                .map(|c| char::from(c).to_string()),
        )
        .collect();
    let mut merges = Vec::new();
    'grow: loop {
        let mut next = Vec::with_capacity(prev.len() * lower.len());
        for left in &prev {
            for right in &lower {
                if tokens.len() == n_vocab {
                    break 'grow;
                }
                let word = format!("{left}{right}");
                merges.push(format!("{left} {right}"));
                tokens.push(word.clone());
                types.push(TOKEN_NORMAL);
                next.push(word);
            }
        }
        prev = next;
    }
    md.insert("tokenizer.ggml.model", "gpt2");
    md.insert("tokenizer.ggml.pre", pre);
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.token_type", Array::I32(types));
    md.insert("tokenizer.ggml.merges", Array::String(merges));
    md.insert("tokenizer.ggml.bos_token_id", 256u32);
    md.insert("tokenizer.ggml.eos_token_id", 258u32);
    md.insert("tokenizer.ggml.padding_token_id", 256u32);
    md.insert("tokenizer.ggml.add_bos_token", false);
    md.insert("tokenizer.chat_template", CHATML);
    Ok(())
}

/// Copies every `tokenizer.*` key of the GGUF at `path` into `md`, padding the per-token
/// arrays with `[PADi]` tokens (type unused) up to `n_vocab`. Returns the vocabulary size
/// written: `n_vocab`, or the file's own token count if that is larger.
pub fn copy_vocab(md: &mut Metadata, path: &Path, n_vocab: usize) -> Result<usize, SynthError> {
    let bad = |msg: String| SynthError::Vocab {
        path: path.to_path_buf(),
        msg,
    };
    let file = GgufFile::open_header_only(path).map_err(|e| bad(e.to_string()))?;
    let src = file.metadata();
    let n_tokens = src
        .get_str_array("tokenizer.ggml.tokens")
        .ok_or_else(|| bad("no tokenizer.ggml.tokens string array".into()))?
        .len();
    let n = n_vocab.max(n_tokens);
    for (key, value) in src.iter() {
        if !key.starts_with("tokenizer.") {
            continue;
        }
        let value = match (key, value) {
            ("tokenizer.ggml.tokens", Value::Array(Array::String(v))) => {
                let mut v = v.clone();
                v.extend((v.len()..n).map(|i| format!("[PAD{i}]")));
                Value::Array(Array::String(v))
            }
            ("tokenizer.ggml.token_type", Value::Array(Array::I32(v))) => {
                let mut v = v.clone();
                v.resize(n, TOKEN_UNUSED);
                Value::Array(Array::I32(v))
            }
            ("tokenizer.ggml.scores", Value::Array(Array::F32(v))) => {
                let mut v = v.clone();
                v.resize(n, -1000.0);
                Value::Array(Array::F32(v))
            }
            (k, Value::Array(a))
                if a.len() == n_tokens && k != "tokenizer.ggml.merges" && n > n_tokens =>
            {
                return Err(bad(format!(
                    "per-token array {k} of type {} cannot be padded",
                    a.element_type()
                )));
            }
            _ => value.clone(),
        };
        md.insert(key, value);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_gpt2s() {
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(b' '), 'Ġ');
        assert_eq!(byte_char(b'\n'), 'Ċ');
        assert_eq!(byte_char(0), 'Ā');
        assert_eq!(byte_char(0xAD), 'Ń');
        let all: std::collections::HashSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn default_vocab_has_exact_size_unique_tokens_and_one_merge_per_word() {
        for n in [MIN_VOCAB, 512, 5000] {
            let mut md = Metadata::new();
            default_vocab(&mut md, n, "qwen2").unwrap();
            let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
            assert_eq!(tokens.len(), n);
            let set: std::collections::HashSet<&String> = tokens.iter().collect();
            assert_eq!(set.len(), n);
            let merges = md.get_str_array("tokenizer.ggml.merges").unwrap();
            assert_eq!(merges.len(), n - 259);
            assert_eq!(
                md.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
                n
            );
        }
        assert!(default_vocab(&mut Metadata::new(), 100, "default").is_err());
    }
}
