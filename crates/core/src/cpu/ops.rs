//! Scalar element-wise and row kernels of the CPU backend: RMS norm, RoPE, gated activations.
//! Cheap next to the matmuls, so they run on the calling thread.

use crate::backend::{GluActivation, RopeParams};
use crate::error::CoreError;

/// `out = x / sqrt(mean(x²) + eps) * w`, the mean summed in f64 like ggml.
pub fn rms_norm_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

pub fn rms_norm_row_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * scale * g;
    }
}

/// Longest rotated head dimension the stack tables hold.
pub const MAX_ROPE_DIMS: usize = 1024;

/// Rotates every head of one token's row (`n_head × head_dim` values) at position `pos`.
///
/// Angles follow ggml: `theta_i = pos · freq_scale · base^(-2i/n_rot) / freq_factor_i`, the
/// power built by repeated multiplication in f32.
pub fn rope_row(
    x: &mut [f32],
    n_head: usize,
    head_dim: usize,
    pos: u32,
    p: &RopeParams,
    freq_factors: Option<&[f32]>,
) -> Result<(), CoreError> {
    let n_rot = p.n_rot;
    if n_rot > head_dim || !n_rot.is_multiple_of(2) || n_rot > MAX_ROPE_DIMS {
        return Err(CoreError::Shape(format!(
            "rope: {n_rot} rotated dimensions for heads of {head_dim}"
        )));
    }
    let half = n_rot / 2;
    let mut cos = [0.0f32; MAX_ROPE_DIMS / 2];
    let mut sin = [0.0f32; MAX_ROPE_DIMS / 2];
    let theta_scale = p.base.powf(-2.0 / n_rot as f32);
    let mut theta_base = pos as f32;
    for i in 0..half {
        let ff = freq_factors.map_or(1.0, |f| f[i]);
        let theta = p.freq_scale * theta_base / ff;
        cos[i] = theta.cos();
        sin[i] = theta.sin();
        theta_base *= theta_scale;
    }
    for h in 0..n_head {
        let head = &mut x[h * head_dim..(h + 1) * head_dim];
        for i in 0..half {
            let (a, b) = if p.neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let x0 = head[a];
            let x1 = head[b];
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
    Ok(())
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

pub fn glu(gate: &mut [f32], up: &[f32], act: GluActivation) {
    match act {
        GluActivation::Silu => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = silu(*g) * u;
            }
        }
        GluActivation::GeluTanh => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = gelu_tanh(*g) * u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let x = [1.0f32, -2.0, 3.0, 0.5];
        let w = [1.0f32, 2.0, 0.5, 1.0];
        let mut out = [0.0f32; 4];
        rms_norm_row(&x, &w, 1e-5, &mut out);
        let ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0f64;
        let s = 1.0 / (ms + 1e-5).sqrt();
        for i in 0..4 {
            assert!((out[i] as f64 - x[i] as f64 * s * w[i] as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_rotates_pairs_by_position_angle() {
        // One head of 4 with base 100: pair 0 turns by pos rad, pair 1 by pos/10 rad.
        let p = RopeParams {
            n_rot: 4,
            base: 100.0,
            freq_scale: 1.0,
            neox: false,
        };
        let mut x = [1.0f32, 0.0, 1.0, 0.0];
        rope_row(&mut x, 1, 4, 3, &p, None).unwrap();
        let expect = [3f64.cos(), 3f64.sin(), 0.3f64.cos(), 0.3f64.sin()];
        for i in 0..4 {
            assert!((x[i] as f64 - expect[i]).abs() < 1e-5, "{x:?}");
        }
        let neox = RopeParams { neox: true, ..p };
        let mut y = [1.0f32, 1.0, 0.0, 0.0];
        rope_row(&mut y, 1, 4, 3, &neox, None).unwrap();
        let expect = [3f64.cos(), 0.3f64.cos(), 3f64.sin(), 0.3f64.sin()];
        for i in 0..4 {
            assert!((y[i] as f64 - expect[i]).abs() < 1e-5, "{y:?}");
        }
    }

    #[test]
    fn activations() {
        let mut g = [1.0f32, -1.0];
        glu(&mut g, &[2.0, 3.0], GluActivation::Silu);
        assert!((g[0] - 2.0 * 0.7310586).abs() < 1e-5);
        assert!((g[1] - 3.0 * -0.26894143).abs() < 1e-5);
        let mut g = [1.0f32];
        glu(&mut g, &[1.0], GluActivation::GeluTanh);
        assert!((g[0] - 0.841192).abs() < 1e-5);
    }
}
