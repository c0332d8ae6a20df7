//! Re-derives the turbo4 codebook from its definition in `TURBO-KV.md` (Lloyd's algorithm for
//! N(0, 1/128) started from equal-probability bins, exactly 100 iterations, rounded to 6
//! decimals; midpoints of the rounded centroids rounded half away from zero), in f64 with a
//! self-contained normal CDF, and checks the shipped tables against it.

use formats::turbo::{CENTROIDS_4, MIDPOINTS_4};

/// erf(x) for x ≥ 0 from the all-positive series e^{-x²}·2/√π·Σ 2ⁿx^{2n+1}/(1·3·…·(2n+1)),
/// which has no cancellation.
fn erf_nonneg(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * 1e-18 {
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
}

/// Standard normal CDF.
fn cdf(x: f64) -> f64 {
    if x == f64::INFINITY {
        return 1.0;
    }
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    let e = erf_nonneg(x.abs() / std::f64::consts::SQRT_2);
    if x >= 0.0 {
        0.5 + 0.5 * e
    } else {
        0.5 - 0.5 * e
    }
}

/// Standard normal density (0 at ±∞).
fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn inverse_cdf(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Mean of a standard normal restricted to (a, b).
fn cell_mean(a: f64, b: f64) -> f64 {
    (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))
}

fn means(bounds: &[f64]) -> Vec<f64> {
    bounds.windows(2).map(|w| cell_mean(w[0], w[1])).collect()
}

/// Rounds `v` (in units of 1e-6) half away from zero.
fn micro(v: f64) -> i64 {
    (v * 1e6).round() as i64
}

#[test]
fn turbo4_codebook_is_100_lloyd_iterations_from_equal_probability_bins() {
    const LEVELS: usize = 16;
    let sigma = 1.0 / 128f64.sqrt();
    // Equal-probability bins and their conditional means (in units of σ).
    let mut bounds: Vec<f64> = (0..=LEVELS)
        .map(|i| match i {
            0 => f64::NEG_INFINITY,
            LEVELS => f64::INFINITY,
            _ => inverse_cdf(i as f64 / LEVELS as f64),
        })
        .collect();
    let mut c = means(&bounds);
    for _ in 0..100 {
        for i in 1..LEVELS {
            bounds[i] = 0.5 * (c[i - 1] + c[i]);
        }
        c = means(&bounds);
    }
    let outer = c[LEVELS - 1] * sigma;
    assert!(
        (outer - 0.240_210_10).abs() < 5e-9,
        "outer centroid {outer:.10}, spec says 0.24021010"
    );

    let derived: Vec<i64> = c.iter().map(|&v| micro(v * sigma)).collect();
    let shipped: Vec<i64> = CENTROIDS_4.iter().map(|&v| micro(v as f64)).collect();
    assert_eq!(shipped, derived, "CENTROIDS_4 (in 1e-6 units)");

    // Midpoints of the rounded centroids, in half-micro units, rounded half away from zero.
    let derived_mid: Vec<i64> = derived
        .windows(2)
        .map(|w| {
            let twice = w[0] + w[1];
            (twice + twice.signum()) / 2
        })
        .collect();
    let shipped_mid: Vec<i64> = MIDPOINTS_4.iter().map(|&v| micro(v as f64)).collect();
    assert_eq!(shipped_mid, derived_mid, "MIDPOINTS_4 (in 1e-6 units)");
}

#[test]
fn normal_cdf_is_accurate() {
    // Known values: Φ(1) = 0.8413447460685429, Φ(-2.5) = 0.006209665325776132.
    assert!((cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    assert!((cdf(-2.5) - 0.006_209_665_325_776_132).abs() < 1e-15);
    assert!((inverse_cdf(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
}
