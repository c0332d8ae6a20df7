//! Request-body parsing with errors that name the field: every check here turns a client
//! mistake into a 400 whose message starts with the field's name.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::scheduler::GenParams;
use engine::SamplerParams;

/// The request body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty (send a JSON object)",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            kind(&other)
        ))),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed, checked access to the fields of one JSON object. A field that is absent or null
/// counts as not given.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Prefix for nested objects (`stream_options.`).
    prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            map,
            prefix: String::new(),
        }
    }

    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::field(
                &self.name(key),
                format!("expected a boolean, got {}", kind(v)),
            )),
        }
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::field(
                &self.name(key),
                format!("expected a string, got {}", kind(v)),
            )),
        }
    }

    /// A number in `[min, max]`.
    pub fn f32_in(&self, key: &str, min: f32, max: f32) -> Result<Option<f32>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let x = v.as_f64().ok_or_else(|| {
            ApiError::field(
                &self.name(key),
                format!("expected a number, got {}", kind(v)),
            )
        })?;
        if !(min as f64..=max as f64).contains(&x) {
            return Err(ApiError::field(
                &self.name(key),
                format!("{x} is out of range [{min}, {max}]"),
            ));
        }
        Ok(Some(x as f32))
    }

    /// An integer in `[min, max]` (a float with no fraction is accepted, as JSON has one
    /// number type).
    pub fn int_in(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let x = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        }
        .ok_or_else(|| ApiError::field(&self.name(key), format!("expected an integer, got {v}")))?;
        if !(min..=max).contains(&x) {
            return Err(ApiError::field(
                &self.name(key),
                format!("{x} is out of range [{min}, {max}]"),
            ));
        }
        Ok(Some(x))
    }

    pub fn object(&self, key: &str) -> Result<Option<Fields<'a>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields {
                map: m,
                prefix: format!("{}{key}.", self.prefix),
            })),
            Some(v) => Err(ApiError::field(
                &self.name(key),
                format!("expected an object, got {}", kind(v)),
            )),
        }
    }
}

/// What both completion endpoints share besides the prompt.
#[derive(Clone, Debug)]
pub struct Common {
    pub gen: GenParams,
    pub stream: bool,
    pub include_usage: bool,
    pub model: Option<String>,
}

static SEED_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A seed for requests that ask for none: distinct per request.
fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ SEED_COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed)
}

