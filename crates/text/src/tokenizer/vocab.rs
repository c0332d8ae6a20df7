//! The vocabulary: token texts, scores and attributes, read from `tokenizer.ggml.*`, and the
//! typed metadata accessors that turn a missing or mistyped key into a clear error.

use gguf::{Array, Metadata, Value};

use super::error::TokenizerError;
use super::fxhash::FxMap;

/// Token type as stored in `tokenizer.ggml.token_type` (the values llama.cpp's converter
/// writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    pub fn from_i64(v: i64) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Token attributes: the type as a bit, plus what loading adds (a control bit for
/// end-of-generation texts, an unused bit, strip rules around special tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenAttr(pub u16);

impl TokenAttr {
    pub const UNDEFINED: TokenAttr = TokenAttr(0);
    pub const UNKNOWN: TokenAttr = TokenAttr(1 << 0);
    pub const UNUSED: TokenAttr = TokenAttr(1 << 1);
    pub const NORMAL: TokenAttr = TokenAttr(1 << 2);
    pub const CONTROL: TokenAttr = TokenAttr(1 << 3);
    pub const USER_DEFINED: TokenAttr = TokenAttr(1 << 4);
    pub const BYTE: TokenAttr = TokenAttr(1 << 5);
    /// Whitespace before this special token is dropped when it is parsed out of text.
    pub const LSTRIP: TokenAttr = TokenAttr(1 << 7);
    /// Whitespace after this special token is dropped when it is parsed out of text.
    pub const RSTRIP: TokenAttr = TokenAttr(1 << 8);

    pub fn from_type(t: TokenType) -> TokenAttr {
        match t {
            TokenType::Undefined => TokenAttr::UNDEFINED,
            TokenType::Normal => TokenAttr::NORMAL,
            TokenType::Unknown => TokenAttr::UNKNOWN,
            TokenType::Control => TokenAttr::CONTROL,
            TokenType::UserDefined => TokenAttr::USER_DEFINED,
            TokenType::Unused => TokenAttr::UNUSED,
            TokenType::Byte => TokenAttr::BYTE,
        }
    }

    /// True if any bit of `other` is set.
    #[inline]
    pub fn has(self, other: TokenAttr) -> bool {
        self.0 & other.0 != 0
    }

    #[inline]
    pub fn with(self, other: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 | other.0)
    }

    #[inline]
    pub fn without(self, other: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 & !other.0)
    }
}

impl std::ops::BitOr for TokenAttr {
    type Output = TokenAttr;
    fn bitor(self, rhs: TokenAttr) -> TokenAttr {
        self.with(rhs)
    }
}

