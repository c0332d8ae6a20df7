//! The scheduler's view of a model: slots with cached tokens and one call that runs a step.
//!
//! A step is a list of [`Chunk`]s, each some tokens appended to one slot: one token for a
//! decoding sequence, a piece of the prompt for a prefilling one. [`ModelRunner`] runs the
//! whole step as one batched forward pass ([`Model::forward_batch`]: the weights are read once
//! for all sequences); the default [`Runner::run`] runs one chunk at a time, which is what a
//! model without a batched forward would do.

use std::sync::Arc;

use models::{BatchRow, Model};

use super::chunking::ReuseRule;
use turbine_core::{Backend, MemoryPlan};

/// Logits of one chunk's last token (empty when the chunk did not ask for them), or why the
/// chunk failed.
pub type RowResult<'a> = Result<&'a [f32], String>;

/// Tokens appended to one slot in a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub slot: usize,
    pub tokens: &'a [u32],
    /// Compute the logits of the last token (a prompt's last chunk, every decode row).
    pub logits: bool,
}

pub trait Runner {
    fn n_vocab(&self) -> usize;
    /// Parallel sequences (`-np`).
    fn n_slots(&self) -> usize;
    /// Tokens one slot can hold.
    fn slot_capacity(&self) -> usize;
    /// Most prompt tokens one chunk holds (`-ub`).
    fn max_chunk(&self) -> usize;
    /// Most tokens (rows) one call to [`run`](Self::run) takes.
    fn max_rows(&self) -> usize;
    /// Tokens cached in `slot`.
    fn cached(&self, slot: usize) -> usize;
    /// Appends `tokens` (at most `max_chunk`) to `slot` and returns the last token's logits.
    fn prefill(&mut self, slot: usize, tokens: &[u32]) -> RowResult<'_>;
    /// Runs every chunk of a step (at most `max_rows` tokens in all, each slot at most once)
    /// and reports each chunk's outcome to `out` with its index in `chunks`.
    fn run(&mut self, chunks: &[Chunk<'_>], out: &mut dyn FnMut(usize, RowResult<'_>)) {
        for (i, c) in chunks.iter().enumerate() {
            match self.prefill(c.slot, c.tokens) {
                Ok(l) if c.logits => out(i, Ok(l)),
                Ok(_) => out(i, Ok(&[])),
                Err(e) => out(i, Err(e)),
            }
        }
    }
    /// Forgets the tokens `slot` holds from position `keep` on (their KV cells return to the
    /// pool).
    fn truncate(&mut self, slot: usize, keep: usize) -> Result<(), String>;
    /// Forgets everything `slot` holds.
    fn clear(&mut self, slot: usize) -> Result<(), String> {
        self.truncate(slot, 0)
    }
    /// How many of the `cached` tokens a slot holds to keep for a new prompt of `n_prompt`
    /// tokens whose first `common` tokens equal them, so that the prompt gets exactly the
    /// logits a cold prefill gives. `prompt_rows`: the leading cached rows that were written
    /// by prompt chunks (cut at multiples of [`max_chunk`](Self::max_chunk) from position 0);
    /// the rest were written one decode step at a time. At least the prompt's last token is
    /// always evaluated again, for its logits.
    fn reusable(&self, cached: usize, common: usize, prompt_rows: usize, n_prompt: usize) -> usize {
        let _ = (cached, prompt_rows);
        common.min(n_prompt.saturating_sub(1))
    }
    /// Tokens per KV page, for the pages-used gauge.
    fn page_tokens(&self) -> usize {
        16
    }
    /// Pages in the KV pool.
    fn pages_total(&self) -> usize {
        self.slot_capacity().div_ceil(self.page_tokens().max(1)) * self.n_slots()
    }
    /// Pages no slot holds: the pool less each slot's pages.
    fn pages_free(&self) -> usize {
        let page = self.page_tokens().max(1);
        let used: usize = (0..self.n_slots())
            .map(|s| self.cached(s).div_ceil(page))
            .sum();
        self.pages_total().saturating_sub(used)
    }
}

