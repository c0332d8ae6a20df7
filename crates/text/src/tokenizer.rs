//! Tokenizers built from `tokenizer.ggml.*` metadata, behaving as llama.cpp's do:
//!
//! - byte-level BPE (`gpt2`, and Gemma 4's `gemma4`), with the pre-tokenizer that
//!   `tokenizer.ggml.pre` names (see [`rules`](self) for the names known);
//! - SentencePiece-style BPE (`llama`: Llama 2, Phi-3, Gemma 1–3), with byte fallback and the
//!   leading-space rule;
//! - WordPiece (`bert`).
//!
//! Special tokens: user-defined tokens are always cut out of the text first; control tokens
//! only when asked (`parse_special`). Decoding works per token ([`Tokenizer::token_to_piece`]),
//! for whole sequences ([`Tokenizer::decode`]) and as a stream ([`StreamDecoder`]) that never
//! splits a UTF-8 character.
//!
//! Anything the tokenizer cannot honour (an unknown model or pre-tokenizer name, a missing or
//! mistyped key) is an error at load time, never a silent fallback.
//!
//! Typical engine use, as llama-server does it:
//! - prompt: `encode(rendered_chat, true, true)` (BOS as the model asks; the template's
//!   `<|im_start|>`-style texts become their tokens), raw completion prompts likewise;
//! - output: one [`StreamDecoder`] per sequence, fed with [`Tokenizer::decode_stream`]
//!   (`special = false` hides control tokens); stop when [`Tokenizer::is_eog`];
//! - [`Tokenizer::decode`] is `common_detokenize` (with the model's space clean-up), for
//!   whole sequences such as `/detokenize`.

mod bpe;
mod byte_level;
mod cache;
mod decode;
mod error;
mod fxhash;
mod pretokenize;
mod rules;
mod segment;
mod special;
mod spm;
mod unicode;
mod unicode_tables;
mod vocab;
mod wpm;

use gguf::{GgufFile, Metadata};

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use pretokenize::PreTokenizer;
pub use vocab::{TokenAttr, TokenType};

use bpe::Bpe;
use cache::WordCache;
use decode::{Pieces, Spelling};
use special::{Fragment, SpecialTokens};
use spm::Spm;
use vocab::*;
use wpm::Wpm;

/// The tokenization algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-pair encoding with merge ranks (`gpt2`, `gemma4`).
    Bpe,
    /// SentencePiece-style merges by token score (`llama`).
    Spm,
    /// WordPiece (`bert`).
    Wpm,
}

enum Model {
    Bpe(Box<Bpe>),
    Spm(Spm),
    Wpm(Wpm),
}

/// Ids of the tokens with a role. `None` where the model has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// A tokenizer read from GGUF metadata. Immutable once built; `Send + Sync`.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    special: SpecialTokens,
    pieces: Pieces,
    ids: SpecialIds,
    /// End-of-generation tokens, sorted.
    eog: Vec<u32>,
    model_name: String,
    pre_name: String,
    add_bos: bool,
    add_eos: bool,
    add_sep: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    /// Spaces are written "▁" before BPE (Gemma 4).
    escape_spaces: bool,
    warnings: Vec<String>,
}

/// Texts that mark the end of a turn, most specific first: the first one present becomes the
/// EOT token when the metadata names none.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that end generation wherever they appear in a vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Where a role's id lives in [`SpecialIds`].
type IdField = fn(&mut SpecialIds) -> &mut Option<u32>;