pub struct Vocab {
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<TokenType>,
    pub attrs: Vec<TokenAttr>,
    /// Text → id. For a text that appears twice the later id wins, as in llama.cpp.
    pub ids: FxMap<String, u32>,
    /// Longest token text in bytes.
    pub max_token_len: usize,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    #[inline]
    pub fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    pub fn read(md: &Metadata) -> Result<(Vocab, Vec<String>), TokenizerError> {
        let mut warnings = Vec::new();
        let texts = str_array(md, KEY_TOKENS)?.ok_or(TokenizerError::MissingKey(KEY_TOKENS))?;
        let n = texts.len();
        if n == 0 {
            return Err(TokenizerError::Invalid(format!("`{KEY_TOKENS}` is empty")));
        }
        if n > u32::MAX as usize / 2 {
            return Err(TokenizerError::Invalid(format!(
                "`{KEY_TOKENS}` has {n} entries, too many"
            )));
        }
        let scores = match md.get(KEY_SCORES) {
            None => vec![0.0; n],
            Some(Value::Array(a)) => {
                let v = match a {
                    Array::F32(v) => v.clone(),
                    Array::I32(v) => v.iter().map(|&x| x as f32).collect(),
                    Array::F64(v) => v.iter().map(|&x| x as f32).collect(),
                    other => {
                        return Err(wrong_type(
                            KEY_SCORES,
                            "an array of FLOAT32 or INT32",
                            &array_desc(other),
                        ))
                    }
                };
                if v.len() < n {
                    return Err(TokenizerError::Invalid(format!(
                        "`{KEY_SCORES}` has {} entries for {n} tokens",
                        v.len()
                    )));
                }
                v
            }
            Some(other) => {
                return Err(wrong_type(
                    KEY_SCORES,
                    "an array of FLOAT32",
                    &value_desc(other),
                ))
            }
        };
        let types = match md.get(KEY_TOKEN_TYPE) {
            None => vec![TokenType::Normal; n],
            Some(Value::Array(a)) => {
                let v = a.to_i64_vec().ok_or_else(|| {
                    wrong_type(KEY_TOKEN_TYPE, "an array of INT32", &array_desc(a))
                })?;
                if v.len() < n {
                    return Err(TokenizerError::Invalid(format!(
                        "`{KEY_TOKEN_TYPE}` has {} entries for {n} tokens",
                        v.len()
                    )));
                }
                v.iter().take(n).map(|&t| TokenType::from_i64(t)).collect()
            }
            Some(other) => {
                return Err(wrong_type(
                    KEY_TOKEN_TYPE,
                    "an array of INT32",
                    &value_desc(other),
                ))
            }
        };
        let mut texts = texts.to_vec();
        let mut ids = FxMap::default();
        ids.reserve(n);
        let mut max_token_len = 0;
        for (i, t) in texts.iter_mut().enumerate() {
            if t.is_empty() {
                // An empty token could match anywhere; give it a name that no text contains
                // by accident, as llama.cpp does.
                warnings.push(format!("empty token text at id {i}"));
                *t = format!("[EMPTY_{i}]");
            }
            max_token_len = max_token_len.max(t.len());
            ids.insert(t.clone(), i as u32);
        }
        let attrs = types.iter().map(|&t| TokenAttr::from_type(t)).collect();
        let mut scores = scores;
        scores.truncate(n);
        Ok((
            Vocab {
                texts,
                scores,
                types,
                attrs,
                ids,
                max_token_len,
            },
            warnings,
        ))
    }
}

pub const KEY_MODEL: &str = "tokenizer.ggml.model";
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub const KEY_SCORES: &str = "tokenizer.ggml.scores";
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";
pub const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const KEY_ADD_SEP: &str = "tokenizer.ggml.add_sep_token";
pub const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
pub const KEY_REMOVE_EXTRA_WS: &str = "tokenizer.ggml.remove_extra_whitespaces";
pub const KEY_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
pub const KEY_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";
pub const KEY_GENERAL_NAME: &str = "general.name";
pub const KEY_GENERAL_ARCH: &str = "general.architecture";

fn value_desc(v: &Value) -> String {
    match v {
        Value::Array(a) => array_desc(a),
        other => format!("a {}", other.value_type()),
    }
}

fn array_desc(a: &Array) -> String {
    format!("an array of {}", a.element_type())
}

fn wrong_type(key: &'static str, expected: &'static str, found: &str) -> TokenizerError {
    TokenizerError::WrongType {
        key,
        expected,
        found: found.to_owned(),
    }
}

/// A string value, `None` if absent, an error if of another type.
pub fn opt_str<'m>(md: &'m Metadata, key: &'static str) -> Result<Option<&'m str>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(key, "a STRING", &value_desc(other))),
    }
}

pub fn opt_bool(md: &Metadata, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(key, "a BOOL", &value_desc(other))),
    }
}

/// An integer of any width, `None` if absent.
pub fn opt_int(md: &Metadata, key: &'static str) -> Result<Option<i128>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_i128()
            .map(Some)
            .ok_or_else(|| wrong_type(key, "an integer", &value_desc(v))),
    }
}

pub fn str_array<'m>(
    md: &'m Metadata,
    key: &'static str,
) -> Result<Option<&'m [String]>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(Array::String(v))) => Ok(Some(v)),
        Some(other) => Err(wrong_type(key, "an array of STRING", &value_desc(other))),
    }
}
