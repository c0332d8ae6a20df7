//! The scheduler's view of a model: slots with cached tokens, a prefill call and a decode call.
//!
//! The model API runs one sequence per forward call, so [`Runner::decode`] defaults to one
//! forward per active sequence (correct, slower). A batched forward (all decode rows of a
//! step in one pass) plugs in by overriding `decode`; the scheduler already hands it the
//! whole batch.

use std::sync::Arc;

use models::Model;
use turbine_core::{Backend, MemoryPlan};

/// Logits for one row, or why that row failed.
pub type RowResult<'a> = Result<&'a [f32], String>;

pub trait Runner {
    fn n_vocab(&self) -> usize;
    /// Parallel sequences (`-np`).
    fn n_slots(&self) -> usize;
    /// Tokens one slot can hold.
    fn slot_capacity(&self) -> usize;
    /// Most tokens one forward call takes (`-ub`).
    fn max_chunk(&self) -> usize;
    /// Tokens cached in `slot`.
    fn cached(&self, slot: usize) -> usize;
    /// Appends `tokens` (at most `max_chunk`) to `slot` and returns the last token's logits.
    fn prefill(&mut self, slot: usize, tokens: &[u32]) -> RowResult<'_>;
    /// Appends one token to each `(slot, token)` and passes each row's logits to `out` with
    /// its index in `batch`.
    fn decode(&mut self, batch: &[(usize, u32)], out: &mut dyn FnMut(usize, RowResult<'_>)) {
        for (i, &(slot, token)) in batch.iter().enumerate() {
            out(i, self.prefill(slot, &[token]));
        }
    }
    /// Forgets everything `slot` holds (its KV cells return to the pool).
    fn clear(&mut self, slot: usize) -> Result<(), String>;
    /// Tokens per KV page, for the pages-used gauge.
    fn page_tokens(&self) -> usize {
        16
    }
}

/// A loaded [`Model`] as a [`Runner`].
pub struct ModelRunner<B: Backend> {
    model: Model<B>,
}

impl<B: Backend> ModelRunner<B> {
    pub fn new(model: Model<B>) -> ModelRunner<B> {
        ModelRunner { model }
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

    fn cached(&self, slot: usize) -> usize {
        self.model.seq_len(slot)
    }

    fn prefill(&mut self, slot: usize, tokens: &[u32]) -> RowResult<'_> {
        self.model
            .forward(slot, tokens, false)
            .map_err(|e| e.to_string())?;
        self.model.logits(0).map_err(|e| e.to_string())
    }

    fn clear(&mut self, slot: usize) -> Result<(), String> {
        self.model.truncate(slot, 0).map_err(|e| e.to_string())
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
