//! Properties of the TurboQuant rotation and blocks (`TURBO-KV.md`) on fresh random data
//! (seed printed; `TURBINE_TEST_SEED` replays one).

mod common;

use formats::blocks::{BlockTurbo2, BlockTurbo3, BlockTurbo4};
use formats::rotation::{sign, INV_SQRT_128, SIGNS_1, SIGNS_2};
use formats::turbo::*;

const N: usize = 128;

fn gaussian(rng: &mut common::Rng, scale: f64) -> [f32; N] {
    std::array::from_fn(|_| (rng.normal() * scale) as f32)
}

fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn rng() -> common::Rng {
    let seed = common::Rng::fresh_seed();
    eprintln!("seed {seed} (replay with TURBINE_TEST_SEED={seed})");
    common::Rng::new(seed)
}

/// `R` as a dense matrix from its definition, in f64: `S2 · H · S1 / √128`.
fn rotation_matrix() -> Vec<[f64; N]> {
    (0..N)
        .map(|i| {
            std::array::from_fn(|k| {
                let h = if (i & k).count_ones() % 2 == 0 {
                    1.0
                } else {
                    -1.0
                };
                sign(&SIGNS_2, i) as f64 * h * sign(&SIGNS_1, k) as f64 / (N as f64).sqrt()
            })
        })
        .collect()
}

#[test]
fn rotation_matches_the_dense_definition() {
    let mut rng = rng();
    let m = rotation_matrix();
    for _ in 0..20 {
        let x = gaussian(&mut rng, 1.0);
        let mut y = x;
        rotate(&mut y);
        for (i, row) in m.iter().enumerate() {
            let want: f64 = row.iter().zip(&x).map(|(a, &b)| a * b as f64).sum();
            assert!(
                (y[i] as f64 - want).abs() < 1e-5,
                "R(x)[{i}] = {} vs {want}",
                y[i]
            );
        }
    }
    // The normalization constant is the f32 nearest 1/√128.
    assert_eq!(INV_SQRT_128, (1.0 / 128f64.sqrt()) as f32);
}

#[test]
fn rotation_round_trips_within_1e_6() {
    let mut rng = rng();
    for _ in 0..200 {
        let x = gaussian(&mut rng, 1.0);
        let mut y = x;
        rotate(&mut y);
        rotate_inverse(&mut y);
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-6, "max |R⁻¹(R(x)) − x| = {err:e}");
        // And the other order.
        let mut z = x;
        rotate_inverse(&mut z);
        rotate(&mut z);
        let err = x
            .iter()
            .zip(&z)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-6, "max |R(R⁻¹(x)) − x| = {err:e}");
    }
}

#[test]
fn rotation_preserves_inner_products_and_norms() {
    let mut rng = rng();
    for _ in 0..200 {
        let scale = 10f64.powf(rng.uniform() * 4.0 - 2.0);
        let (q, k) = (gaussian(&mut rng, scale), gaussian(&mut rng, 1.0));
        let (mut rq, mut rk) = (q, k);
        rotate(&mut rq);
        rotate(&mut rk);
        let tol = 1e-6 * norm(&q) * norm(&k);
        assert!(
            (dot(&rq, &rk) - dot(&q, &k)).abs() <= tol,
            "<Rq,Rk> {} vs <q,k> {}",
            dot(&rq, &rk),
            dot(&q, &k)
        );
        assert!((norm(&rq) - norm(&q)).abs() <= 1e-6 * norm(&q));
    }
}

/// Quantize + dequantize one block of each type.
fn roundtrip(x: &[f32; N]) -> [([f32; N], f32); 3] {
    let mut out = [([0.0f32; N], 0.0f32); 3];
    let b2: BlockTurbo2 = quantize_block_turbo2(x);
    dequantize_block_turbo2(&b2, &mut out[0].0);
    out[0].1 = b2.norm.to_f32();
    let b3: BlockTurbo3 = quantize_block_turbo3(x);
    dequantize_block_turbo3(&b3, &mut out[1].0);
    out[1].1 = b3.norm.to_f32();
    let b4: BlockTurbo4 = quantize_block_turbo4(x);
    dequantize_block_turbo4(&b4, &mut out[2].0);
    out[2].1 = b4.norm.to_f32();
    out
}