/// A loaded [`Model`] as a [`Runner`].
pub struct ModelRunner<B: Backend> {
    model: Model<B>,
    /// The step's rows (reused; at most `max_rows`).
    rows: Vec<BatchRow>,
    /// Run a step as one batched pass. Off when the batched forward pass does not give each
    /// row exactly the logits it gets alone (see [`probe_batch_invariance`]): then every
    /// chunk runs in its own pass, so no output depends on what else is running.
    batched: bool,
    /// Tokens per page of the backend's KV cache.
    page_tokens: usize,
    /// What the next request may keep of a slot's cache.
    reuse: ReuseRule,
}

/// What [`probe_batch_invariance`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Invariance {
    /// Rows in the probing pass.
    pub rows: usize,
    /// Largest |Δlogit| between a row in the batch and the same row alone (0: exact).
    pub max_abs_diff: f32,
}

/// Checks whether `forward_batch` is batch-invariant on this model and backend: every slot
/// decodes one token alone, then all slots decode it together plus one prompt chunk, and the
/// logits are compared bit for bit. Leaves every slot empty.
pub fn probe_batch_invariance<B: Backend>(model: &mut Model<B>) -> Result<Invariance, String> {
    let n = model.config().n_seq;
    let n_vocab = model.hparams().n_vocab as u32;
    let err = |e: models::ModelError| e.to_string();
    let tok = |i: usize| (i as u32 * 7919 + 11) % n_vocab.max(1);
    // Slot s holds s + 2 tokens, so rows sit at different positions.
    let prompt = |s: usize| -> Vec<u32> { (0..s + 2).map(|i| tok(s * 31 + i)).collect() };
    let chunk: Vec<u32> = (0..3).map(|i| tok(1000 + i)).collect();
    let mut alone = Vec::with_capacity(n);
    for s in 0..n {
        model.forward(s, &prompt(s), false).map_err(err)?;
        // Slot 0 takes a prompt chunk in the batch, the others one decode token.
        let next: &[u32] = if s == 0 { &chunk } else { &[5] };
        model.forward(s, next, false).map_err(err)?;
        alone.push(model.logits(0).map_err(err)?.to_vec());
        if model.can_truncate_prefix() {
            model.truncate(s, s + 2).map_err(err)?;
        } else {
            // A recurrent state (qwen35) cannot be rewound: clear the slot, replay its prompt.
            model.truncate(s, 0).map_err(err)?;
            model.forward(s, &prompt(s), false).map_err(err)?;
        }
    }
    let mut batch = Vec::new();
    for s in 0..n {
        let next: &[u32] = if s == 0 { &chunk } else { &[5] };
        for (j, &token) in next.iter().enumerate() {
            batch.push(BatchRow {
                seq: s,
                token,
                logits: j + 1 == next.len(),
            });
        }
    }
    let rows = batch.len();
    let mut max_abs_diff = 0f32;
    if rows <= model.config().max_rows() {
        model.forward_batch(&batch).map_err(err)?;
        for (s, a) in alone.iter().enumerate() {
            let b = model.logits(s).map_err(err)?;
            for (x, y) in a.iter().zip(b) {
                max_abs_diff = max_abs_diff.max((x - y).abs());
            }
        }
    }
    for s in 0..n {
        model.truncate(s, 0).map_err(err)?;
    }
    Ok(Invariance { rows, max_abs_diff })
}

impl<B: Backend> ModelRunner<B> {
    /// Wraps `model`; `batched` runs each step as one pass (see [`probe_batch_invariance`]);
    /// `page_tokens` is the backend's KV page size.
    /// A kept prompt prefix is at first limited to whole `-ub` chunks of prompt rows (exact
    /// whatever the kernels do); [`with_chunk_invariance`](Self::with_chunk_invariance) lifts
    /// that.
    pub fn new(model: Model<B>, batched: bool, page_tokens: usize) -> ModelRunner<B> {
        let rows = Vec::with_capacity(model.config().max_rows());
        let reuse = ReuseRule {
            chunk_invariant: false,
            chunk: model.config().n_ubatch,
            truncatable: model.can_truncate_prefix(),
        };
        ModelRunner {
            model,
            rows,
            batched,
            page_tokens,
            reuse,
        }
    }

    /// Declares whether the forward pass is chunk invariant (see
    /// [`probe_chunk_invariance`](super::chunking::probe_chunk_invariance)): then a request
    /// keeps the whole prefix it shares with a slot's cache.
    pub fn with_chunk_invariance(mut self, invariant: bool) -> ModelRunner<B> {
        self.reuse.chunk_invariant = invariant;
        self
    }

