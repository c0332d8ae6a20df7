//! Attention on a 64-wide head stored in one half of a 128-value turbo group, in 64 dimensions
//! instead of 128.
//!
//! A head of 64 sits at offset 0 (`[x, ·]`) or 64 (`[·, x]`) of its group, the other half being
//! zeros (padding) or another head (packed). With `R = S2 · H · S1 / √128` and the Sylvester
//! split `H₁₂₈ = [[H₆₄, H₆₄], [H₆₄, −H₆₄]]`, for a decoded rotated row `d = (d_lo, d_hi)`:
//!
//! ```text
//! q · (R⁻¹ d)[half] = q̃ · fold(d),   fold(d)_j = d_j + s·σ_j·d_{j+64},   σ_j = S2_j · S2_{j+64}
//! q̃ = S2_lo ⊙ H₆₄(S1_half ⊙ q) / √128                      (once per query)
//! (R⁻¹ Σ p d)[half] = S1_half ⊙ H₆₄(S2_lo ⊙ Σ p fold(d)) / √128   (once per output)
//! ```
//!
//! where `s = +1` for the low half and `−1` for the high half, and `S1_half` is the half of S1
//! at the head's place. So a key costs a 64-wide fold plus 64-wide dot products and
//! accumulations per query, as an f16 head does, instead of 128-wide ones. This is exact
//! algebra (the same inner products), not an approximation; tests compare it with the
//! 128-wide path and the f64 reference.

use formats::rotation::{sign, INV_SQRT_128, SIGNS_1, SIGNS_2};

/// Values of a half group.
pub(crate) const HALF: usize = 64;

/// In-place unnormalized 64-point Hadamard transform (Sylvester order).
fn hadamard64(x: &mut [f32]) {
    let mut h = 1;
    while h < HALF {
        for base in (0..HALF).step_by(2 * h) {
            for j in base..base + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

/// The fold signs `s · σ_j` of the half at `offset` (0 or 64).
pub(crate) fn fold_signs(offset: usize) -> [f32; HALF] {
    let s = if offset == 0 { 1.0 } else { -1.0 };
    std::array::from_fn(|j| s * sign(&SIGNS_2, j) * sign(&SIGNS_2, j + HALF))
}

/// `q ← S2_lo ⊙ H₆₄(S1_half ⊙ q) / √128` for a head at `offset`; `q` has 64 values.
pub(crate) fn rotate_query(q: &mut [f32], offset: usize) {
    for (j, v) in q[..HALF].iter_mut().enumerate() {
        *v *= sign(&SIGNS_1, offset + j);
    }
    hadamard64(q);
    for (j, v) in q[..HALF].iter_mut().enumerate() {
        *v *= INV_SQRT_128 * sign(&SIGNS_2, j);
    }
}

/// `acc ← S1_half ⊙ H₆₄(S2_lo ⊙ acc) / √128`: a folded accumulator back to the head's values.
pub(crate) fn unrotate_output(acc: &mut [f32], offset: usize) {
    for (j, v) in acc[..HALF].iter_mut().enumerate() {
        *v *= sign(&SIGNS_2, j);
    }
    hadamard64(acc);
    for (j, v) in acc[..HALF].iter_mut().enumerate() {
        *v *= INV_SQRT_128 * sign(&SIGNS_1, offset + j);
    }
}

/// `x[p] ← x[order[p]]`: natural order to a kernel path's folded order.
pub(crate) fn permute(x: &mut [f32], order: &[u8; HALF]) {
    let src: [f32; HALF] = std::array::from_fn(|j| x[j]);
    for (y, &j) in x[..HALF].iter_mut().zip(order) {
        *y = src[j as usize];
    }
}

/// `x[order[p]] ← x[p]`: the inverse of [`permute`].
pub(crate) fn unpermute(x: &mut [f32], order: &[u8; HALF]) {
    let src: [f32; HALF] = std::array::from_fn(|p| x[p]);
    for (&v, &j) in src.iter().zip(order) {
        x[j as usize] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::turbo::{rotate, rotate_inverse};

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
    }

    /// Scores and outputs in 64 dimensions equal the 128-wide rotated ones, for both halves.
    #[test]
    fn folded_equals_full_rotation() {
        let d = values(128, 0.5); // a decoded rotated row
        for offset in [0, HALF] {
            let q = values(64, 3.0 + offset as f32);
            // 128-wide: q zero-padded into its half, rotated, dotted with d.
            let mut qp = [0.0f32; 128];
            qp[offset..offset + HALF].copy_from_slice(&q);
            rotate(&mut qp);
            let want: f64 = qp.iter().zip(&d).map(|(a, b)| *a as f64 * *b as f64).sum();
            // 64-wide.
            let mut qh = q.clone();
            rotate_query(&mut qh, offset);
            let signs = fold_signs(offset);
            let folded: Vec<f32> = (0..HALF).map(|j| d[j] + signs[j] * d[j + HALF]).collect();
            let got: f64 = qh
                .iter()
                .zip(&folded)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            assert!(
                (got - want).abs() < 1e-5,
                "offset {offset}: {got} vs {want}"
            );
            // Output: the head's half of R⁻¹ d.
            let mut full: [f32; 128] = d.clone().try_into().unwrap();
            rotate_inverse(&mut full);
            let mut out = folded.clone();
            unrotate_output(&mut out, offset);
            for j in 0..HALF {
                assert!(
                    (out[j] - full[offset + j]).abs() < 1e-5,
                    "offset {offset} value {j}"
                );
            }
        }
    }
}
