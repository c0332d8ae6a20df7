//! One request in a slot: its tokens, sampler, detokenizer and stop matcher, and the rule that
//! turns a row of logits into the next event for its client.

use std::time::Instant;

use engine::Sampler;
use text::tokenizer::StreamDecoder;

use super::logprobs::logprobs;
use super::request::{Event, FinishReason, GenRequest, Usage};
use super::runner::TokenText;
use super::stop::StopMatcher;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `done` prompt tokens are in the cache; more remain.
    Prefill { done: usize },
    /// `next` was sampled and must be fed to get the following logits.
    Decode { next: u32 },
}

pub struct Sequence {
    pub req: GenRequest,
    pub slot: usize,
    /// Prompt then generated tokens (the penalty history).
    pub tokens: Vec<u32>,
    pub n_prompt: usize,
    /// Prompt tokens the slot already held (not evaluated again).
    pub n_reused: usize,
    pub n_generated: usize,
    pub phase: Phase,
    /// Admission order, for fair prefill.
    pub order: u64,
    /// When the request got its slot (prompt evaluation time counts from here).
    pub admitted: Instant,
    pub last_token_at: Option<Instant>,
    sampler: Sampler,
    decoder: StreamDecoder,
    stops: StopMatcher,
}

/// What the scheduler must record after a token.
pub struct TokenOutcome {
    /// Seconds since arrival if this was the first token (time to first token).
    pub ttft: Option<f64>,
    /// Seconds from admission to the first token (prompt evaluation), with `ttft`.
    pub prompt_eval: Option<f64>,
    /// Seconds since the previous token otherwise.
    pub itl: Option<f64>,
    /// The sequence is finished (its slot can be freed).
    pub finished: bool,
}

impl Sequence {
    /// A request in `slot` whose first `reused` prompt tokens the slot already holds.
    pub fn new(
        req: GenRequest,
        slot: usize,
        order: u64,
        n_vocab: usize,
        reused: usize,
    ) -> Sequence {
        let sampler = Sampler::new(req.params.sampling.clone(), n_vocab);
        let stops = StopMatcher::new(req.params.stop.clone());
        let n_prompt = req.prompt.len();
        let mut tokens =
            Vec::with_capacity(n_prompt + req.params.max_tokens.unwrap_or(0).min(4096));
        tokens.extend_from_slice(&req.prompt);
        Sequence {
            req,
            slot,
            tokens,
            n_prompt,
            n_reused: reused,
            n_generated: 0,
            phase: Phase::Prefill { done: reused },
            order,
            admitted: Instant::now(),
            last_token_at: None,
            sampler,
            decoder: StreamDecoder::new(),
            stops,
        }
    }

    /// The client is gone or gave up.
    pub fn is_abandoned(&self) -> bool {
        self.req.cancel.is_cancelled() || self.req.events.is_closed()
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.n_prompt,
            completion_tokens: self.n_generated,
            cached_tokens: self.n_reused,
        }
    }

    /// Samples from `logits`, sends the token (or the end) to the client and moves to the
    /// next phase. `capacity` is what the slot can hold.
    pub fn on_logits(
        &mut self,
        logits: &[f32],
        vocab: &dyn TokenText,
        capacity: usize,
        now: Instant,
    ) -> TokenOutcome {
        let lp_request = self.req.params.logprobs;
        let id = self.sampler.sample(logits, &self.tokens);
        let mut outcome = TokenOutcome {
            ttft: None,
            prompt_eval: None,
            itl: None,
            finished: false,
        };
        match self.last_token_at {
            None => {
                outcome.ttft = Some(now.duration_since(self.req.arrived).as_secs_f64());
                outcome.prompt_eval = Some(now.duration_since(self.admitted).as_secs_f64());
            }
            Some(prev) => outcome.itl = Some(now.duration_since(prev).as_secs_f64()),
        }
        self.last_token_at = Some(now);
        self.n_generated += 1;

        if vocab.is_end_of_generation(id) && !self.req.params.ignore_eos {
            self.finish(FinishReason::Stop, true);
            outcome.finished = true;
            return outcome;
        }
        self.tokens.push(id);
        let text = self.decoder.push_bytes(vocab.piece(id));
        let released = self.stops.push(&text);
        let lp = lp_request.map(|n| logprobs(logits, id, n, vocab));
        let _ = self.req.events.send(Event::Token {
            id,
            text: released.text,
            logprobs: lp,
        });
        if released.stopped {
            // The match and whatever follows it (held bytes included) are dropped.
            self.finish(FinishReason::Stop, false);
            outcome.finished = true;
        } else if self
            .req
            .params
            .max_tokens
            .is_some_and(|m| self.n_generated >= m)
            // Feeding this token needs one more cell than the cache holds.
            || self.tokens.len() > capacity
        {
            self.finish(FinishReason::Length, true);
            outcome.finished = true;
        } else {
            self.phase = Phase::Decode { next: id };
        }
        outcome
    }

    /// Tells the client why generation ended; with `flush`, held text (a partial character,
    /// a possible stop-string prefix) is released first.
    fn finish(&mut self, reason: FinishReason, flush: bool) {
        let mut tail = String::new();
        if flush {
            let rest = self.decoder.finish();
            let released = self.stops.push(&rest);
            tail.push_str(&released.text);
            if !released.stopped {
                tail.push_str(&self.stops.finish());
            }
        }
        let _ = self.req.events.send(Event::Done {
            text: tail,
            reason,
            usage: self.usage(),
        });
    }

    /// Ends the request with an error (engine failure, shutdown, unload).
    pub fn fail(&mut self, message: String) {
        let _ = self.req.events.send(Event::Error(message));
    }
}
