//! Which idle slot a new request goes to, the way llama-server picks: the slot whose cached
//! tokens share the longest prefix with the prompt, if that prefix is more than a fraction
//! (`--slot-prompt-similarity`) of the prompt; otherwise the least recently used slot, so the
//! caches most likely to be asked for again survive longest.

/// What an idle slot still holds from its last request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotCache {
    /// The tokens whose K/V the slot holds, in order.
    pub tokens: Vec<u32>,
    /// The leading `prompt_rows` of them were written by prompt chunks, the rest by decode.
    pub prompt_rows: usize,
    /// When the slot last finished a request (engine ticks; 0: never).
    pub last_used: u64,
}

impl SlotCache {
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.prompt_rows = 0;
    }
}

/// Length of the common prefix of `a` and `b`.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The slot for `prompt` among `idle` (indices into `caches`): the longest common prefix
/// whose share of the prompt exceeds `similarity` (0 turns this off), else the least
/// recently used. `None` if no slot is idle.
pub fn pick_slot(
    caches: &[SlotCache],
    idle: &[usize],
    prompt: &[u32],
    similarity: f32,
) -> Option<usize> {
    if similarity > 0.0 && !prompt.is_empty() {
        let best = idle
            .iter()
            .map(|&s| (common_prefix(&caches[s].tokens, prompt), s))
            .filter(|&(n, _)| n as f32 / prompt.len() as f32 > similarity)
            // Longest prefix; among equals the lowest slot (max_by_key keeps the last max).
            .max_by_key(|&(n, s)| (n, std::cmp::Reverse(s)));
        if let Some((_, s)) = best {
            return Some(s);
        }
    }
    idle.iter()
        .copied()
        .min_by_key(|&s| (caches[s].last_used, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(tokens: &[u32], last_used: u64) -> SlotCache {
        SlotCache {
            tokens: tokens.to_vec(),
            prompt_rows: tokens.len(),
            last_used,
        }
    }

    #[test]
    fn common_prefix_stops_at_the_first_difference() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
    }

    #[test]
    fn longest_similar_prefix_wins() {
        let caches = [
            cache(&[1, 2, 9], 5),
            cache(&[1, 2, 3, 4], 9),
            cache(&[7], 1),
        ];
        let prompt = [1, 2, 3, 4, 5, 6];
        assert_eq!(pick_slot(&caches, &[0, 1, 2], &prompt, 0.1), Some(1));
        // Slot 1 busy: slot 0 shares 2 of 6 tokens, more than 10%.
        assert_eq!(pick_slot(&caches, &[0, 2], &prompt, 0.1), Some(0));
        // 2 of 6 is not more than half: least recently used instead.
        assert_eq!(pick_slot(&caches, &[0, 2], &prompt, 0.5), Some(2));
    }

    #[test]
    fn without_a_similar_slot_the_least_recently_used_is_taken() {
        let caches = [cache(&[5, 5], 4), cache(&[], 0), cache(&[6], 2)];
        // An empty (never used) slot goes first, so caches survive.
        assert_eq!(pick_slot(&caches, &[0, 1, 2], &[1, 2], 0.1), Some(1));
        assert_eq!(pick_slot(&caches, &[0, 2], &[1, 2], 0.1), Some(2));
        // Similarity 0 turns prefix matching off.
        assert_eq!(pick_slot(&caches, &[0, 2], &[5, 5, 1], 0.0), Some(2));
        assert_eq!(pick_slot(&caches, &[], &[1], 0.1), None);
    }
}