/// Parses the sampling and generation fields of `/v1/chat/completions` and
/// `/v1/completions`; `defaults` come from the model's preset or the server's flags.
pub fn common(f: &Fields, defaults: &SamplerParams) -> Result<Common, ApiError> {
    let mut s = defaults.clone();
    if let Some(t) = f.f32_in("temperature", 0.0, 100.0)? {
        s.temp = t;
    }
    if let Some(p) = f.f32_in("top_p", 0.0, 1.0)? {
        s.top_p = p;
    }
    if let Some(k) = f.int_in("top_k", -1, i32::MAX as i64)? {
        s.top_k = k as i32;
    }
    if let Some(p) = f.f32_in("min_p", 0.0, 1.0)? {
        s.min_p = p;
    }
    if let Some(p) = f.f32_in("presence_penalty", -2.0, 2.0)? {
        s.presence_penalty = p;
    }
    if let Some(p) = f.f32_in("frequency_penalty", -2.0, 2.0)? {
        s.frequency_penalty = p;
    }
    if let Some(p) = f.f32_in("repeat_penalty", 0.0, 100.0)? {
        s.repeat_penalty = p;
    }
    if let Some(n) = f.int_in("repeat_last_n", -1, i32::MAX as i64)? {
        s.repeat_last_n = n as i32;
    }
    s.seed = match f.int_in("seed", i64::MIN, i64::MAX)? {
        Some(seed) if seed >= 0 => seed as u64,
        // llama.cpp: -1 (any negative) asks for a random seed.
        _ => fresh_seed(),
    };

    // max_completion_tokens is the newer OpenAI name, n_predict llama-server's.
    let mut max_tokens = None;
    for key in ["max_tokens", "max_completion_tokens", "n_predict"] {
        if let Some(n) = f.int_in(key, -1, i64::MAX)? {
            if n == 0 {
                return Err(ApiError::field(key, "must be at least 1"));
            }
            // -1 (llama-server's n_predict) means no limit.
            max_tokens = usize::try_from(n).ok();
            break;
        }
    }

    let stop = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    v => {
                        return Err(ApiError::field(
                            &format!("stop[{i}]"),
                            format!("expected a string, got {}", kind(v)),
                        ))
                    }
                }
            }
            out
        }
        Some(v) => {
            return Err(ApiError::field(
                "stop",
                format!("expected a string or an array of strings, got {}", kind(v)),
            ))
        }
    };
    if stop.iter().any(|s| s.is_empty()) {
        return Err(ApiError::field("stop", "stop strings must not be empty"));
    }

    if let Some(n) = f.int_in("n", 1, i64::MAX)? {
        if n != 1 {
            return Err(ApiError::field("n", "only n = 1 is supported"));
        }
    }
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.object("stream_options")? {
        Some(o) => o.bool("include_usage")?.unwrap_or(false),
        None => false,
    };
    let model = f.str("model")?.map(str::to_string);
    let ignore_eos = f.bool("ignore_eos")?.unwrap_or(false);
    // llama-server's field: reuse the slot's cached prompt prefix (default on).
    let cache_prompt = f.bool("cache_prompt")?.unwrap_or(true);
    Ok(Common {
        gen: GenParams {
            sampling: s,
            max_tokens,
            stop,
            logprobs: None,
            ignore_eos,
            cache_prompt,
        },
        stream,
        include_usage,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Common, ApiError> {
        let map = v.as_object().unwrap().clone();
        common(&Fields::new(&map), &SamplerParams::default())
    }

    #[test]
    fn malformed_json_is_a_400() {
        let e = parse_object(b"{\"model\": ").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_object(b"[1,2]").unwrap_err();
        assert!(e.message.contains("JSON object"));
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, field) in [
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"temperature": -1}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"top_k": 2.5}), "top_k"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"max_tokens": "ten"}), "max_tokens"),
            (json!({"stop": 5}), "stop"),
            (json!({"stop": ["a", 3]}), "stop[1]"),
            (json!({"n": 2}), "n"),
            (json!({"stream": "yes"}), "stream"),
            (json!({"cache_prompt": 1}), "cache_prompt"),
            (
                json!({"stream_options": {"include_usage": 1}}),
                "stream_options.include_usage",
            ),
            (json!({"seed": "x"}), "seed"),
            (json!({"presence_penalty": 3}), "presence_penalty"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(field), "{body}: {}", e.message);
            assert!(e.message.contains(field));
        }
    }

    #[test]
    fn values_are_taken() {
        let c = parse(json!({
            "temperature": 0, "top_p": 0.5, "top_k": 7, "min_p": 0.1, "seed": 42,
            "max_tokens": 9, "stop": "\n", "stream": true,
            "stream_options": {"include_usage": true}, "presence_penalty": 0.5,
            "frequency_penalty": -0.5, "model": "m", "unknown_field": [1]
        }))
        .unwrap();
        let s = &c.gen.sampling;
        assert_eq!(
            (s.temp, s.top_p, s.top_k, s.min_p, s.seed),
            (0.0, 0.5, 7, 0.1, 42)
        );
        assert_eq!((s.presence_penalty, s.frequency_penalty), (0.5, -0.5));
        assert_eq!(c.gen.max_tokens, Some(9));
        assert_eq!(c.gen.stop, vec!["\n".to_string()]);
        assert!(c.stream && c.include_usage);
        assert_eq!(c.model.as_deref(), Some("m"));
        assert!(c.gen.cache_prompt, "cache_prompt is on unless turned off");
        assert!(
            !parse(json!({"cache_prompt": false}))
                .unwrap()
                .gen
                .cache_prompt
        );
    }

    #[test]
    fn llama_aliases() {
        assert_eq!(
            parse(json!({"n_predict": 5})).unwrap().gen.max_tokens,
            Some(5)
        );
        assert_eq!(
            parse(json!({"n_predict": -1})).unwrap().gen.max_tokens,
            None
        );
        assert_eq!(
            parse(json!({"max_completion_tokens": 3}))
                .unwrap()
                .gen
                .max_tokens,
            Some(3)
        );
        // No seed: a fresh one per request.
        assert_ne!(
            parse(json!({})).unwrap().gen.sampling.seed,
            parse(json!({})).unwrap().gen.sampling.seed
        );
    }
}
