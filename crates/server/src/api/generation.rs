//! Starting a generation on a model's engine and reading its events, shared by both
//! completion endpoints: the context check before any work, `--timeout` between events, and
//! cancellation when the response is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::scheduler::{
    CancelFlag, CancelOnDrop, Event, FinishReason, GenParams, GenRequest, Logprobs, Usage,
};

pub struct Generation {
    rx: UnboundedReceiver<Event>,
    /// Dropping the generation (client gone) cancels it on the engine.
    guard: CancelOnDrop,
    timeout: Duration,
}

/// Refuses a prompt that cannot fit a slot before any work is done (no context shift:
/// generation that reaches the end stops with `length`).
pub fn check_context(model: &LoadedModel, n_prompt: usize, field: &str) -> Result<(), ApiError> {
    let cap = model.engine.shape().slot_capacity;
    if n_prompt == 0 {
        return Err(ApiError::field(field, "the prompt is empty"));
    }
    if n_prompt >= cap {
        let mut e = ApiError::field(
            field,
            format!(
                "the prompt is {n_prompt} tokens but a slot's context holds {cap} (with room for at least one generated token); shorten it or raise -c (-c {} over -np {} slots)",
                model.spec.n_ctx, model.spec.n_parallel
            ),
        );
        e.message = format!("context length exceeded: {}", e.message);
        return Err(e);
    }
    Ok(())
}

pub fn start(
    model: &Arc<LoadedModel>,
    prompt: Vec<u32>,
    params: GenParams,
    arrived: Instant,
    timeout: Duration,
) -> Result<Generation, ApiError> {
    let (tx, rx) = unbounded_channel();
    let cancel = CancelFlag::new();
    model
        .engine
        .submit(GenRequest {
            prompt,
            params,
            events: tx,
            cancel: cancel.clone(),
            arrived,
        })
        .map_err(ApiError::unavailable)?;
    Ok(Generation {
        rx,
        guard: CancelOnDrop(cancel),
        timeout,
    })
}

impl Generation {
    /// The next event; an error if none comes within `--timeout` (the generation is then
    /// cancelled) or the engine went away.
    pub async fn next(&mut self) -> Result<Event, ApiError> {
        match tokio::time::timeout(self.timeout, self.rx.recv()).await {
            Err(_) => {
                self.guard.0.cancel();
                Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "no progress for {} s (--timeout); the request was cancelled",
                        self.timeout.as_secs()
                    ),
                ))
            }
            Ok(None) => Err(ApiError::internal(
                "the engine stopped before the request finished",
            )),
            Ok(Some(Event::Error(msg))) => Err(engine_error(msg)),
            Ok(Some(ev)) => Ok(ev),
        }
    }
}

/// Engine-side failures: shutdown and unload are "unavailable", the rest internal.
pub fn engine_error(msg: String) -> ApiError {
    if msg.contains("shutting down") || msg.contains("unloaded") {
        ApiError::unavailable(msg)
    } else {
        ApiError::internal(msg)
    }
}

/// One generated token as the non-streaming response reports it.
pub struct TokenRecord {
    pub logprobs: Option<Logprobs>,
}

pub struct Collected {
    pub text: String,
    pub tokens: Vec<TokenRecord>,
    pub reason: FinishReason,
    pub usage: Usage,
}

/// Runs a generation to its end (non-streaming responses).
pub async fn collect(mut g: Generation) -> Result<Collected, ApiError> {
    let mut text = String::new();
    let mut tokens = Vec::new();
    loop {
        match g.next().await? {
            Event::Token {
                text: t, logprobs, ..
            } => {
                text.push_str(&t);
                tokens.push(TokenRecord { logprobs });
            }
            Event::Done {
                text: t,
                reason,
                usage,
            } => {
                text.push_str(&t);
                return Ok(Collected {
                    text,
                    tokens,
                    reason,
                    usage,
                });
            }
            Event::Error(msg) => return Err(engine_error(msg)),
        }
    }
}

/// Seconds since the epoch, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A response id: prefix, then 24 hex digits unique within this process and run.
pub fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}-{:016x}{:08x}", t, n as u32)
}
