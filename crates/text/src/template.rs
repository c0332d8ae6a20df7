//! Chat templates rendered the way Hugging Face transformers renders them.
//!
//! A GGUF model carries its Jinja chat template in `tokenizer.chat_template` (named
//! alternates in `tokenizer.chat_template.<name>`). transformers renders it with
//! Jinja2's `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`,
//! loop controls, its own `tojson` (Python's `json.dumps`), `raise_exception` and
//! `strftime_now`. This module does the same on minijinja, with Python's `str()` for
//! printed values and Python's string/dict/list methods, so the prompt text matches
//! what the model was trained on byte for byte.
//!
//! Known differences from transformers (each covered by a test that expects it):
//! - `Markup + str` does not HTML-escape the str (minijinja's `+` cannot be
//!   hooked); only meetkai's functionary v3.1 template relies on it.
//! - A tuple literal `(1, 2)` prints as `[1, 2]`.
//! - Absent `tools`/`documents` (and null top-level extras) refuse iteration as
//!   Python's None does, but `x in tools` is false instead of an error; nulls inside
//!   messages refuse `in` but iterate as empty.
//! - `none ~ 'x'` works as in Python; `strftime_now` uses UTC, not the local zone.
//!
//! ```
//! use text::template::{ChatRequest, ChatTemplate};
//! let tpl = ChatTemplate::new(
//!     "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}\
//!      {% if add_generation_prompt %}<|assistant|>{% endif %}",
//!     "<s>",
//!     "</s>",
//! )
//! .unwrap();
//! let request = ChatRequest {
//!     messages: vec![serde_json::json!({"role": "user", "content": "Hi"})],
//!     add_generation_prompt: true,
//!     ..ChatRequest::default()
//! };
//! assert_eq!(tpl.render(&request).unwrap(), "<|user|>Hi<|assistant|>");
//! ```

mod environment;
mod error;
mod filters;
mod json;
mod methods;
mod pystr;
mod pyvalue;
mod source;
mod strftime;

use std::collections::BTreeMap;

use gguf::{GgufFile, Metadata};
use minijinja::value::Value;
use minijinja::Environment;

pub use error::TemplateError;
pub use strftime::DateTime;

/// Metadata key of a model's main chat template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// What a chat template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// OpenAI/HF-style messages, passed to the template as they are: `role`,
    /// `content` (a string, a list of parts, or null), `tool_calls`, `tool_call_id`,
    /// `name`, and anything else a template looks at (`reasoning_content`, ...).
    /// Templates expect `tool_calls[].function.arguments` as an object, as
    /// transformers does; see [`parse_tool_call_arguments`] for OpenAI's string form.
    pub messages: Vec<serde_json::Value>,
    /// Tool definitions (`{"type": "function", "function": {...}}`); `None` renders
    /// `tools` as Python's `None`, as transformers does.
    pub tools: Option<Vec<serde_json::Value>>,
    /// End the prompt with the header of an assistant turn.
    pub add_generation_prompt: bool,
    /// More template variables (`enable_thinking`, `reasoning_effort`, `documents`,
    /// ...). They may override `bos_token`, `eos_token` and `documents`, not
    /// `messages`, `tools`, `add_generation_prompt` or `strftime_now`.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The time `strftime_now` formats; `None` means now (UTC).
    pub now: Option<DateTime>,
}