const ID_KEYS: [(&str, IdField); 17] = [
    ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
    ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
    ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
    ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
    ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
    ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
    ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
    ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
    ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
    ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
    ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
    ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
    ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
    ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
    // Older names of the first three FIM keys.
    ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
    ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
    ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
];

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file (vocab-only files included).
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_metadata(file.metadata())
    }

    /// Builds a tokenizer from GGUF metadata.
    pub fn from_metadata(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        let model_name = opt_str(md, KEY_MODEL)?.ok_or(TokenizerError::MissingKey(KEY_MODEL))?;
        let pre_key = opt_str(md, KEY_PRE)?;
        let kind = match model_name {
            "gpt2" | "gemma4" => TokenizerKind::Bpe,
            "llama" => TokenizerKind::Spm,
            "bert" => TokenizerKind::Wpm,
            "t5" | "rwkv" | "plamo2" | "hybriddna" | "whitespace" | "test" | "no_vocab"
            | "none" => return Err(TokenizerError::UnsupportedModel(model_name.to_owned())),
            other => return Err(TokenizerError::UnknownModel(other.to_owned())),
        };
        let (mut vocab, mut warnings) = Vocab::read(md)?;
        let n_vocab = vocab.len();

        // Defaults per algorithm, as llama.cpp sets them before reading the metadata.
        let mut ids = SpecialIds::default();
        let add_bos_default;
        let mut add_sep_default = false;
        let mut add_space_prefix = false;
        let mut clean_spaces = false;
        let mut escape_spaces = false;
        let mut pre_name = String::new();
        let model = match kind {
            TokenizerKind::Spm => {
                (ids.bos, ids.eos, ids.unk) = (Some(1), Some(2), Some(0));
                add_bos_default = true;
                add_space_prefix = true;
                None
            }
            TokenizerKind::Wpm => {
                (ids.bos, ids.unk, ids.sep, ids.pad, ids.mask) =
                    (Some(101), Some(100), Some(102), Some(0), Some(103));
                add_bos_default = true;
                add_sep_default = true;
                clean_spaces = true;
                None
            }
            TokenizerKind::Bpe => {
                let merges =
                    str_array(md, KEY_MERGES)?.ok_or(TokenizerError::MissingKey(KEY_MERGES))?;
                // Gemma 4 vocabularies carry their own rule whatever `pre` says.
                pre_name = if model_name == "gemma4" {
                    "gemma4".to_owned()
                } else {
                    match pre_key {
                        Some(p) if !p.is_empty() => p.to_owned(),
                        _ => {
                            warnings.push(format!(
                                "`{KEY_PRE}` is missing: using the `default` pre-tokenizer; \
                                 tokenization may differ from the model's own (regenerate the GGUF)"
                            ));
                            "default".to_owned()
                        }
                    }
                };
                let rule = rules::pre_rule(&pre_name)
                    .ok_or_else(|| TokenizerError::UnknownPreTokenizer(pre_name.clone()))?;
                if model_name == "gpt2" {
                    (ids.bos, ids.eos) = (Some(11), Some(11));
                }
                if rule.no_default_bos {
                    ids.bos = None;
                }
                add_bos_default = rule.add_bos;
                clean_spaces = rule.clean_spaces;
                escape_spaces = rule.space_marker;
                let pre = PreTokenizer::new(rule.stages.clone());
                let whole_newlines = pre_name == "gemma4" || pre_name == "granite-embed-multi-311m";
                Some(Bpe::new(
                    &vocab,
                    merges,
                    pre,
                    !rule.space_marker,
                    rule.ignore_merges,
                    whole_newlines,
                ))
            }
        };
        if let Some(v) = opt_bool(md, KEY_ADD_SPACE_PREFIX)? {
            add_space_prefix = v;
        }
        // Read for type checking; llama.cpp does not use it for these algorithms either.
        let _ = opt_bool(md, KEY_REMOVE_EXTRA_WS)?;

        // Role ids: defaults outside the vocabulary are dropped; a metadata id outside it is
        // ignored with a warning.
        for (_, field) in &ID_KEYS {
            let slot = field(&mut ids);
            if slot.is_some_and(|id| id as usize >= n_vocab) {
                *slot = None;
            }
        }
        for (key, field) in &ID_KEYS {
            let Some(v) = opt_int(md, key)? else { continue };
            if v >= 0 && (v as u128) < n_vocab as u128 {
                *field(&mut ids) = Some(v as u32);
            } else {
                warnings.push(format!(
                    "`{key}` = {v} is outside the vocabulary of {n_vocab}: ignored"
                ));
            }
        }

        let mut add_bos = opt_bool(md, KEY_ADD_BOS)?.unwrap_or(add_bos_default);
        let add_eos = opt_bool(md, KEY_ADD_EOS)?.unwrap_or(false);
        let add_sep = opt_bool(md, KEY_ADD_SEP)?.unwrap_or(add_sep_default);
        if pre_name == "gemma4" || pre_name == "granite-embed-multi-311m" {
            // Gemma 4 needs BOS whatever the file says.
            add_bos = true;
        }
        let lowercase = opt_bool(md, KEY_LOWERCASE)?.unwrap_or(true);
        let strip_accents = opt_bool(md, KEY_STRIP_ACCENTS)?.unwrap_or(lowercase);
        let general_name = opt_str(md, KEY_GENERAL_NAME)?.unwrap_or("").to_lowercase();
        let general_arch = opt_str(md, KEY_GENERAL_ARCH)?.unwrap_or("");

        let eog = detect_roles(&mut vocab, &mut ids);
        let special = SpecialTokens::new(&vocab);
        let spelling = if kind == TokenizerKind::Bpe && !escape_spaces {
            Spelling::ByteLevel
        } else {
            Spelling::SpaceMarker
        };
        let pieces = Pieces::new(&vocab, spelling);
        let special_ids = special_ids_of(&vocab);
        set_strip_rules(
            &mut vocab,
            &special_ids,
            &general_name,
            general_arch,
            pre_key.unwrap_or(""),
        );

        if add_bos && ids.bos.is_none() {
            return Err(TokenizerError::Invalid(format!(
                "`{KEY_ADD_BOS}` is true but the model has no BOS token"
            )));
        }
        if add_eos && ids.eos.is_none() {
            return Err(TokenizerError::Invalid(format!(
                "`{KEY_ADD_EOS}` is true but the model has no EOS token"
            )));
        }

        let model = match (kind, model) {
            (TokenizerKind::Bpe, Some(bpe)) => Model::Bpe(Box::new(bpe)),
            (TokenizerKind::Spm, _) => Model::Spm(Spm::new(&vocab, ids.unk)),
            _ => Model::Wpm(Wpm {
                lowercase,
                strip_accents,
            }),
        };
        Ok(Tokenizer {
            vocab,
            model,
            special,
            pieces,
            ids,
            eog,
            model_name: model_name.to_owned(),
            pre_name,
            add_bos,
            add_eos,
            add_sep,
            add_space_prefix,
            clean_spaces,
            escape_spaces,
            warnings,
        })
    }

    /// Tokenizes `text`. `add_special` adds the BOS/EOS (BERT: CLS/SEP) tokens the model asks
    /// for; `parse_special` turns control-token texts in `text` (like `<|im_start|>`) into
    /// those tokens instead of tokenizing them as text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let frags = self.special.partition(&self.vocab, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let v = &self.vocab;
        // One word cache for all fragments: words repeat across them too.
        let mut cache = WordCache::for_text(text.len());
        match &self.model {
            Model::Spm(spm) => {
                if add_special && self.add_bos {
                    out.extend(self.ids.bos);
                }
                // A fragment at the start or after a special token gets a leading space.
                let mut after_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(s, e) => {
                            buf.clear();
                            if self.add_space_prefix && after_special {
                                buf.push('\u{2581}');
                            }
                            push_space_marked(&mut buf, &text[s..e]);
                            spm.encode_fragment(v, &buf, &mut cache, &mut out);
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.ids.eos);
                }
            }
            Model::Bpe(bpe) => {
                if add_special && self.add_bos {
                    out.extend(self.ids.bos);
                }
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(s, e) if self.escape_spaces => {
                            buf.clear();
                            push_space_marked(&mut buf, &text[s..e]);
                            bpe.encode_fragment(v, &buf, &mut cache, &mut out);
                        }
                        Fragment::Text(s, e) => {
                            bpe.encode_fragment(v, &text[s..e], &mut cache, &mut out)
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.ids.eos);
                }
            }
            Model::Wpm(wpm) => {
                if add_special {
                    out.extend(self.ids.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Text(s, e) => {
                            wpm.encode_fragment(v, self.ids.unk, &text[s..e], &mut out)
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.extend(self.ids.sep);
                }
            }
        }
        out
    }

    /// The bytes token `id` stands for. Control and unknown tokens give their text when
    /// `special`, nothing otherwise. An id outside the vocabulary gives nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> &[u8] {
        if !special && self.attr(id).has(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            return &[];
        }
        self.pieces.get(id)
    }

    /// Detokenizes `ids` to bytes, as llama.cpp's `llama_detokenize` does: `remove_special`
    /// drops a leading BOS and trailing EOS the model adds itself; `unparse_special` renders
    /// control tokens as their text. The leading space SentencePiece adds is removed, and
    /// models that ask for it get the "clean up tokenization spaces" passes.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        let mut strip_space = self.add_space_prefix;
        if remove_special && self.add_bos && ids.first().is_some_and(|&t| Some(t) == self.ids.bos) {
            // As llama.cpp: a removed BOS keeps the space of the token after it.
            strip_space = false;
            ids = &ids[1..];
        }
        if remove_special && self.add_eos && ids.last().is_some_and(|&t| Some(t) == self.ids.eos) {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special);
            if strip_space {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
                strip_space = false;
            }
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            decode::clean_spaces(&mut out);
        }
        out
    }

    /// Text of `ids` (invalid UTF-8 replaced by U+FFFD), control tokens rendered when
    /// `special`. Same as llama.cpp's `common_detokenize`.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, special)).into_owned()
    }

    /// Pushes token `id` through a stream decoder; returns the text completed by it.
    pub fn decode_stream(&self, decoder: &mut StreamDecoder, id: u32, special: bool) -> String {
        decoder.push_bytes(self.token_to_piece(id, special))
    }

    pub fn kind(&self) -> TokenizerKind {
        match self.model {
            Model::Bpe(_) => TokenizerKind::Bpe,
            Model::Spm(_) => TokenizerKind::Spm,
            Model::Wpm(_) => TokenizerKind::Wpm,
        }
    }

    /// `tokenizer.ggml.model` as read.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The pre-tokenizer in use (BPE only; empty otherwise).
    pub fn pre_tokenizer_name(&self) -> &str {
        &self.pre_name
    }

    /// The pre-tokenizer stages (BPE only).
    pub fn pre_tokenizer(&self) -> Option<&PreTokenizer> {
        match &self.model {
            Model::Bpe(b) => Some(&b.pre),
            _ => None,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The vocabulary text of token `id` (as stored: "Ġ"/"▁" spellings, `<0x0A>`).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(String::as_str)
    }

    /// The token whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.vocab.scores.get(id as usize).copied()
    }

    /// Type as stored in the file.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab.types.get(id as usize).copied()
    }

    /// Attributes after loading (type, plus control/unused/strip bits the loader adds).
    pub fn attr(&self, id: u32) -> TokenAttr {
        self.vocab
            .attrs
            .get(id as usize)
            .copied()
            .unwrap_or_default()
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.attr(id).has(TokenAttr::CONTROL)
    }

    /// True for tokens that end generation (EOS, EOT, EOM and the end-of-turn texts).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    pub fn special_ids(&self) -> &SpecialIds {
        &self.ids
    }

    pub fn bos(&self) -> Option<u32> {
        self.ids.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.ids.eos
    }

    pub fn eot(&self) -> Option<u32> {
        self.ids.eot
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// `tokenizer.ggml.add_sep_token` (BERT-style models).
    pub fn add_sep(&self) -> bool {
        self.add_sep
    }

    /// SentencePiece's leading space before text at the start or after a special token.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Number of tokens parsed out of text with `parse_special` (control, unknown and
    /// user-defined).
    pub fn n_special(&self) -> usize {
        self.special.len()
    }

    /// Things worth telling the user about the metadata (a missing pre-tokenizer name, ids
    /// outside the vocabulary, ...). Loading succeeded despite them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Appends `text` with every space written as "▁".
fn push_space_marked(buf: &mut String, text: &str) {
    let mut rest = text;
    while let Some(p) = rest.find(' ') {
        buf.push_str(&rest[..p]);
        buf.push('\u{2581}');
        rest = &rest[p + 1..];
    }
    buf.push_str(rest);
}

fn first_present(vocab: &Vocab, texts: &[&str]) -> Option<u32> {
    texts.iter().find_map(|t| vocab.id(t))
}

/// Fills the roles the metadata left empty from well-known token texts, marks those tokens
/// (and all end-of-generation texts) as control tokens, and returns the end-of-generation set.
fn detect_roles(vocab: &mut Vocab, ids: &mut SpecialIds) -> Vec<u32> {
    let roles: [(&mut Option<u32>, &[&str]); 8] = [
        (&mut ids.eot, EOT_TEXTS),
        (&mut ids.eom, EOM_TEXTS),
        (&mut ids.fim_pre, FIM_PRE_TEXTS),
        (&mut ids.fim_suf, FIM_SUF_TEXTS),
        (&mut ids.fim_mid, FIM_MID_TEXTS),
        (&mut ids.fim_pad, FIM_PAD_TEXTS),
        (&mut ids.fim_rep, FIM_REP_TEXTS),
        (&mut ids.fim_sep, FIM_SEP_TEXTS),
    ];
    for (slot, texts) in roles {
        if slot.is_none() {
            if let Some(id) = first_present(vocab, texts) {
                *slot = Some(id);
                let a = &mut vocab.attrs[id as usize];
                *a = a.with(TokenAttr::CONTROL);
            }
        }
    }
    // Control tokens named "unused" are unused.
    for (text, attr) in vocab.texts.iter().zip(vocab.attrs.iter_mut()) {
        if attr.has(TokenAttr::CONTROL) && text.contains("unused") {
            *attr = attr.with(TokenAttr::UNUSED);
        }
    }

    let mut eog: Vec<u32> = [ids.fim_pad, ids.fim_rep, ids.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    for text in EOG_TEXTS {
        if let Some(id) = vocab.id(text) {
            eog.push(id);
            let a = &mut vocab.attrs[id as usize];
            *a = a.with(TokenAttr::CONTROL);
        }
    }
    eog.extend([ids.eos, ids.eot, ids.eom].into_iter().flatten());
    // These gpt-oss channel markers must always be rendered.
    for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(id) = vocab.id(text) {
            vocab.attrs[id as usize] = TokenAttr::USER_DEFINED;
        }
    }
    eog.sort_unstable();
    eog.dedup();
    let has = |vocab: &Vocab, eog: &[u32], t: &str| {
        vocab.id(t).is_some_and(|id| eog.binary_search(&id).is_ok())
    };
    // With "<|return|>"/"<|call|>" (gpt-oss) or "<|calls|>"/"<|flush|>" (Solar Open), "<|end|>"
    // ends a message, not the generation.
    if let Some(end) = vocab
        .id("<|end|>")
        .filter(|id| eog.binary_search(id).is_ok())
    {
        let call = has(vocab, &eog, "<|call|>") || has(vocab, &eog, "<|calls|>");
        if call && (has(vocab, &eog, "<|return|>") || has(vocab, &eog, "<|flush|>")) {
            eog.retain(|&t| t != end);
            vocab.attrs[end as usize] = TokenAttr::USER_DEFINED;
        }
    }
    // Gemma 4 and PLaMo have an ordinary "</s>".
    if let Some(s) = vocab.id("</s>").filter(|id| eog.binary_search(id).is_ok()) {
        if has(vocab, &eog, "<|tool_response>") || has(vocab, &eog, "<|plamo:eos|>") {
            eog.retain(|&t| t != s);
            vocab.attrs[s as usize] = TokenAttr::NORMAL;
        }
    }
    eog
}

/// Ids parsed out of text with `parse_special` (the set the strip rules apply to).
fn special_ids_of(vocab: &Vocab) -> Vec<u32> {
    let special = TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN;
    (0..vocab.len() as u32)
        .filter(|&id| vocab.attrs[id as usize].has(special))
        .collect()
}

/// Per-model whitespace rules around special tokens, which GGUF files do not record.
fn set_strip_rules(vocab: &mut Vocab, special: &[u32], name: &str, arch: &str, pre: &str) {
    let set = |vocab: &mut Vocab, text: &str, bit: TokenAttr, on: bool| {
        if let Some(id) = vocab.id(text) {
            let a = &mut vocab.attrs[id as usize];
            *a = if on { a.with(bit) } else { a.without(bit) };
        }
    };
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
        .iter()
        .any(|p| pre.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"]
            .iter()
            .any(|a| arch.contains(a))
    {
        set(vocab, "<mask>", TokenAttr::LSTRIP, true);
    } else if name.contains("phi-3") || name.contains("phi3") {
        for &id in special {
            let a = &mut vocab.attrs[id as usize];
            *a = a.with(TokenAttr::RSTRIP);
        }
        set(vocab, "</s>", TokenAttr::RSTRIP, true);
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            set(vocab, t, TokenAttr::RSTRIP, false);
        }
    } else if name.contains("modern-bert") {
        set(vocab, "[MASK]", TokenAttr::LSTRIP, true);
    }
}
