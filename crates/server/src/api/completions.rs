//! `POST /v1/completions` (legacy text completions).

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::chat::{fingerprint, usage_json};
use super::generation::{self, collect, response_id, unix_now};
use super::params::{self, kind, Fields};
use super::stream::{sse, Chunks};
use super::{read_body, Shared};
use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::scheduler::{FinishReason, Logprobs, Usage};

pub async fn handle(State(st): State<Shared>, body: Body) -> Response {
    match run(st, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `prompt`: a string, one string in an array, or token ids.
fn prompt_tokens(model: &LoadedModel, f: &Fields) -> Result<Vec<u32>, ApiError> {
    let Some(v) = f.get("prompt") else {
        return Err(ApiError::field("prompt", "required"));
    };
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            let n_vocab = model.meta.n_vocab as u64;
            return items
                .iter()
                .enumerate()
                .map(|(i, t)| match t.as_u64() {
                    Some(id) if id < n_vocab => Ok(id as u32),
                    _ => Err(ApiError::field(
                        &format!("prompt[{i}]"),
                        format!("{t} is not a token id (vocabulary of {n_vocab})"),
                    )),
                })
                .collect();
        }
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::String(s) => s.as_str(),
            other => {
                return Err(ApiError::field(
                    "prompt[0]",
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        },
        Value::Array(items) if items.len() > 1 && items.iter().all(Value::is_string) => {
            return Err(ApiError::field(
                "prompt",
                "only one prompt per request is supported",
            ))
        }
        other => {
            return Err(ApiError::field(
                "prompt",
                format!(
                    "expected a string or an array of token ids, got {}",
                    kind(other)
                ),
            ))
        }
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
    if f.bool("echo")?.unwrap_or(false) {
        return Err(ApiError::field("echo", "echo is not supported"));
    }
    if let Some(n) = f.int_in("best_of", 1, i64::MAX)? {
        if n != 1 {
            return Err(ApiError::field("best_of", "only best_of = 1 is supported"));
        }
    }
    let logprobs = f.int_in("logprobs", 0, 20)?.map(|n| n as usize);
    common.gen.logprobs = logprobs;
    let prompt = prompt_tokens(&model, &f)?;
    generation::check_context(&model, prompt.len(), "prompt")?;
    let g = generation::start(&model, prompt, common.gen, arrived, st.http.timeout)?;
    let mut fmt = TextChunks {
        id: response_id("cmpl"),
        created: unix_now(),
        model: model.spec.name.clone(),
        logprobs: logprobs.is_some(),
        include_usage: common.include_usage,
        offset: 0,
    };
    if common.stream {
        return Ok(sse(g, fmt));
    }
    let done = collect(g).await?;
    let lp = fmt.logprobs.then(|| {
        let mut acc = LogprobLists::default();
        let mut offset = 0;
        for lp in done.tokens.iter().filter_map(|t| t.logprobs.as_ref()) {
            acc.push(lp, offset);
            offset += lp.chosen.text().len();
        }
        acc.to_json()
    });
    fmt.offset = 0;
    Ok(Json(json!({
        "id": fmt.id,
        "object": "text_completion",
        "created": fmt.created,
        "model": fmt.model,
        "system_fingerprint": fingerprint(),
        "choices": [{
            "index": 0,
            "text": done.text,
            "logprobs": lp,
            "finish_reason": done.reason.as_str(),
        }],
        "usage": usage_json(done.usage),
    }))
    .into_response())
}

/// The legacy completions `logprobs` object: parallel lists.
#[derive(Default)]
struct LogprobLists {
    tokens: Vec<Value>,
    token_logprobs: Vec<Value>,
    top_logprobs: Vec<Value>,
    text_offset: Vec<Value>,
}

impl LogprobLists {
    fn push(&mut self, lp: &Logprobs, offset: usize) {
        self.tokens.push(Value::String(lp.chosen.text()));
        self.token_logprobs.push(json!(lp.chosen.logprob));
        let mut top = Map::new();
        for t in &lp.top {
            top.insert(t.text(), json!(t.logprob));
        }
        self.top_logprobs.push(Value::Object(top));
        self.text_offset.push(json!(offset));
    }

    fn to_json(&self) -> Value {
        json!({
            "tokens": self.tokens,
            "token_logprobs": self.token_logprobs,
            "top_logprobs": self.top_logprobs,
            "text_offset": self.text_offset,
        })
    }
}

struct TextChunks {
    id: String,
    created: u64,
    model: String,
    logprobs: bool,
    include_usage: bool,
    /// Bytes of text sent so far (`text_offset`).
    offset: usize,
}

impl TextChunks {
    fn chunk(&self, text: &str, logprobs: Option<Value>, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": fingerprint(),
            "choices": [{
                "index": 0,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": finish,
            }],
        })
    }
}

impl Chunks for TextChunks {
    fn start(&mut self) -> Vec<Value> {
        Vec::new()
    }

    fn token(&mut self, text: &str, logprobs: Option<&Logprobs>) -> Option<Value> {
        let lp = match (self.logprobs, logprobs) {
            (true, Some(lp)) => {
                let mut acc = LogprobLists::default();
                acc.push(lp, self.offset);
                Some(acc.to_json())
            }
            _ => None,
        };
        if text.is_empty() && lp.is_none() {
            return None;
        }
        self.offset += text.len();
        Some(self.chunk(text, lp, None))
    }

    fn finish(&mut self, tail: &str, reason: FinishReason, usage: Usage) -> Vec<Value> {
        let mut out = Vec::new();
        if !tail.is_empty() {
            out.push(self.chunk(tail, None, None));
        }
        let mut last = self.chunk("", None, Some(reason.as_str()));
        if self.include_usage {
            last["usage"] = usage_json(usage);
        }
        out.push(last);
        out
    }
}
