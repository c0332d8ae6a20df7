//! Chat templates read from real GGUF models with our GGUF reader, compared with the
//! `gguf` Python package reading the same file and jinja2 rendering it
//! (`template_oracle.py --gguf`), plus SmolLM2's ChatML spelled out by hand.

mod template_common;

use gguf::GgufFile;
use serde_json::json;
use template_common::{asset, compare_row, root, run_oracle, spec, Comparison};
use text::template::{ChatRequest, ChatTemplate, TemplateError};

const SMOLLM2: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Every conversation rendered from the model's own template matches the oracle,
/// and our BOS/EOS texts match what the Python reader finds.
fn matches_oracle(model: &str) {
    let Some(path) = asset(root().join(model), model) else {
        return;
    };
    let Some(oracle) = run_oracle(&[std::path::Path::new("--gguf"), &path]) else {
        return;
    };
    let file = GgufFile::open(&path).expect("open GGUF");
    let template = ChatTemplate::from_gguf(&file, None);
    if oracle.get("missing").is_some() {
        assert!(
            matches!(template, Err(TemplateError::NotFound { .. })),
            "{model}: the oracle finds no template, we got {template:?}"
        );
        return;
    }
    let t = template.as_ref().expect("template from GGUF");
    assert_eq!(t.name(), "tokenizer.chat_template");
    assert_eq!(
        t.bos_token(),
        oracle["bos_token"].as_str().unwrap(),
        "{model} BOS"
    );
    assert_eq!(
        t.eos_token(),
        oracle["eos_token"].as_str().unwrap(),
        "{model} EOS"
    );
    let spec = spec();
    let mut result = Comparison::default();
    let rows = oracle["results"].as_array().unwrap();
    for row in rows {
        compare_row(
            &spec,
            row,
            &template,
            "tokenizer.chat_template",
            &mut result,
        );
    }
    println!(
        "{model}: {} cases, {} identical, {} failing in both",
        rows.len(),
        result.same_text,
        result.same_failure
    );
    assert!(
        result.mismatches.is_empty(),
        "{model}:\n{}",
        result.mismatches.join("\n")
    );
}

#[test]
fn smollm2_template_matches_oracle() {
    matches_oracle(SMOLLM2);
}

#[test]
fn qwen25_coder_template_matches_oracle() {
    matches_oracle("models/qwen2.5-coder-0.5b-instruct.gguf");
}

/// Gemma 3 270M is the base model: no chat template, so loading one is a clear error.
#[test]
fn gemma3_base_has_no_template() {
    let model = "models/gemma-3-270m-q4_k_m.gguf";
    let Some(path) = asset(root().join(model), model) else {
        return;
    };
    let file = GgufFile::open(&path).expect("open GGUF");
    let err = ChatTemplate::from_gguf(&file, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no chat template 'tokenizer.chat_template' in the GGUF metadata (available: none)"
    );
}

/// SmolLM2's template is ChatML that adds a default system prompt when the
/// conversation has none.
#[test]
fn smollm2_renders_chatml_with_default_system_prompt() {
    let Some(path) = asset(root().join(SMOLLM2), "SmolLM2 model") else {
        return;
    };
    let file = GgufFile::open(&path).expect("open SmolLM2");
    let template = ChatTemplate::from_gguf(&file, None).expect("SmolLM2 chat template");
    assert_eq!(template.bos_token(), "<|im_start|>");
    assert_eq!(template.eos_token(), "<|im_end|>");
    let mut request = ChatRequest {
        messages: vec![
            json!({"role": "user", "content": "What is the capital of France? Answer in one sentence."}),
        ],
        add_generation_prompt: true,
        ..ChatRequest::default()
    };
    assert_eq!(
        template.render(&request).unwrap(),
        "<|im_start|>system\n\
         You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\n\
         What is the capital of France? Answer in one sentence.<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    request
        .messages
        .insert(0, json!({"role": "system", "content": "Be brief."}));
    request.add_generation_prompt = false;
    assert_eq!(
        template.render(&request).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n\
         <|im_start|>user\nWhat is the capital of France? Answer in one sentence.<|im_end|>\n"
    );
    let missing = ChatTemplate::from_gguf(&file, Some("tool_use")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no chat template 'tokenizer.chat_template.tool_use' in the GGUF metadata (available: default)"
    );
}
