//! Rotary position embedding, ggml's `rope` (normal and NeoX pairings, partial rotation,
//! frequency scaling, per-dimension frequency factors, YaRN).
//!
//! For position `p` and pair `k < n_rot / 2`: `θ_k = p · base^(-2k / n_rot) / ff_k`, formed as
//! ggml does by repeated multiplication in f32 (`θ ← θ · base^(-2/n_rot)`), then scaled by
//! `freq_scale` (with YaRN's ramp mix when `ext_factor ≠ 0`), and `cos θ · mscale`,
//! `sin θ · mscale` rotate the pair. Normal mode pairs `(2k, 2k+1)`; NeoX pairs
//! `(k, k + n_rot/2)`. Dimensions past `n_rot` are left as they are.

use super::for_row_runs;
use crate::context::Cpu;
use crate::error::CpuError;

/// How dimensions are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs `(2k, 2k + 1)` (llama, SmolLM2).
    Normal,
    /// Halves `(k, k + n_rot / 2)` (qwen2, gemma, most HF-converted models).
    Neox,
}

/// RoPE parameters, named as in ggml / GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeParams {
    /// Rotated dimensions per head (even, ≤ head_dim).
    pub n_rot: usize,
    pub mode: RopeMode,
    pub freq_base: f32,
    /// Linear position scaling (1 / scaling factor); 1 for none.
    pub freq_scale: f32,
    /// YaRN extrapolation mix (0 disables YaRN).
    pub ext_factor: f32,
    /// Magnitude scale applied to cos and sin (ggml's `attn_factor`).
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// Training context length (YaRN's correction dims); unused when `ext_factor == 0`.
    pub n_ctx_orig: usize,
}

impl RopeParams {
    /// Plain RoPE: no scaling, no YaRN.
    pub fn new(n_rot: usize, mode: RopeMode, freq_base: f32) -> RopeParams {
        RopeParams {
            n_rot,
            mode,
            freq_base,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: 0,
        }
    }
}

/// Largest `n_rot` supported (the per-token cos/sin table lives on the stack).
pub const MAX_ROPE_DIMS: usize = 1024;

/// YaRN's correction range `[low, high]` of pair indices.
fn yarn_corr_dims(p: &RopeParams) -> [f32; 2] {
    let n_dims = p.n_rot as f32;
    let corr_dim = |n_rot: f32| {
        n_dims * (p.n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * p.freq_base.ln())
    };
    let start = corr_dim(p.beta_fast).floor();
    let end = corr_dim(p.beta_slow).ceil();
    [start.max(0.0), end.min(n_dims - 1.0)]
}

/// Fills `cache[2k], cache[2k+1]` with cos and sin of pair `k` at position `pos`.
fn fill_cache(
    p: &RopeParams,
    freq_factors: Option<&[f32]>,
    corr: [f32; 2],
    pos: f32,
    cache: &mut [f32],
) {
    let theta_scale = p.freq_base.powf(-2.0 / p.n_rot as f32);
    let mut theta = pos;
    for (k, cs) in cache.chunks_exact_mut(2).enumerate() {
        let ff = freq_factors.map_or(1.0, |f| f[k]);
        let theta_extrap = theta / ff;
        let theta_interp = p.freq_scale * theta_extrap;
        let mut th = theta_interp;
        let mut mscale = p.attn_factor;
        if p.ext_factor != 0.0 {
            let y = (k as f32 - corr[0]) / (corr[1] - corr[0]).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * p.ext_factor;
            th = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0 + 0.1 * (1.0 / p.freq_scale).ln();
        }
        cs[0] = th.cos() * mscale;
        cs[1] = th.sin() * mscale;
        theta *= theta_scale;
    }
}

/// Rotates `x` (`positions.len()` tokens × `n_heads` heads × `head_dim`, row-major) in place.
/// `freq_factors`, if given, holds `n_rot / 2` divisors of the pair frequencies.
pub fn rope_inplace(
    cpu: &Cpu,
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[i32],
    params: &RopeParams,
    freq_factors: Option<&[f32]>,
) -> Result<(), CpuError> {
    const OP: &str = "rope";
    let bad = |what: String| Err(CpuError::BadArgument { op: OP, what });
    let n_rot = params.n_rot;
    if !n_rot.is_multiple_of(2) || n_rot > head_dim || n_rot > MAX_ROPE_DIMS {
        return bad(format!(
            "n_rot {n_rot} must be even, at most head_dim {head_dim} and at most {MAX_ROPE_DIMS}"
        ));
    }
    let row = n_heads * head_dim;
    crate::error::check_len(OP, "input length", x.len(), positions.len() * row)?;
    if let Some(f) = freq_factors {
        crate::error::check_len(OP, "freq_factors length", f.len(), n_rot / 2)?;
    }
    if row == 0 || n_rot == 0 {
        return Ok(());
    }
    let corr = yarn_corr_dims(params);
    for_row_runs(cpu, x, row, |first, run| {
        let mut cache = [0f32; MAX_ROPE_DIMS];
        let cache = &mut cache[..n_rot];
        for (t, tok) in run.chunks_exact_mut(row).enumerate() {
            fill_cache(
                params,
                freq_factors,
                corr,
                positions[first + t] as f32,
                cache,
            );
            for head in tok.chunks_exact_mut(head_dim) {
                rotate(head, cache, params.mode);
            }
        }
    });
    Ok(())
}

fn rotate(head: &mut [f32], cache: &[f32], mode: RopeMode) {
    let half = cache.len() / 2;
    for (k, cs) in cache.chunks_exact(2).enumerate() {
        let (i, j) = match mode {
            RopeMode::Normal => (2 * k, 2 * k + 1),
            RopeMode::Neox => (k, k + half),
        };
        let (x0, x1) = (head[i], head[j]);
        head[i] = x0 * cs[0] - x1 * cs[1];
        head[j] = x0 * cs[1] + x1 * cs[0];
    }
}
