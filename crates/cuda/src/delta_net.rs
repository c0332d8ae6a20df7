//! Launches of the Gated DeltaNet kernels (kernels/delta_net.cu): the causal conv1d + SiLU, the
//! gated delta rule, and the per-sequence state reset. The state is the planned `recurrent`
//! buffer (context memory, layout of [`DeltaNetParams`]); no workspace is needed.
//!
//! Prefill runs the recurrence token by token inside one kernel (exact for any batch); the
//! chunked delta-rule prefill is a later step.

use turbine_core::{CoreError, DeltaNetParams, DeltaNetWeights, TokenPos};

use crate::backend::CudaBackend;
use crate::buffer::{CudaBuffer, CudaWeight};
use crate::compile;
use crate::device::Arg;

/// Key head sizes with a register-resident state column (the kernel instances `dn_rule_k*`).
const KEY_HEAD_SIZES: [usize; 4] = [32, 64, 128, 256];
/// Threads per block of the conv and reset kernels.
const THREADS: u32 = 256;

fn err(msg: String) -> CoreError {
    CoreError::Shape(format!("delta_net: {msg}"))
}

fn i32_of(what: &str, v: usize) -> Result<i32, CoreError> {
    i32::try_from(v).map_err(|_| err(format!("{what} {v} exceeds 32-bit indices")))
}

/// The shapes this backend runs: head sizes, layer, sequences, state size.
fn check(
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    state: &CudaBuffer,
) -> Result<usize, CoreError> {
    if p.n_k_heads == 0 || !p.n_v_heads.is_multiple_of(p.n_k_heads) {
        return Err(err(format!(
            "{} value heads are not a multiple of {} key heads",
            p.n_v_heads, p.n_k_heads
        )));
    }
    let dk_max = KEY_HEAD_SIZES[KEY_HEAD_SIZES.len() - 1];
    let Some(&dk_inst) = KEY_HEAD_SIZES.iter().find(|&&d| d >= p.head_k_dim) else {
        return Err(err(format!(
            "key heads of {} (at most {dk_max} on CUDA)",
            p.head_k_dim
        )));
    };
    if p.head_k_dim == 0 || p.head_v_dim == 0 || p.d_conv == 0 {
        return Err(err(format!(
            "head sizes k {} v {}, conv width {}",
            p.head_k_dim, p.head_v_dim, p.d_conv
        )));
    }
    if layer >= p.n_layers {
        return Err(err(format!("layer {layer} of {}", p.n_layers)));
    }
    if let Some(r) = rows.iter().find(|r| r.seq >= p.n_seq) {
        return Err(err(format!("sequence {} of {}", r.seq, p.n_seq)));
    }
    state.f32_ptr(p.state_floats())?;
    Ok(dk_inst)
}

#[allow(clippy::too_many_arguments)]
pub fn delta_net(
    be: &CudaBackend,
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    weights: &DeltaNetWeights<'_, CudaWeight>,
    qkv: &mut CudaBuffer,
    alpha: &CudaBuffer,
    beta: &CudaBuffer,
    state: &mut CudaBuffer,
    out: &mut CudaBuffer,
) -> Result<(), CoreError> {
    let dk_inst = check(p, layer, rows, state)?;
    let n = rows.len();
    let (nk, nv, dk, dv) = (p.n_k_heads, p.n_v_heads, p.head_k_dim, p.head_v_dim);
    let ch = p.conv_channels();
    let sp = state.f32_ptr(p.state_floats())?;
    let qp = qkv.f32_ptr(n * ch)?;
    let ap = alpha.f32_ptr(n * nv)?;
    let bp = beta.f32_ptr(n * nv)?;
    let op = out.f32_ptr(n * nv * dv)?;
    let kernel = weights
        .conv1d
        .f32_vector("delta_net conv1d", ch * p.d_conv)?;
    let dt_bias = weights.dt_bias.f32_vector("delta_net dt_bias", nv)?;
    let a = weights.a.f32_vector("delta_net a", nv)?;
    let conv = be.dev.function(&compile::DELTA_NET, &[], "dn_conv")?;
    let rule = be
        .dev
        .function(&compile::DELTA_NET, &[], &format!("dn_rule_k{dk_inst}"))?;
    let (ch_i, kw_i) = (i32_of("channels", ch)?, i32_of("conv width", p.d_conv)?);
    let conv_off = p.conv_state_offset(layer, 0) as i64;
    let ssm_off = p.ssm_state_offset(layer, 0) as i64;
    be.with_rows("delta_net", rows, |r0, nr, info, seq0, _pos0| {
        be.dev.launch(
            "delta_net (conv)",
            &conv,
            (ch.div_ceil(THREADS as usize) as u32, 1, 1),
            THREADS,
            0,
            &[
                Arg::Ptr(qp + (r0 * ch * 4) as u64),
                Arg::Ptr(sp),
                Arg::Ptr(kernel),
                Arg::I32(nr as i32),
                Arg::I32(ch_i),
                Arg::I32(kw_i),
                Arg::Ptr(info),
                Arg::I32(seq0),
                Arg::I64(conv_off),
                Arg::I64(p.conv_state_floats() as i64),
            ],
        )?;
        be.dev.launch(
            "delta_net (rule)",
            &rule,
            (nv as u32, dv.div_ceil(32) as u32, 1),
            32,
            0,
            &[
                Arg::Ptr(qp + (r0 * ch * 4) as u64),
                Arg::Ptr(ap + (r0 * nv * 4) as u64),
                Arg::Ptr(bp + (r0 * nv * 4) as u64),
                Arg::Ptr(dt_bias),
                Arg::Ptr(a),
                Arg::Ptr(sp),
                Arg::Ptr(op + (r0 * nv * dv * 4) as u64),
                Arg::I32(nr as i32),
                Arg::I32(nk as i32),
                Arg::I32(nv as i32),
                Arg::I32(dk as i32),
                Arg::I32(dv as i32),
                Arg::Ptr(info),
                Arg::I32(seq0),
                Arg::I64(ssm_off),
                Arg::I64(p.ssm_state_floats() as i64),
            ],
        )
    })
}

/// Zeroes every layer's state of `seq`.
pub fn reset(
    be: &CudaBackend,
    p: &DeltaNetParams,
    state: &mut CudaBuffer,
    seq: usize,
) -> Result<(), CoreError> {
    if seq >= p.n_seq {
        return Err(err(format!("reset of sequence {seq} of {}", p.n_seq)));
    }
    let sp = state.f32_ptr(p.state_floats())?;
    if p.n_layers == 0 {
        return Ok(());
    }
    let layer_stride = p.conv_state_offset(1, 0) as i64;
    let conv_n = p.conv_state_floats();
    let ssm_n = p.ssm_state_floats();
    let blocks = (conv_n + ssm_n)
        .div_ceil(THREADS as usize)
        .clamp(1, 1 << 16);
    if p.n_layers > 65535 {
        return Err(err(format!("{} layers exceed one launch", p.n_layers)));
    }
    let f = be.dev.function(&compile::DELTA_NET, &[], "dn_reset")?;
    be.dev.launch(
        "recurrent_reset",
        &f,
        (blocks as u32, p.n_layers as u32, 1),
        THREADS,
        0,
        &[
            Arg::Ptr(sp),
            Arg::I64(layer_stride),
            Arg::I64(p.conv_state_offset(0, seq) as i64),
            Arg::I64(conv_n as i64),
            Arg::I64((p.ssm_state_offset(0, seq)) as i64),
            Arg::I64(ssm_n as i64),
        ],
    )
}
