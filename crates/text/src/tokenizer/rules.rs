//! What each `tokenizer.ggml.pre` name means: its pre-tokenizer stages and the settings that
//! go with it, as llama.cpp defines them (names are grouped by the pattern they share).

use super::pretokenize::{Class, Matcher, Stage};

/// Settings a byte-level BPE pre-tokenizer name implies.
#[derive(Clone, Debug, PartialEq)]
pub struct PreRule {
    pub stages: Vec<Stage>,
    /// A word that is a token is emitted whole.
    pub ignore_merges: bool,
    /// Detokenizing applies the "clean up tokenization spaces" passes.
    pub clean_spaces: bool,
    /// The default for `add_bos_token`.
    pub add_bos: bool,
    /// The model has no BOS token unless the metadata names one.
    pub no_default_bos: bool,
    /// Spaces are written "▁" and merges run over raw UTF-8 characters (Gemma 4).
    pub space_marker: bool,
}

fn family(stages: Vec<Stage>) -> PreRule {
    PreRule {
        stages,
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
        no_default_bos: false,
        space_marker: false,
    }
}

fn m(matcher: Matcher) -> Stage {
    Stage::Match(matcher)
}

/// The rule for a pre-tokenizer name, or `None` if turbine does not know it.
pub fn pre_rule(name: &str) -> Option<PreRule> {
    let default = || {
        family(vec![
            m(Matcher::PunctRun { backtick: false }),
            Stage::Gpt2,
            m(Matcher::Numbers),
            m(Matcher::ThreeAsciiDigits),
        ])
    };
    let gpt2 = || family(vec![Stage::Gpt2]);
    let llama3 = || family(vec![Stage::Llama3]);
    let starcoder = || family(vec![m(Matcher::Number), Stage::Gpt2]);
    let qwen2 = || family(vec![Stage::Qwen2]);
    let newline_runs = || PreRule {
        space_marker: true,
        ..family(vec![Stage::NewlineRuns])
    };
    let keep_spaces = |r: PreRule| PreRule {
        clean_spaces: false,
        ..r
    };
    Some(match name {
        "default" => default(),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreRule {
            ignore_merges: true,
            add_bos: true,
            ..llama3()
        },
        "dbrx" | "smaug-bpe" => llama3(),
        "chatglm-bpe" => PreRule {
            no_default_bos: true,
            ..llama3()
        },
        "glm4" | "glm5" => PreRule {
            no_default_bos: true,
            ignore_merges: true,
            ..llama3()
        },
        "deepseek-llm" => keep_spaces(family(vec![
            m(Matcher::CrOrLf),
            m(Matcher::SpaceThenRun(Class::DeepseekLetters)),
            m(Matcher::SpaceThenRun(Class::DeepseekPunct)),
            m(Matcher::TrailingSpace),
            m(Matcher::Run(Class::Cjk)),
            m(Matcher::Numbers),
        ])),
        "deepseek-coder" => keep_spaces(family(vec![
            m(Matcher::CrOrLf),
            m(Matcher::SpaceThenRun(Class::Letter)),
            m(Matcher::SpaceThenRun(Class::Punct)),
            m(Matcher::Run(Class::Cjk)),
            m(Matcher::Number),
        ])),
        "falcon" => family(vec![
            m(Matcher::PunctRun { backtick: true }),
            Stage::Gpt2,
            m(Matcher::ThreeAsciiDigits),
        ]),
        // GPT-NeoX's Hugging Face tokenizer uses the GPT-2 pattern; llama.cpp's converter
        // writes no name for it (a missing name means "default").
        "gpt-2" | "gpt-neox" | "mpt" | "olmo" | "jais" | "exaone4" | "phi-2" | "jina-es"
        | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum"
        | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => gpt2(),
        "trillion" | "granite-docling" => keep_spaces(gpt2()),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => starcoder(),
        "smollm" | "command-r" => keep_spaces(starcoder()),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            keep_spaces(qwen2())
        }
        "megrez" | "stablelm2" => qwen2(),
        "qwen35" => keep_spaces(family(vec![Stage::Qwen35])),
        "gemma4" | "granite-embed-multi-311m" => newline_runs(),
        "sarvam-moe" => keep_spaces(newline_runs()),
        _ => return None,
    })
}