#[test]
fn dequantized_norm_equals_input_norm_within_f16_precision() {
    let mut rng = rng();
    for _ in 0..300 {
        let scale = 10f64.powf(rng.uniform() * 6.0 - 3.0);
        let x = gaussian(&mut rng, scale);
        let g = norm(&x);
        for (ty, (y, stored)) in ["turbo2", "turbo3", "turbo4"].iter().zip(roundtrip(&x)) {
            // The stored norm is ‖x‖ / ‖C[idx]‖ rounded to f16, so ‖dequant‖ = ‖x‖ up to
            // that rounding (relative 2^-11) and f32 sums.
            let got = norm(&y);
            assert!(
                (got - g).abs() <= g * (2f64.powi(-11) + 1e-5),
                "{ty}: ‖dequant‖ {got} vs ‖x‖ {g}"
            );
            assert!(stored > 0.0 && stored.is_finite());
        }
    }
}

#[test]
fn reconstruction_error_matches_the_codebook_distortion() {
    // Relative MSE ‖R⁻¹(dequant) − x‖² / ‖x‖² over many Gaussian blocks. Lloyd–Max for a
    // Gaussian gives about 0.118 (2 bits), 0.035 (3 bits), 0.0095 (4 bits); the norm
    // correction changes this little. Bounds have ~15% slack.
    let mut rng = rng();
    let bounds = [0.135, 0.040, 0.011];
    let mut sums = [0.0f64; 3];
    let trials = 400;
    for _ in 0..trials {
        let x = gaussian(&mut rng, 1.0);
        for (t, (mut y, _)) in roundtrip(&x).into_iter().enumerate() {
            rotate_inverse(&mut y);
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum();
            sums[t] += err / norm(&x).powi(2);
        }
    }
    for (t, (&s, &bound)) in sums.iter().zip(&bounds).enumerate() {
        let mse = s / trials as f64;
        eprintln!("turbo{}: relative MSE {mse:.5}", t + 2);
        assert!(mse < bound, "turbo{}: relative MSE {mse} ≥ {bound}", t + 2);
    }
}

#[test]
fn scores_against_packed_keys_equal_rotated_query_dot_dequantized_key() {
    // The attention identity of TURBO-KV.md: ⟨q, R⁻¹(k̂)⟩ = ⟨R q, k̂⟩ = norm · Σ q'[j] C[idx[j]].
    let mut rng = rng();
    for _ in 0..100 {
        let (q, k) = (gaussian(&mut rng, 1.0), gaussian(&mut rng, 1.0));
        let b = quantize_block_turbo3(&k);
        let mut k_hat = [0.0f32; N];
        dequantize_block_turbo3(&b, &mut k_hat);
        let mut rq = q;
        rotate(&mut rq);
        let packed: f64 = b.norm.to_f32() as f64
            * (0..N)
                .map(|j| rq[j] as f64 * CENTROIDS_3[b.index(j)] as f64)
                .sum::<f64>();
        let mut k_back = k_hat;
        rotate_inverse(&mut k_back);
        let direct = dot(&q, &k_back);
        assert!(
            (packed - direct).abs() <= 1e-5 * norm(&q) * norm(&k_hat),
            "{packed} vs {direct}"
        );
    }
}

#[test]
fn finite_inputs_never_give_non_finite_blocks() {
    let mut rng = rng();
    for scale in [1e-30, 1e-8, 1.0, 1e4, 1e6, 1e18, 3e38] {
        let x = gaussian(&mut rng, scale);
        let x = x.map(|v| if v.is_finite() { v } else { f32::MAX });
        for (ty, (y, stored)) in ["turbo2", "turbo3", "turbo4"].iter().zip(roundtrip(&x)) {
            assert!(stored.is_finite(), "{ty} at scale {scale:e}: norm {stored}");
            assert!(y.iter().all(|v| v.is_finite()), "{ty} at scale {scale:e}");
        }
    }
}