    pub fn reuse_rule(&self) -> ReuseRule {
        self.reuse
    }

    pub fn is_batched(&self) -> bool {
        self.batched
    }

    pub fn model(&self) -> &Model<B> {
        &self.model
    }

    pub fn plan(&self) -> &MemoryPlan {
        self.model.plan()
    }
}

impl<B: Backend> Runner for ModelRunner<B> {
    fn n_vocab(&self) -> usize {
        self.model.hparams().n_vocab
    }

    fn n_slots(&self) -> usize {
        self.model.config().n_seq
    }

    fn slot_capacity(&self) -> usize {
        self.model.seq_capacity()
    }

    fn max_chunk(&self) -> usize {
        self.model.config().n_ubatch
    }

    fn max_rows(&self) -> usize {
        self.model.config().max_rows()
    }

    fn cached(&self, slot: usize) -> usize {
        self.model.seq_len(slot)
    }

    fn prefill(&mut self, slot: usize, tokens: &[u32]) -> RowResult<'_> {
        self.model
            .forward(slot, tokens, false)
            .map_err(|e| e.to_string())?;
        self.model.logits(0).map_err(|e| e.to_string())
    }

    fn run(&mut self, chunks: &[Chunk<'_>], out: &mut dyn FnMut(usize, RowResult<'_>)) {
        if !self.batched {
            for (i, c) in chunks.iter().enumerate() {
                match self.prefill(c.slot, c.tokens) {
                    Ok(l) if c.logits => out(i, Ok(l)),
                    Ok(_) => out(i, Ok(&[])),
                    Err(e) => out(i, Err(e)),
                }
            }
            return;
        }
        self.rows.clear();
        for c in chunks {
            let last = c.tokens.len().saturating_sub(1);
            self.rows
                .extend(c.tokens.iter().enumerate().map(|(j, &token)| BatchRow {
                    seq: c.slot,
                    token,
                    logits: c.logits && j == last,
                }));
        }
        if let Err(e) = self.model.forward_batch(&self.rows) {
            // The model keeps none of the step's tokens: every chunk failed.
            let msg = e.to_string();
            for i in 0..chunks.len() {
                out(i, Err(msg.clone()));
            }
            return;
        }
        // Logit rows come in batch order, one per chunk that asked.
        let mut row = 0;
        for (i, c) in chunks.iter().enumerate() {
            if c.logits {
                out(i, self.model.logits(row).map_err(|e| e.to_string()));
                row += 1;
            } else {
                out(i, Ok(&[]));
            }
        }
    }

    fn truncate(&mut self, slot: usize, keep: usize) -> Result<(), String> {
        self.model.truncate(slot, keep).map_err(|e| e.to_string())
    }

    fn reusable(&self, cached: usize, common: usize, prompt_rows: usize, n_prompt: usize) -> usize {
        self.reuse.keep(cached, common, prompt_rows, n_prompt)
    }

    fn page_tokens(&self) -> usize {
        self.page_tokens
    }

    /// The paged cache's pool: the context in pages, plus one per extra sequence for the
    /// partly filled last pages.
    fn pages_total(&self) -> usize {
        let cfg = self.model.config();
        cfg.n_ctx.div_ceil(self.page_tokens.max(1)) + cfg.n_seq.saturating_sub(1)
    }
}

/// Spelling of tokens for output, and which tokens end generation.
pub trait TokenText: Send + Sync {
    /// The bytes a token contributes to the output text (empty for control tokens).
    fn piece(&self, id: u32) -> &[u8];
    fn is_end_of_generation(&self, id: u32) -> bool;
}

impl<T: TokenText + ?Sized> TokenText for Arc<T> {
    fn piece(&self, id: u32) -> &[u8] {
        (**self).piece(id)
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        (**self).is_end_of_generation(id)
    }
}

impl TokenText for text::tokenizer::Tokenizer {
    fn piece(&self, id: u32) -> &[u8] {
        // Control tokens (end-of-turn markers and the like) are not part of the output text.
        self.token_to_piece(id, false)
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        self.is_eog(id)
    }
}