/// A compiled chat template with the special-token texts it is rendered with.
pub struct ChatTemplate {
    name: String,
    source: String,
    bos_token: String,
    eos_token: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`, naming it "chat_template" in errors.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, TemplateError> {
        ChatTemplate::with_name("chat_template", source, bos_token, eos_token)
    }

    /// Compiles `source`; `name` is what errors call the template.
    pub fn with_name(
        name: impl Into<String>,
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, TemplateError> {
        let name = name.into();
        let source = source.into();
        let mut env = environment::build();
        env.add_template_owned(name.clone(), source::prepare(&source))
            .map_err(|e| TemplateError::from_syntax(&name, &e))?;
        Ok(ChatTemplate {
            name,
            source,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            env,
        })
    }

    /// The model's template from `tokenizer.chat_template`, or with `Some(name)` the
    /// alternate `tokenizer.chat_template.<name>` ("default" is the main one). BOS
    /// and EOS texts come from `tokenizer.ggml.{bos,eos}_token_id` and
    /// `tokenizer.ggml.tokens` (empty when absent).
    pub fn from_gguf(file: &GgufFile, name: Option<&str>) -> Result<ChatTemplate, TemplateError> {
        ChatTemplate::from_metadata(file.metadata(), name)
    }

    /// [`ChatTemplate::from_gguf`] on metadata alone.
    pub fn from_metadata(
        metadata: &Metadata,
        name: Option<&str>,
    ) -> Result<ChatTemplate, TemplateError> {
        let key = match name {
            None => CHAT_TEMPLATE_KEY.to_string(),
            Some("default") if !metadata.contains_key("tokenizer.chat_template.default") => {
                CHAT_TEMPLATE_KEY.to_string()
            }
            Some(n) => format!("{CHAT_TEMPLATE_KEY}.{n}"),
        };
        let Some(source) = metadata.get_str(&key) else {
            let mut available = Vec::new();
            if metadata.get_str(CHAT_TEMPLATE_KEY).is_some() {
                available.push("default".to_string());
            }
            available.extend(template_names(metadata));
            let available = if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            };
            return Err(TemplateError::NotFound { key, available });
        };
        let token_text = |id_key: &str| -> String {
            let id = metadata.get_u64(id_key);
            let tokens = metadata.get_str_array("tokenizer.ggml.tokens");
            match (id, tokens) {
                (Some(id), Some(tokens)) => usize::try_from(id)
                    .ok()
                    .and_then(|i| tokens.get(i))
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            }
        };
        ChatTemplate::with_name(
            key.clone(),
            source,
            token_text("tokenizer.ggml.bos_token_id"),
            token_text("tokenizer.ggml.eos_token_id"),
        )
    }

    /// The name errors use: the metadata key for templates from GGUF.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Renders the prompt text for `request`.
    pub fn render(&self, request: &ChatRequest) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| TemplateError::from_render(&self.name, &e))?;
        template
            .render(self.context(request))
            .map_err(|e| TemplateError::from_render(&self.name, &e))
    }

    /// The variables transformers passes: messages, tools, documents,
    /// add_generation_prompt, the special tokens, the caller's extras.
    fn context(&self, request: &ChatRequest) -> Value {
        let mut vars: BTreeMap<String, Value> = BTreeMap::new();
        vars.insert("bos_token".into(), Value::from(self.bos_token.as_str()));
        vars.insert("eos_token".into(), Value::from(self.eos_token.as_str()));
        vars.insert("documents".into(), pyvalue::py_none());
        for (key, value) in &request.extra {
            // Top-level None refuses iteration, like tools and documents.
            let value = match value {
                serde_json::Value::Null => pyvalue::py_none(),
                v => pyvalue::from_json(v),
            };
            vars.insert(key.clone(), value);
        }
        let list = |items: &[serde_json::Value]| {
            Value::from(items.iter().map(pyvalue::from_json).collect::<Vec<_>>())
        };
        vars.insert("messages".into(), list(&request.messages));
        vars.insert(
            "tools".into(),
            match &request.tools {
                Some(tools) => list(tools),
                None => pyvalue::py_none(),
            },
        );
        vars.insert(
            "add_generation_prompt".into(),
            Value::from(request.add_generation_prompt),
        );
        let now = request.now.unwrap_or_else(DateTime::now_utc);
        vars.insert(
            "strftime_now".into(),
            Value::from_function(move |format: &str| now.strftime(format)),
        );
        Value::from(vars)
    }
}

/// Names of the alternate templates (`tokenizer.chat_template.<name>`) in `metadata`.
pub fn template_names(metadata: &Metadata) -> Vec<String> {
    let prefix = format!("{CHAT_TEMPLATE_KEY}.");
    metadata
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// Turns OpenAI-style `tool_calls[].function.arguments` JSON strings into objects,
/// the form chat templates expect (transformers and llama.cpp do the same). Strings
/// that are not valid JSON are left as they are.
pub fn parse_tool_call_arguments(messages: &mut [serde_json::Value]) {
    for message in messages {
        let Some(calls) = message
            .get_mut("tool_calls")
            .and_then(serde_json::Value::as_array_mut)
        else {
            continue;
        };
        for call in calls {
            let Some(arguments) = call
                .get_mut("function")
                .and_then(|f| f.get_mut("arguments"))
            else {
                continue;
            };
            if let Some(text) = arguments.as_str() {
                if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text) {
                    *arguments = parsed;
                }
            }
        }
    }
}
