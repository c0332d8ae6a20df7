//! Token sampling with llama.cpp's semantics and chain order:
//! penalties → top-k → top-p → min-p → temperature → draw.
//!
//! - Penalties look at the last `repeat_last_n` tokens of the history (prompt included, as
//!   llama-server feeds it): a token seen `c > 0` times has its logit divided by
//!   `repeat_penalty` if positive or multiplied if not, then reduced by
//!   `c · frequency_penalty + presence_penalty`.
//! - top-k keeps the `k` largest (`k <= 0`: all); top-p keeps the smallest prefix of the sorted
//!   softmax whose mass reaches `p`; min-p keeps tokens with probability at least
//!   `min_p · p_max`.
//! - `temp <= 0` is greedy (the largest logit after penalties); otherwise logits are divided by
//!   `temp` and a token is drawn from their softmax with a seeded generator: the same seed
//!   gives the same tokens.
//!
//! All working memory (`candidates`, `counts`) is allocated once, at `n_vocab`, and planned
//! (see [`sampler_bytes`]).

use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    pub temp: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    /// Window of the penalties; 0 disables them, -1 means the whole history.
    pub repeat_last_n: i32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerParams {
    /// llama.cpp's defaults.
    fn default() -> Self {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerParams {
    pub fn greedy() -> SamplerParams {
        SamplerParams {
            temp: 0.0,
            ..SamplerParams::default()
        }
    }
}

/// Index of the largest value (the first on ties); 0 for an empty slice.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Candidate {
    id: u32,
    logit: f32,
    p: f32,
}

/// Bytes a sampler over `n_vocab` tokens allocates (candidates of 12 B, counts of 4 B).
pub fn sampler_bytes(n_vocab: usize) -> u64 {
    n_vocab as u64 * (std::mem::size_of::<Candidate>() as u64 + 4)
}

pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    candidates: Vec<Candidate>,
    counts: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplerParams, n_vocab: usize) -> Sampler {
        Sampler {
            rng: Rng::new(params.seed),
            params,
            candidates: Vec::with_capacity(n_vocab),
            counts: vec![0; n_vocab],
        }
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Bytes actually allocated (for the allocation log).
    pub fn allocated_bytes(&self) -> u64 {
        (self.candidates.capacity() * std::mem::size_of::<Candidate>() + self.counts.capacity() * 4)
            as u64
    }

    /// Restarts the random sequence (a new request with the same seed repeats its output).
    pub fn reseed(&mut self, seed: u64) {
        self.params.seed = seed;
        self.rng = Rng::new(seed);
    }

    /// Picks the next token from `logits` (length `n_vocab`) after `history`.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if self.params.temp <= 0.0 && !self.penalties_active() {
            // Greedy without penalties: no candidate list needed (262k-token vocabularies).
            return argmax(logits);
        }
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            }));
        if self.candidates.is_empty() {
            return 0;
        }
        self.apply_penalties(history);
        if self.params.temp <= 0.0 {
            return self.best_candidate();
        }
        self.top_k();
        self.top_p();
        self.min_p();
        let t = self.params.temp;
        for c in self.candidates.iter_mut() {
            c.logit /= t;
        }
        self.draw()
    }

    fn best_candidate(&self) -> u32 {
        let mut best = self.candidates[0];
        for c in &self.candidates[1..] {
            if c.logit > best.logit {
                best = *c;
            }
        }
        best.id
    }

    fn penalties_active(&self) -> bool {
        let p = &self.params;
        p.repeat_last_n != 0
            && (p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0)
    }

    fn apply_penalties(&mut self, history: &[u32]) {
        if !self.penalties_active() || history.is_empty() {
            return;
        }
        let p = &self.params;
        let n = if p.repeat_last_n < 0 {
            history.len()
        } else {
            (p.repeat_last_n as usize).min(history.len())
        };
        let window = &history[history.len() - n..];
        for &t in window {
            if let Some(c) = self.counts.get_mut(t as usize) {
                *c += 1;
            }
        }
        // Candidates are still indexed by token id here.
        for &t in window {
            let Some(count) = self.counts.get_mut(t as usize) else {
                continue;
            };
            if *count == 0 {
                continue; // already applied for this token
            }
            let c = *count as f32;
            *count = 0;
            if let Some(cand) = self.candidates.get_mut(t as usize) {
                if cand.logit <= 0.0 {
                    cand.logit *= p.repeat_penalty;
                } else {
                    cand.logit /= p.repeat_penalty;
                }
                cand.logit -= c * p.frequency_penalty + p.presence_penalty;
            }
        }
    }

    fn sort_desc(&mut self) {
        self.candidates
            .sort_unstable_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
    }

    fn top_k(&mut self) {
        let k = self.params.top_k;
        if k <= 0 || k as usize >= self.candidates.len() {
            return;
        }
        let k = k as usize;
        self.candidates.select_nth_unstable_by(k - 1, |a, b| {
            b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
        });
        self.candidates.truncate(k);
    }

    /// Softmax over the (sorted) candidates into `p`.
    fn softmax_sorted(&mut self) {
        self.sort_desc();
        let max = self.candidates[0].logit;
        let mut sum = 0.0f32;
        for c in self.candidates.iter_mut() {
            c.p = (c.logit - max).exp();
            sum += c.p;
        }
        for c in self.candidates.iter_mut() {
            c.p /= sum;
        }
    }

    fn top_p(&mut self) {
        let p = self.params.top_p;
        if p >= 1.0 {
            return;
        }
        self.softmax_sorted();
        let mut cum = 0.0f32;
        let mut keep = self.candidates.len();
        for (i, c) in self.candidates.iter().enumerate() {
            cum += c.p;
            if cum >= p {
                keep = i + 1;
                break;
            }
        }
        self.candidates.truncate(keep.max(1));
    }

    fn min_p(&mut self) {
        let p = self.params.min_p;
        if p <= 0.0 {
            return;
        }
        let max = self
            .candidates
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let min_logit = max + p.ln();
        let before = self.candidates.len();
        self.candidates.retain(|c| c.logit >= min_logit);
        if self.candidates.is_empty() && before > 0 {
            // Unreachable (the max always passes), but never return nothing.
            self.candidates.push(Candidate {
                id: 0,
                logit: max,
                p: 1.0,
            });
        }
    }

    fn draw(&mut self) -> u32 {
        self.softmax_sorted();
        let u = self.rng.next_f64() as f32;
        let mut cum = 0.0f32;
        for c in &self.candidates {
            cum += c.p;
            if u < cum {
                return c.id;
            }
        }
        // Rounding left `cum` just below 1: the last candidate takes the rest.
        self.candidates[self.candidates.len() - 1].id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SamplerParams {
        SamplerParams {
            temp: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 1,
        }
    }

    /// Empirical distribution of `n` draws.
    fn histogram(s: &mut Sampler, logits: &[f32], history: &[u32], n: usize) -> Vec<f64> {
        let mut h = vec![0.0; logits.len()];
        for _ in 0..n {
            h[s.sample(logits, history) as usize] += 1.0 / n as f64;
        }
        h
    }

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(SamplerParams::greedy(), 4);
        assert_eq!(s.sample(&[0.1, 3.0, 2.9, -1.0], &[]), 1);
    }

    #[test]
    fn temperature_one_follows_softmax() {
        let logits = [0.0f32, 1.0, 2.0];
        let mut s = Sampler::new(params(), 3);
        let h = histogram(&mut s, &logits, &[], 60_000);
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for i in 0..3 {
            let p = (logits[i] as f64).exp() / z;
            assert!((h[i] - p).abs() < 0.01, "{h:?}");
        }
    }

    #[test]
    fn top_k_top_p_min_p_cut_the_tail() {
        let logits = [3.0f32, 2.0, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(
            SamplerParams {
                top_k: 2,
                ..params()
            },
            5,
        );
        let h = histogram(&mut s, &logits, &[], 5_000);
        assert!(h[2] == 0.0 && h[3] == 0.0 && h[0] > 0.0 && h[1] > 0.0);
        // Softmax of the logits: 0.636, 0.234, 0.086, ... top-p 0.8 keeps the first two.
        let mut s = Sampler::new(
            SamplerParams {
                top_p: 0.8,
                ..params()
            },
            5,
        );
        let h = histogram(&mut s, &logits, &[], 5_000);
        assert!(h[2] == 0.0 && h[1] > 0.0);
        // min-p 0.3: p/p_max = e^-1 = 0.37 passes, e^-2 = 0.14 does not.
        let mut s = Sampler::new(
            SamplerParams {
                min_p: 0.3,
                ..params()
            },
            5,
        );
        let h = histogram(&mut s, &logits, &[], 5_000);
        assert!(h[2] == 0.0 && h[1] > 0.0);
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let logits = [2.0f32, -2.0, 1.9, 0.0];
        // Token 0 seen twice, token 1 once, outside the window: token 3.
        let history = [3, 0, 1, 0];
        let p = SamplerParams {
            temp: 0.0,
            repeat_penalty: 2.0,
            repeat_last_n: 3,
            frequency_penalty: 0.1,
            presence_penalty: 0.5,
            ..params()
        };
        let mut s = Sampler::new(p, 4);
        // 0: 2/2 - 0.2 - 0.5 = 0.3; 1: -2*2 - 0.1 - 0.5; 2: 1.9 untouched; 3 untouched.
        assert_eq!(s.sample(&logits, &history), 2);
        s.apply_penalties(&history);
        // The counts are reset after use.
        assert!(s.counts.iter().all(|&c| c == 0));
        s.candidates.clear();
        s.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
                p: 0.0,
            }));
        s.apply_penalties(&history);
        let got: Vec<f32> = s.candidates.iter().map(|c| c.logit).collect();
        let want = [0.3f32, -4.6, 1.9, 0.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(
                SamplerParams {
                    seed,
                    ..SamplerParams::default()
                },
                100,
            );
            (0..20).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
