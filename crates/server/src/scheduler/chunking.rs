//! How much of a slot's cached prompt a new request may keep so that it still gets exactly
//! the logits of a cold prefill, and the load-time probe that decides it.
//!
//! A cold prompt is cut into chunks at multiples of `-ub` from position 0. If the forward
//! pass gives every row the same bits however the prompt is cut into passes (chunk
//! invariance), a kept prefix of any length is exact, rows written by decode steps included.
//! If not (a kernel whose rounding depends on the rows beside it, a turbo K whose center
//! comes from the sequence's first chunk), only rows written by the same whole chunks as the
//! cold prefill's are safe: whole `-ub` chunks of the previous prompt.

use formats::GgmlType;
use models::Model;
use turbine_core::Backend;

/// What a slot may keep of its cache for a new prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReuseRule {
    /// The forward pass is chunk invariant (see [`probe_chunk_invariance`]).
    pub chunk_invariant: bool,
    /// `-ub`: the cold prefill's chunk.
    pub chunk: usize,
    /// A recurrent state can only be kept whole, never rewound.
    pub truncatable: bool,
}

impl ReuseRule {
    /// Tokens to keep of `cached` ones whose first `common` equal the new prompt's
    /// (`n_prompt` tokens; its last one is always evaluated again, for its logits), where
    /// the first `prompt_rows` were written by prompt chunks and the rest by decode steps.
    pub fn keep(&self, cached: usize, common: usize, prompt_rows: usize, n_prompt: usize) -> usize {
        let last = n_prompt.saturating_sub(1);
        if !self.truncatable {
            return if self.chunk_invariant && common == cached && cached <= last {
                cached
            } else {
                0
            };
        }
        if self.chunk_invariant {
            return common.min(last);
        }
        let chunk = self.chunk.max(1);
        common.min(prompt_rows).min(last) / chunk * chunk
    }
}

/// Whether [`probe_chunk_invariance`] can be believed for these cache types: a float cache
/// keeps a row's last-bit difference, so it reaches the probe's logits; a quantized one can
/// round both rows to the same code and hide it (a q8_0 K / turbo4 V cache passes the probe
/// while a prompt cut elsewhere still gets other logits). Quantized caches keep whole chunks.
pub fn probe_is_conclusive(type_k: GgmlType, type_v: GgmlType) -> bool {
    let float = |t: GgmlType| matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16);
    float(type_k) && float(type_v)
}

/// Prefills the same prompt in slot 0 three ways (one chunk, one token at a time, and cut at
/// an odd place) and compares the last logits bit for bit. Leaves slot 0 empty.
pub fn probe_chunk_invariance<B: Backend>(model: &mut Model<B>) -> Result<bool, String> {
    let err = |e: models::ModelError| e.to_string();
    let n_vocab = model.hparams().n_vocab as u32;
    let n = model
        .config()
        .n_ubatch
        .clamp(1, 40)
        .min(model.seq_capacity().max(1));
    let prompt: Vec<u32> = (0..n as u32)
        .map(|i| (i * 7919 + 104_729) % n_vocab.max(1))
        .collect();
    let mut run = |cuts: &[usize]| -> Result<Vec<f32>, String> {
        model.truncate(0, 0).map_err(err)?;
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&n)) {
            if to > from {
                model.forward(0, &prompt[from..to], false).map_err(err)?;
                from = to;
            }
        }
        Ok(model.logits(0).map_err(err)?.to_vec())
    };
    let whole = run(&[])?;
    let by_token: Vec<usize> = (1..n).collect();
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    let invariant = same(&whole, &run(&by_token)?) && same(&whole, &run(&[n / 3 + 1])?);
    model.truncate(0, 0).map_err(err)?;
    Ok(invariant)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: ReuseRule = ReuseRule {
        chunk_invariant: true,
        chunk: 32,
        truncatable: true,
    };

    #[test]
    fn only_float_caches_make_the_probe_conclusive() {
        assert!(probe_is_conclusive(GgmlType::F16, GgmlType::F16));
        assert!(!probe_is_conclusive(GgmlType::Q8_0, GgmlType::F16));
        assert!(!probe_is_conclusive(GgmlType::F16, GgmlType::Turbo4));
    }

    #[test]
    fn chunk_invariant_passes_keep_the_whole_common_prefix() {
        assert_eq!(PLAIN.keep(71, 68, 65, 98), 68);
        // The whole prompt cached: its last token is evaluated again.
        assert_eq!(PLAIN.keep(71, 40, 65, 40), 39);
    }

    #[test]
    fn otherwise_only_whole_chunks_of_prompt_rows_are_kept() {
        let rule = ReuseRule {
            chunk_invariant: false,
            ..PLAIN
        };
        // 68 in common but the prompt wrote 65 rows: two whole chunks.
        assert_eq!(rule.keep(71, 68, 65, 98), 64);
        assert_eq!(rule.keep(71, 31, 65, 98), 0);
        assert_eq!(rule.keep(200, 150, 150, 151), 128);
    }

    #[test]
    fn a_recurrent_state_is_kept_whole_or_not_at_all() {
        let rule = ReuseRule {
            truncatable: false,
            ..PLAIN
        };
        assert_eq!(rule.keep(30, 30, 25, 40), 30);
        assert_eq!(rule.keep(30, 29, 25, 40), 0);
        // Nothing left to evaluate for logits: start over.
        assert_eq!(rule.keep(30, 30, 25, 30), 0);
        let inexact = ReuseRule {
            chunk_invariant: false,
            ..rule
        };
        assert_eq!(inexact.keep(30, 30, 25, 40), 0);
    }
}
