//! Server-sent events for streaming responses: each endpoint supplies a [`Chunks`] formatter;
//! this module drives the generation, applies `--timeout`, ends with `data: [DONE]`, and
//! cancels the generation when the client goes away (the body stream is dropped).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::Value;

use super::generation::Generation;
use crate::scheduler::{Event, FinishReason, Logprobs, Usage};

/// How one endpoint turns generation events into JSON chunks.
pub trait Chunks: Send + 'static {
    /// Chunks sent before the first token (chat: the assistant role).
    fn start(&mut self) -> Vec<Value>;
    /// The chunk for one token, if it carries anything.
    fn token(&mut self, text: &str, logprobs: Option<&Logprobs>) -> Option<Value>;
    /// Closing chunks: released tail text, the finish reason, usage.
    fn finish(&mut self, tail: &str, reason: FinishReason, usage: Usage) -> Vec<Value>;
}

struct State<C> {
    generation: Generation,
    chunks: C,
    queue: VecDeque<SseEvent>,
    done: bool,
}

fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

pub fn sse<C: Chunks>(generation: Generation, mut chunks: C) -> Response {
    let queue = chunks.start().iter().map(data).collect();
    let state = State {
        generation,
        chunks,
        queue,
        done: false,
    };
    let events = stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.queue.pop_front() {
                return Some((Ok::<_, Infallible>(ev), s));
            }
            if s.done {
                // Dropping `s` drops the generation; it already finished.
                return None;
            }
            match s.generation.next().await {
                Ok(Event::Token { text, logprobs, .. }) => {
                    if let Some(v) = s.chunks.token(&text, logprobs.as_ref()) {
                        s.queue.push_back(data(&v));
                    }
                }
                Ok(Event::Done {
                    text,
                    reason,
                    usage,
                }) => {
                    for v in s.chunks.finish(&text, reason, usage) {
                        s.queue.push_back(data(&v));
                    }
                    s.queue.push_back(SseEvent::default().data("[DONE]"));
                    s.done = true;
                }
                Ok(Event::Error(msg)) => {
                    let e = super::generation::engine_error(msg);
                    s.queue.push_back(data(&e.body()));
                    s.done = true;
                }
                Err(e) => {
                    s.queue.push_back(data(&e.body()));
                    s.done = true;
                }
            }
        }
    });
    Sse::new(events)
        // Comments while a request waits or prefills: a closed connection is noticed
        // (and the generation cancelled) even before the first token.
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(2)))
        .into_response()
}
