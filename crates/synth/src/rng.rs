//! A small, fast, seedable generator (wyrand). Every chunk of every tensor gets its own stream
//! derived from (seed, tensor index, chunk index), so the bytes written do not depend on how
//! the work is split over threads.

/// wyrand: one 64-bit state, one multiply per output; plenty for filler weights.
pub struct Rng(u64);

/// SplitMix64's finaliser: spreads nearby seeds far apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream for chunk `chunk` of tensor `tensor` under `seed`.
    pub fn new(seed: u64, tensor: u64, chunk: u64) -> Rng {
        Rng(mix(
            mix(mix(seed) ^ tensor) ^ chunk.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Fills `out` with uniformly random bytes.
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let x = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&x[..rest.len()]);
        }
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (((self.next_u64() >> 32) * u64::from(hi - lo + 1)) >> 32) as u32
    }

    /// Roughly standard normal: the sum of four uniforms, centred and scaled to unit variance
    /// (bounded at ±3.46, so no outliers that could overflow f16).
    #[inline]
    pub fn normal(&mut self) -> f32 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        (s - 2.0) * 3.0f32.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(1, 2, 3).next_u64(), Rng::new(1, 2, 4).next_u64());
        assert_ne!(Rng::new(1, 2, 3).next_u64(), Rng::new(2, 2, 3).next_u64());
    }

    #[test]
    fn normal_has_unit_variance_and_range_stays_in_bounds() {
        let mut r = Rng::new(7, 0, 0);
        let n = 100_000;
        let xs: Vec<f32> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
        for _ in 0..10_000 {
            let k = r.range(3, 9);
            assert!((3..=9).contains(&k));
        }
    }
}
