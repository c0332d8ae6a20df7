//! Log-probabilities of the model's distribution (softmax of the raw logits, before penalties
//! and sampling filters), as OpenAI's `logprobs` reports them.

use super::request::{Logprobs, TokenLogprob};
use super::runner::TokenText;

/// `log Σ exp(logits)`, in f64 so large vocabularies do not lose precision.
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln()
}

/// The chosen token's log-probability and the `n_top` most likely tokens (highest first,
/// ties by id).
pub fn logprobs(logits: &[f32], chosen: u32, n_top: usize, vocab: &dyn TokenText) -> Logprobs {
    let lse = log_sum_exp(logits);
    let lp = |id: u32| -> f32 {
        logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&l| (l as f64 - lse) as f32)
    };
    let entry = |id: u32| TokenLogprob {
        id,
        bytes: vocab.piece(id).to_vec(),
        logprob: lp(id),
    };
    let n_top = n_top.min(logits.len());
    let mut top: Vec<u32> = Vec::new();
    if n_top > 0 {
        let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
        let order = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        ids.select_nth_unstable_by(n_top - 1, order);
        ids.truncate(n_top);
        ids.sort_unstable_by(order);
        top = ids;
    }
    Logprobs {
        chosen: entry(chosen),
        top: top.into_iter().map(entry).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Letters;
    const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    impl TokenText for Letters {
        fn piece(&self, id: u32) -> &[u8] {
            &ABC[id as usize..id as usize + 1]
        }
        fn is_end_of_generation(&self, _: u32) -> bool {
            false
        }
    }

    #[test]
    fn matches_a_direct_softmax() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let r = logprobs(&logits, 2, 2, &Letters);
        assert!((r.chosen.logprob as f64 - (2.0f64.exp() / z).ln()).abs() < 1e-6);
        assert_eq!(r.chosen.bytes, b"c");
        let ids: Vec<u32> = r.top.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 2]);
        assert!((r.top[0].logprob as f64 - (3.0f64.exp() / z).ln()).abs() < 1e-6);
    }

    #[test]
    fn more_alternatives_than_tokens() {
        let r = logprobs(&[0.0, 0.0], 0, 5, &Letters);
        assert_eq!(r.top.len(), 2);
        assert!((r.top[0].logprob - 0.5f32.ln()).abs() < 1e-6);
    }
}
