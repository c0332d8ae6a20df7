//! The fixed 128-point randomized Walsh–Hadamard rotation of the TurboQuant KV formats
//! (`TURBO-KV.md`, "The rotation"):
//!
//! `R(x) = S2 · (1/√128) · H · S1 · x`, `R⁻¹(y) = S1 · (1/√128) · H · S2 · y`,
//!
//! with `H` the unnormalized Sylvester Hadamard matrix and `S1`, `S2` fixed ±1 diagonals. `H` is
//! symmetric and `H·H = 128·I`, so `R` is orthogonal: it preserves norms and inner products,
//! which is what lets attention score rotated queries against rotated keys directly.

/// Values per rotation group (one turbo block).
pub const ROTATION_SIZE: usize = 128;

/// `1/√128` as the f32 literal the spec writes (`0.08838834764831845f`).
#[allow(clippy::excessive_precision)] // the spec's literal, kept verbatim
pub const INV_SQRT_128: f32 = 0.088_388_347_648_318_45;

/// Sign diagonal applied before the Hadamard transform in `R`: bit `i` (LSB first within each
/// byte) set means element `i` is negated.
pub const SIGNS_1: [u8; 16] = [
    0x59, 0x03, 0x6a, 0xe4, 0x49, 0x59, 0xf8, 0x42, 0xbb, 0x3b, 0xc6, 0xa4, 0xa9, 0x50, 0xf2, 0x49,
];

/// Sign diagonal applied after the Hadamard transform in `R`.
pub const SIGNS_2: [u8; 16] = [
    0x90, 0xee, 0xac, 0x16, 0xdc, 0x8f, 0x62, 0x3f, 0x7a, 0x35, 0xa5, 0xb7, 0x62, 0x65, 0xa5, 0xbe,
];

/// `+1.0` or `-1.0` for element `i` of a sign diagonal.
#[inline]
pub fn sign(signs: &[u8; 16], i: usize) -> f32 {
    if (signs[i >> 3] >> (i & 7)) & 1 == 1 {
        -1.0
    } else {
        1.0
    }
}

fn apply_signs(x: &mut [f32; ROTATION_SIZE], signs: &[u8; 16]) {
    for (i, v) in x.iter_mut().enumerate() {
        *v *= sign(signs, i);
    }
}

/// In-place unnormalized Hadamard transform, natural (Sylvester) order.
fn hadamard(x: &mut [f32; ROTATION_SIZE]) {
    let mut h = 1;
    while h < ROTATION_SIZE {
        for base in (0..ROTATION_SIZE).step_by(2 * h) {
            for j in base..base + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

/// Normalize and apply the outer sign diagonal in one multiply per element, as the reference
/// does (`x · (c · s)`; the sign flip is exact, so the order of the two factors is immaterial).
fn scale_with_signs(x: &mut [f32; ROTATION_SIZE], signs: &[u8; 16]) {
    for (i, v) in x.iter_mut().enumerate() {
        *v *= INV_SQRT_128 * sign(signs, i);
    }
}

/// `x ← R(x)`.
pub fn rotate(x: &mut [f32; ROTATION_SIZE]) {
    apply_signs(x, &SIGNS_1);
    hadamard(x);
    scale_with_signs(x, &SIGNS_2);
}

/// `y ← R⁻¹(y)`.
pub fn rotate_inverse(y: &mut [f32; ROTATION_SIZE]) {
    apply_signs(y, &SIGNS_2);
    hadamard(y);
    scale_with_signs(y, &SIGNS_1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hadamard_matches_its_definition() {
        // Column k of H is H applied to the k-th basis vector: H[i][k] = (-1)^popcount(i & k).
        for k in [0usize, 1, 5, 64, 127] {
            let mut e = [0.0f32; ROTATION_SIZE];
            e[k] = 1.0;
            hadamard(&mut e);
            for (i, &v) in e.iter().enumerate() {
                let expect = if (i & k).count_ones() % 2 == 0 {
                    1.0
                } else {
                    -1.0
                };
                assert_eq!(v, expect, "H[{i}][{k}]");
            }
        }
    }

    #[test]
    fn inv_sqrt_128_is_the_nearest_f32() {
        assert_eq!(INV_SQRT_128, (1.0f64 / 128f64.sqrt()) as f32);
    }
}
