//! The chat-template API without external assets: choosing templates from GGUF
//! metadata, special tokens, request variables, errors that name the template.

use gguf::{Array, Metadata};
use serde_json::json;
use text::template::{
    parse_tool_call_arguments, template_names, ChatRequest, ChatTemplate, DateTime, TemplateError,
};

const CHATML: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n\
                      {{ m.content }}<|im_end|>\n{% endfor %}\
                      {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn metadata() -> Metadata {
    let mut md = Metadata::new();
    md.insert(
        "tokenizer.ggml.tokens",
        Array::String(vec!["<unk>".into(), "<s>".into(), "</s>".into()]),
    );
    md.insert("tokenizer.ggml.bos_token_id", 1u32);
    md.insert("tokenizer.ggml.eos_token_id", 2u32);
    md.insert("tokenizer.chat_template", CHATML);
    md.insert(
        "tokenizer.chat_template.tool_use",
        "TOOLS{{ tools|length }}",
    );
    md.insert("tokenizer.chat_template.rag", "RAG{{ documents }}");
    md
}

fn user(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![json!({"role": "user", "content": text})],
        ..ChatRequest::default()
    }
}

#[test]
fn picks_main_and_named_templates_with_special_tokens() {
    let md = metadata();
    assert_eq!(template_names(&md), ["tool_use", "rag"]);

    let main = ChatTemplate::from_metadata(&md, None).unwrap();
    assert_eq!(main.name(), "tokenizer.chat_template");
    assert_eq!((main.bos_token(), main.eos_token()), ("<s>", "</s>"));
    assert_eq!(main.source(), CHATML);
    let mut request = user("hi");
    request.add_generation_prompt = true;
    assert_eq!(
        main.render(&request).unwrap(),
        "<s><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );

    // "default" is the main template unless a template is literally named so.
    let default = ChatTemplate::from_metadata(&md, Some("default")).unwrap();
    assert_eq!(default.name(), "tokenizer.chat_template");

    let tool_use = ChatTemplate::from_metadata(&md, Some("tool_use")).unwrap();
    assert_eq!(tool_use.name(), "tokenizer.chat_template.tool_use");
    request.tools = Some(vec![
        json!({"type": "function"}),
        json!({"type": "function"}),
    ]);
    assert_eq!(tool_use.render(&request).unwrap(), "TOOLS2");

    let rag = ChatTemplate::from_metadata(&md, Some("rag")).unwrap();
    assert_eq!(rag.render(&request).unwrap(), "RAGNone");

    let err = ChatTemplate::from_metadata(&md, Some("nope")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no chat template 'tokenizer.chat_template.nope' in the GGUF metadata \
         (available: default, tool_use, rag)"
    );
}

#[test]
fn special_tokens_default_to_empty_when_metadata_lacks_them() {
    let mut md = Metadata::new();
    md.insert(
        "tokenizer.chat_template",
        "[{{ bos_token }}|{{ eos_token }}]",
    );
    md.insert("tokenizer.ggml.bos_token_id", 7u32); // no token list
    let t = ChatTemplate::from_metadata(&md, None).unwrap();
    assert_eq!(t.render(&ChatRequest::default()).unwrap(), "[|]");
}

#[test]
fn extra_variables_reach_the_template_but_cannot_replace_the_request() {
    let t = ChatTemplate::new(
        "{{ enable_thinking }}|{{ bos_token }}|{{ messages|length }}|{{ add_generation_prompt }}",
        "<s>",
        "</s>",
    )
    .unwrap();
    let mut request = user("hi");
    request.extra = json!({
        "enable_thinking": false,
        "bos_token": "<BOS>",
        "messages": [],
        "add_generation_prompt": true
    })
    .as_object()
    .unwrap()
    .clone();
    assert_eq!(t.render(&request).unwrap(), "False|<BOS>|1|False");
}

#[test]
fn strftime_now_uses_the_given_time_or_the_clock() {
    let t = ChatTemplate::new("{{ strftime_now('%d %B %Y, %A') }}", "", "").unwrap();
    let mut request = ChatRequest {
        now: DateTime::new(2024, 2, 29, 23, 59, 59),
        ..ChatRequest::default()
    };
    assert_eq!(t.render(&request).unwrap(), "29 February 2024, Thursday");
    request.now = None;
    let year: i32 = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "")
        .unwrap()
        .render(&request)
        .unwrap()
        .parse()
        .unwrap();
    assert!(year >= 2025, "clock year {year}");
}

#[test]
fn errors_name_the_template_and_the_reason() {
    let err = ChatTemplate::with_name("my-template", "{% if %}", "", "").unwrap_err();
    assert!(matches!(err, TemplateError::Syntax { .. }));
    assert!(
        err.to_string()
            .starts_with("chat template 'my-template' does not parse: syntax error"),
        "{err}"
    );

    let t = ChatTemplate::with_name(
        "strict",
        "{% for m in messages %}\n{% if m.role == 'system' %}\n\
         {{ raise_exception('System role not supported') }}\n{% endif %}\n{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let request = ChatRequest {
        messages: vec![json!({"role": "system", "content": "x"})],
        ..ChatRequest::default()
    };
    let err = t.render(&request).unwrap_err();
    assert_eq!(
        err,
        TemplateError::Raised {
            template: "strict".into(),
            message: "System role not supported".into(),
            line: Some(3),
        }
    );
    assert_eq!(
        err.to_string(),
        "chat template 'strict' raised an exception at line 3: System role not supported"
    );

    let t = ChatTemplate::with_name("typed", "{{ 'a' + 1 }}", "", "").unwrap();
    let err = t.render(&ChatRequest::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("chat template 'typed' failed to render: "),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn openai_string_arguments_become_objects() {
    let mut messages = vec![
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "1", "type": "function",
             "function": {"name": "f", "arguments": "{\"a\": 1, \"b\": [true]}"}},
            {"id": "2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
            {"id": "3", "type": "function", "function": {"name": "h", "arguments": {"x": 1}}}
        ]}),
        json!({"role": "user", "content": "hi"}),
    ];
    parse_tool_call_arguments(&mut messages);
    let calls = &messages[0]["tool_calls"];
    assert_eq!(
        calls[0]["function"]["arguments"],
        json!({"a": 1, "b": [true]})
    );
    assert_eq!(calls[1]["function"]["arguments"], json!("not json"));
    assert_eq!(calls[2]["function"]["arguments"], json!({"x": 1}));
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}

#[test]
fn runaway_templates_stop_with_an_error() {
    let t = ChatTemplate::with_name(
        "spin",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let err = t.render(&ChatRequest::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("chat template 'spin' failed to render: "),
        "{err}"
    );
    assert!(err.contains("fuel"), "{err}");
}
