//! What HTTP handlers send to the engine thread, and what comes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use engine::SamplerParams;
use tokio::sync::mpsc::UnboundedSender;

/// Everything that shapes one generation besides the prompt.
#[derive(Clone, Debug)]
pub struct GenParams {
    pub sampling: SamplerParams,
    /// Most tokens to generate; `None`: until end of generation or the slot is full.
    pub max_tokens: Option<usize>,
    /// Strings that end generation; the match and what follows are not returned.
    pub stop: Vec<String>,
    /// Return each token's log-probability and this many alternatives (`Some(0)`: only the
    /// chosen token's).
    pub logprobs: Option<usize>,
    /// Keep generating past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Reuse the longest prefix of the prompt that a slot still holds from its last request
    /// (llama-server's `cache_prompt`, on by default); off: the whole prompt is evaluated.
    pub cache_prompt: bool,
}

impl Default for GenParams {
    fn default() -> GenParams {
        GenParams {
            sampling: SamplerParams::default(),
            max_tokens: None,
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
            cache_prompt: true,
        }
    }
}

/// Set by the HTTP side when its client is gone (or timed out); the engine frees the slot at
/// its next step. Cloned into the request and kept by the response stream.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> CancelFlag {
        CancelFlag::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Cancels on drop: held by a response future or stream, so a client that disconnects (axum
/// drops the future or the body) cancels its generation without any explicit call.
#[derive(Debug)]
pub struct CancelOnDrop(pub CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub params: GenParams,
    pub events: UnboundedSender<Event>,
    pub cancel: CancelFlag,
    /// When the HTTP request arrived (time to first token counts from here).
    pub arrived: Instant,
}

/// One alternative token with its log-probability.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    /// The token's bytes as the model spells them (may be part of a UTF-8 character).
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

impl TokenLogprob {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A sampled token's log-probability and the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprobs {
    pub chosen: TokenLogprob,
    pub top: Vec<TokenLogprob>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the slot's context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens taken from the slot's cache instead of evaluated.
    pub cached_tokens: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One sampled token. `text` is what may be shown now: UTF-8-complete and past any
    /// possible stop-string prefix, so it can be empty and may carry earlier tokens' text.
    Token {
        id: u32,
        text: String,
        logprobs: Option<Logprobs>,
    },
    /// Generation ended; `text` is held-back text released at the end (no stop string
    /// matched it), to append after the last token's.
    Done {
        text: String,
        reason: FinishReason,
        usage: Usage,
    },
    /// The request failed after it was accepted (engine error, shutdown, model unloaded).
    Error(String),
}
