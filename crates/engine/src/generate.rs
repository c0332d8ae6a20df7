//! The generation loop for one sequence: prefill the prompt in ubatch chunks (reusing the
//! cached prefix shared with the previous prompt), then decode one token at a time until an
//! end-of-generation token, the token limit, a full context, or the caller says stop.

use std::time::{Duration, Instant};

use models::{Model, ModelError};
use turbine_core::{Backend, Role};

use crate::plan::names;
use crate::sampler::{Sampler, SamplerParams};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced this end-of-generation token (not passed to the callback).
    EndOfGeneration(u32),
    /// `n_predict` tokens were generated.
    Length,
    /// The sequence's share of the KV cache is full.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

#[derive(Clone, Debug)]
pub struct GenStats {
    /// Prompt tokens evaluated (those reused from the cache are not counted).
    pub prompt_eval: usize,
    /// Prompt tokens reused from the previous call's cache.
    pub prompt_cached: usize,
    pub prefill_time: Duration,
    /// Tokens generated (the end-of-generation token included when there was one).
    pub generated: usize,
    /// Time of the decode forward passes and sampling after the first token.
    pub decode_time: Duration,
    pub stop: StopReason,
}

impl GenStats {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_eval as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Decode speed over the forward passes that followed the first sampled token.
    pub fn decode_tokens_per_s(&self) -> f64 {
        let passes = self.generated.saturating_sub(1);
        passes as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// One sequence (sequence 0 of the model) with its sampler and token history.
pub struct Generator<B: Backend> {
    model: Model<B>,
    sampler: Sampler,
    /// Every token in the sequence's cache, in order (planned: `host.tokens`).
    tokens: Vec<u32>,
}

const SEQ: usize = 0;

impl<B: Backend> Generator<B> {
    pub fn new(model: Model<B>, params: SamplerParams) -> Generator<B> {
        let n_vocab = model.hparams().n_vocab;
        let sampler = Sampler::new(params, n_vocab);
        let tokens = Vec::with_capacity(model.seq_capacity());
        let log = model.backend().allocation_log();
        let host = model.backend().host_device().to_string();
        log.record(
            names::SAMPLER,
            &host,
            Role::Compute,
            sampler.allocated_bytes(),
        );
        log.record(
            names::TOKENS,
            &host,
            Role::Context,
            (tokens.capacity() * 4) as u64,
        );
        Generator {
            model,
            sampler,
            tokens,
        }
    }

    pub fn model(&self) -> &Model<B> {
        &self.model
    }

    pub fn sampler_mut(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// Tokens in the sequence (prompt and generated).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Generates up to `n_predict` tokens after `prompt`. Each token goes to `on_token`
    /// (return `false` to stop); `is_eog` marks end-of-generation tokens, which stop without
    /// being passed on.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        n_predict: usize,
        is_eog: impl Fn(u32) -> bool,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<GenStats, ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::Config("empty prompt".into()));
        }
        let capacity = self.model.seq_capacity();
        if prompt.len() > capacity {
            return Err(ModelError::Config(format!(
                "prompt of {} tokens does not fit the context of {capacity} (raise -c)",
                prompt.len()
            )));
        }
        // Reuse the cached prefix; at least the last prompt token is evaluated for logits.
        let common = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        // A recurrent state (qwen35) cannot be rewound to a shorter prefix: start over.
        let common = if common < self.model.seq_len(SEQ) && !self.model.can_truncate_prefix() {
            0
        } else {
            common
        };
        self.model.truncate(SEQ, common)?;
        self.tokens.truncate(common);

        let t0 = Instant::now();
        let ub = self.model.config().n_ubatch;
        for chunk in prompt[common..].chunks(ub) {
            self.model.forward(SEQ, chunk, false)?;
            self.tokens.extend_from_slice(chunk);
        }
        let prefill_time = t0.elapsed();

        let mut stats = GenStats {
            prompt_eval: prompt.len() - common,
            prompt_cached: common,
            prefill_time,
            generated: 0,
            decode_time: Duration::ZERO,
            stop: StopReason::Length,
        };
        let t1 = Instant::now();
        while stats.generated < n_predict {
            let next = self.sampler.sample(self.model.logits(0)?, &self.tokens);
            stats.generated += 1;
            if is_eog(next) {
                stats.stop = StopReason::EndOfGeneration(next);
                break;
            }
            if !on_token(next) {
                stats.stop = StopReason::Callback;
                break;
            }
            if stats.generated == n_predict {
                break;
            }
            if self.tokens.len() >= capacity {
                stats.stop = StopReason::ContextFull;
                break;
            }
            self.model.forward(SEQ, &[next], false)?;
            self.tokens.push(next);
        }
        stats.decode_time = t1.elapsed();
        Ok(stats)
    }
}
