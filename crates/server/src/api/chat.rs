//! `POST /v1/chat/completions`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use text::template::{parse_tool_call_arguments, ChatRequest};

use super::generation::{self, collect, response_id, unix_now};
use super::params::{self, kind, Fields};
use super::stream::{sse, Chunks};
use super::{read_body, Shared};
use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::scheduler::{FinishReason, Logprobs, TokenLogprob, Usage};

pub async fn handle(State(st): State<Shared>, body: Body) -> Response {
    match run(st, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Messages as the template expects them: text parts joined into one string.
fn parse_messages(f: &Fields) -> Result<Vec<Value>, ApiError> {
    let Some(v) = f.get("messages") else {
        return Err(ApiError::field("messages", "required"));
    };
    let Value::Array(items) = v else {
        return Err(ApiError::field(
            "messages",
            format!("expected an array, got {}", kind(v)),
        ));
    };
    if items.is_empty() {
        return Err(ApiError::field("messages", "must not be empty"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let field = format!("messages[{i}]");
        let Value::Object(obj) = m else {
            return Err(ApiError::field(
                &field,
                format!("expected an object, got {}", kind(m)),
            ));
        };
        match obj.get("role") {
            Some(Value::String(r)) if !r.is_empty() => {}
            Some(v) => {
                return Err(ApiError::field(
                    &format!("{field}.role"),
                    format!("expected a non-empty string, got {v}"),
                ))
            }
            None => return Err(ApiError::field(&format!("{field}.role"), "required")),
        }
        let mut msg: Map<String, Value> = obj.clone();
        match obj.get("content") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Array(parts)) => {
                let mut text = Vec::with_capacity(parts.len());
                for (j, p) in parts.iter().enumerate() {
                    let pf = format!("{field}.content[{j}]");
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push(t.as_str()),
                        (Some("text"), _) => {
                            return Err(ApiError::field(&format!("{pf}.text"), "expected a string"))
                        }
                        (Some(other), _) => {
                            return Err(ApiError::field(
                                &format!("{pf}.type"),
                                format!("only text parts are supported, got `{other}`"),
                            ))
                        }
                        (None, _) => {
                            return Err(ApiError::field(&format!("{pf}.type"), "required"))
                        }
                    }
                }
                msg.insert("content".into(), Value::String(text.join("\n")));
            }
            Some(v) => {
                return Err(ApiError::field(
                    &format!("{field}.content"),
                    format!(
                        "expected a string, an array of parts or null, got {}",
                        kind(v)
                    ),
                ))
            }
        }
        out.push(Value::Object(msg));
    }
    parse_tool_call_arguments(&mut out);
    Ok(out)
}

/// Renders the chat with the model's template and tokenizes it.
fn prompt_tokens(model: &LoadedModel, f: &Fields) -> Result<Vec<u32>, ApiError> {
    let messages = parse_messages(f)?;
    let template = model.template.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "model `{}` has no chat template; use /v1/completions",
            model.spec.name
        ))
    })?;
    let tools = match f.get("tools") {
        None => None,
        Some(Value::Array(t)) => Some(t.clone()),
        Some(v) => {
            return Err(ApiError::field(
                "tools",
                format!("expected an array, got {}", kind(v)),
            ))
        }
    };
    let extra = match f.get("chat_template_kwargs") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(v) => {
            return Err(ApiError::field(
                "chat_template_kwargs",
                format!("expected an object, got {}", kind(v)),
            ))
        }
    };
    let request = ChatRequest {
        messages,
        tools,
        add_generation_prompt: true,
        extra,
        now: None,
    };
    let text = template
        .render(&request)
        .map_err(|e| ApiError::field("messages", format!("the chat template failed: {e}")))?;
    // A template that writes the BOS text itself would double it when the tokenizer adds
    // BOS too; llama.cpp drops the template's.
    let bos = template.bos_token();
    let text = match model.tokenizer.add_bos() && !bos.is_empty() {
        true => text.strip_prefix(bos).unwrap_or(&text),
        false => &text,
    };
    Ok(model.tokenizer.encode(text, true, true))
}

async fn run(st: Shared, body: Body) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    if st.shutting_down.load(Ordering::Acquire) {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    let bytes = read_body(&st, body).await?;
    let map = params::parse_object(&bytes)?;
    let f = Fields::new(&map);
    let model = st.registry.get(f.str("model")?).await?;
    let mut common = params::common(&f, &model.spec.sampling)?;
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.int_in("top_logprobs", 0, 20)?;
    if top.is_some() && !logprobs {
        return Err(ApiError::field("top_logprobs", "needs `logprobs: true`"));
    }
    common.gen.logprobs = logprobs.then(|| top.unwrap_or(0) as usize);
    let prompt = prompt_tokens(&model, &f)?;
    generation::check_context(&model, prompt.len(), "messages")?;
    let g = generation::start(&model, prompt, common.gen, arrived, st.http.timeout)?;
    let fmt = ChatChunks {
        id: response_id("chatcmpl"),
        created: unix_now(),
        model: model.spec.name.clone(),
        logprobs,
        include_usage: common.include_usage,
    };
    if common.stream {
        return Ok(sse(g, fmt));
    }
    let done = collect(g).await?;
    let lp = logprobs.then(|| {
        json!({"content": done.tokens.iter().filter_map(|t| t.logprobs.as_ref()).map(logprob_entry).collect::<Vec<_>>()})
    });
    Ok(Json(json!({
        "id": fmt.id,
        "object": "chat.completion",
        "created": fmt.created,
        "model": fmt.model,
        "system_fingerprint": fingerprint(),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": done.text},
            "logprobs": lp,
            "finish_reason": done.reason.as_str(),
        }],
        "usage": usage_json(done.usage),
    }))
    .into_response())
}

pub fn fingerprint() -> String {
    format!("turbine-{}", env!("CARGO_PKG_VERSION"))
}

pub fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

fn token_json(t: &TokenLogprob) -> Value {
    json!({"token": t.text(), "logprob": t.logprob, "bytes": t.bytes})
}

/// One entry of `choices[].logprobs.content`.
fn logprob_entry(lp: &Logprobs) -> Value {
    let mut v = token_json(&lp.chosen);
    v["top_logprobs"] = Value::Array(lp.top.iter().map(token_json).collect());
    v
}

struct ChatChunks {
    id: String,
    created: u64,
    model: String,
    logprobs: bool,
    include_usage: bool,
}

impl ChatChunks {
    fn chunk(&self, delta: Value, logprobs: Option<Value>, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": fingerprint(),
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": finish,
            }],
        })
    }
}

impl Chunks for ChatChunks {
    fn start(&mut self) -> Vec<Value> {
        vec![self.chunk(json!({"role": "assistant", "content": ""}), None, None)]
    }

    fn token(&mut self, text: &str, logprobs: Option<&Logprobs>) -> Option<Value> {
        let lp = match (self.logprobs, logprobs) {
            (true, Some(lp)) => Some(json!({"content": [logprob_entry(lp)]})),
            _ => None,
        };
        if text.is_empty() && lp.is_none() {
            return None;
        }
        Some(self.chunk(json!({"content": text}), lp, None))
    }

    fn finish(&mut self, tail: &str, reason: FinishReason, usage: Usage) -> Vec<Value> {
        let mut out = Vec::new();
        if !tail.is_empty() {
            out.push(self.chunk(json!({"content": tail}), None, None));
        }
        out.push(self.chunk(json!({}), None, Some(reason.as_str())));
        if self.include_usage {
            out.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": fingerprint(),
                "choices": [],
                "usage": usage_json(usage),
            }));
        }
        out
    }
}
