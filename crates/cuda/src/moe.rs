//! Launches of the mixture-of-experts FFN (kernels/moe.cu): routing, expert products that read
//! only the selected experts' weights, SwiGLU and the weighted sum into the residual, all on the
//! model's stream with no host round trip.
//!
//! Up to [`VEC_MAX_ROWS`] rows (decode) take the per-pair vector kernels; more rows (prefill)
//! are grouped by expert on the device and run through the grouped tiled kernels.
//!
//! Workspace (from the plan, [`workspace_bytes`]; sections 256-byte aligned), with
//! `P = rows × n_expert_used` (row, slot) pairs: expert ids and routing weights per pair and the
//! SwiGLU activations `P × n_ff_exp`; the grouped path adds per-expert offsets and tile starts,
//! the pair order and its inverse, and the down outputs `P × n_embd`.

use turbine_core::{CoreError, MoeExperts, MoeParams, MoeShape};

use crate::backend::CudaBackend;
use crate::buffer::{weight_kernel_suffix, CudaBuffer, CudaWeight};
use crate::compile;
use crate::device::Arg;

/// Rows up to which the vector (decode) kernels run.
pub const VEC_MAX_ROWS: usize = 8;
/// Warps per block of the vector kernels and rows per block of the router.
const WARPS: usize = 4;
/// Row and output tile of the grouped kernels (kernels/moe.cu MOE_TR, MOE_TO).
const TILE_ROWS: usize = 32;
const TILE_OUT: usize = 64;
const GRID_Y_MAX: usize = 65535;

fn align(n: usize) -> usize {
    n.div_ceil(256) * 256
}

/// Byte offsets of the workspace sections for one call shape.
#[derive(Clone, Copy, Debug)]
struct Layout {
    ids: usize,
    wts: usize,
    act: usize,
    /// Grouped path only (zero-sized otherwise).
    offsets: usize,
    tile_start: usize,
    perm: usize,
    pos: usize,
    down: usize,
    total: usize,
}

impl Layout {
    fn of(s: &MoeShape) -> Layout {
        let pairs = s.rows * s.n_expert_used;
        let grouped = s.rows > VEC_MAX_ROWS;
        let mut at = 0;
        let mut take = |bytes: usize| {
            let start = at;
            at += align(bytes);
            start
        };
        let ids = take(pairs * 4);
        let wts = take(pairs * 4);
        let act = take(pairs * s.n_ff_exp * 4);
        let g = |n: usize| if grouped { n } else { 0 };
        let offsets = take(g((s.n_expert + 1) * 4));
        let tile_start = take(g((s.n_expert + 1) * 4));
        let perm = take(g(pairs * 4));
        let pos = take(g(pairs * 4));
        let down = take(g(pairs * s.n_embd * 4));
        Layout {
            ids,
            wts,
            act,
            offsets,
            tile_start,
            perm,
            pos,
            down,
            total: at,
        }
    }
}

/// Workspace bytes of one call of `shape`.
pub fn workspace_bytes(shape: &MoeShape) -> u64 {
    Layout::of(shape).total as u64
}

fn err(msg: String) -> CoreError {
    CoreError::Shape(format!("moe_ffn: {msg}"))
}

fn i32_of(what: &str, v: usize) -> Result<i32, CoreError> {
    i32::try_from(v).map_err(|_| err(format!("{what} {v} exceeds 32-bit indices")))
}

/// Checks that `w` is a stack `[k, n, n_expert]` and returns its kernel suffix.
fn expert_stack(
    w: &CudaWeight,
    k: usize,
    n: usize,
    n_expert: usize,
) -> Result<&'static str, CoreError> {
    if w.dims != [k as u64, n as u64, n_expert as u64] {
        return Err(err(format!(
            "{}: shape {:?} is not [{k}, {n}, {n_expert}]",
            w.name, w.dims
        )));
    }
    weight_kernel_suffix(w.ty).ok_or(CoreError::Unsupported {
        op: "moe_ffn",
        ty: w.ty,
        backend: "CUDA",
    })
}

#[allow(clippy::too_many_arguments)]
pub fn moe_ffn(
    be: &CudaBackend,
    x: &CudaBuffer,
    rows: usize,
    logits: &CudaBuffer,
    experts: &MoeExperts<'_, CudaWeight>,
    p: &MoeParams,
    out: &mut CudaBuffer,
    ws: &mut CudaBuffer,
) -> Result<(), CoreError> {
    let dev = &be.dev;
    let (k, ne, ff) = (p.n_expert_used, p.n_expert, p.n_ff_exp);
    if k == 0 || k > ne {
        return Err(err(format!("top-{k} of {ne} experts")));
    }
    let n_embd = experts.gate.row_len;
    let g_sfx = expert_stack(experts.gate, n_embd, ff, ne)?;
    let u_sfx = expert_stack(experts.up, n_embd, ff, ne)?;
    let d_sfx = expert_stack(experts.down, ff, n_embd, ne)?;
    if experts.gate.ty != experts.up.ty {
        return Err(err(format!(
            "gate ({}) and up ({}) experts differ in type",
            experts.gate.ty.name(),
            experts.up.ty.name()
        )));
    }
    debug_assert_eq!(g_sfx, u_sfx);
    let lay = Layout::of(&p.shape(rows, n_embd));
    let ws_ptr = ws.f32_ptr(lay.total / 4)?;
    let xp = x.f32_ptr(rows * n_embd)?;
    let lp = logits.f32_ptr(rows * ne)?;
    let op = out.f32_ptr(rows * n_embd)?;
    if rows == 0 {
        return Ok(());
    }
    let pairs = rows * k;
    let (rows_i, k_i, ne_i, ff_i, e_i) = (
        i32_of("rows", rows)?,
        i32_of("top-k", k)?,
        i32_of("experts", ne)?,
        i32_of("n_ff_exp", ff)?,
        i32_of("n_embd", n_embd)?,
    );
    i32_of("pairs", pairs * ff.max(n_embd))?;
    let at = |off: usize| ws_ptr + off as u64;
    let (ids, wts, act) = (at(lay.ids), at(lay.wts), at(lay.act));

    let route = dev.function(&compile::MOE, &[], "moe_route")?;
    dev.launch(
        "moe_ffn (route)",
        &route,
        (rows.div_ceil(WARPS) as u32, 1, 1),
        (32 * WARPS) as u32,
        0,
        &[
            Arg::Ptr(lp),
            Arg::I32(rows_i),
            Arg::I32(ne_i),
            Arg::I32(k_i),
            Arg::I32(p.norm_topk as i32),
            Arg::F32(p.weights_scale),
            Arg::Ptr(ids),
            Arg::Ptr(wts),
        ],
    )?;

    if rows <= VEC_MAX_ROWS {
        let f = dev.function(&compile::MOE, &[], &format!("moe_gate_up_vec_{g_sfx}"))?;
        dev.launch(
            "moe_ffn (gate/up)",
            &f,
            (ff.div_ceil(WARPS) as u32, pairs as u32, 1),
            (32 * WARPS) as u32,
            0,
            &[
                Arg::Ptr(experts.gate.ptr()),
                Arg::Ptr(experts.up.ptr()),
                Arg::Ptr(xp),
                Arg::Ptr(ids),
                Arg::I32(k_i),
                Arg::Ptr(act),
                Arg::I32(e_i),
                Arg::I32(ff_i),
                Arg::I64(experts.gate.row_bytes as i64),
            ],
        )?;
        let f = dev.function(&compile::MOE, &[], &format!("moe_down_vec_{d_sfx}"))?;
        return dev.launch(
            "moe_ffn (down)",
            &f,
            (n_embd.div_ceil(WARPS) as u32, rows as u32, 1),
            (32 * WARPS) as u32,
            0,
            &[
                Arg::Ptr(experts.down.ptr()),
                Arg::Ptr(act),
                Arg::Ptr(ids),
                Arg::Ptr(wts),
                Arg::I32(k_i),
                Arg::Ptr(op),
                Arg::I32(ff_i),
                Arg::I32(e_i),
                Arg::I64(experts.down.row_bytes as i64),
            ],
        );
    }

    // Grouped: every expert's row tiles fit in ceil(P / TILE_ROWS) + n_expert tiles.
    let (offsets, tiles, perm, pos, down) = (
        at(lay.offsets),
        at(lay.tile_start),
        at(lay.perm),
        at(lay.pos),
        at(lay.down),
    );
    let max_tiles = pairs.div_ceil(TILE_ROWS) + ne;
    if max_tiles > GRID_Y_MAX {
        return Err(err(format!(
            "{pairs} (row, expert) pairs over {ne} experts exceed one launch"
        )));
    }
    let group = dev.function(&compile::MOE, &[], "moe_group")?;
    dev.launch(
        "moe_ffn (group)",
        &group,
        (1, 1, 1),
        256,
        0,
        &[
            Arg::Ptr(ids),
            Arg::I32(i32_of("pairs", pairs)?),
            Arg::I32(ne_i),
            Arg::Ptr(offsets),
            Arg::Ptr(tiles),
            Arg::Ptr(perm),
            Arg::Ptr(pos),
        ],
    )?;
    let f = dev.function(&compile::MOE, &[], &format!("moe_gate_up_grouped_{g_sfx}"))?;
    dev.launch(
        "moe_ffn (gate/up)",
        &f,
        (ff.div_ceil(TILE_OUT) as u32, max_tiles as u32, 1),
        256,
        0,
        &[
            Arg::Ptr(experts.gate.ptr()),
            Arg::Ptr(experts.up.ptr()),
            Arg::Ptr(xp),
            Arg::Ptr(perm),
            Arg::I32(k_i),
            Arg::Ptr(offsets),
            Arg::Ptr(tiles),
            Arg::I32(ne_i),
            Arg::Ptr(act),
            Arg::I32(e_i),
            Arg::I32(ff_i),
            Arg::I64(experts.gate.row_bytes as i64),
        ],
    )?;
    let f = dev.function(&compile::MOE, &[], &format!("moe_down_grouped_{d_sfx}"))?;
    dev.launch(
        "moe_ffn (down)",
        &f,
        (n_embd.div_ceil(TILE_OUT) as u32, max_tiles as u32, 1),
        256,
        0,
        &[
            Arg::Ptr(experts.down.ptr()),
            Arg::Ptr(act),
            Arg::Ptr(offsets),
            Arg::Ptr(tiles),
            Arg::I32(ne_i),
            Arg::Ptr(down),
            Arg::I32(ff_i),
            Arg::I32(e_i),
            Arg::I64(experts.down.row_bytes as i64),
        ],
    )?;
    let combine = dev.function(&compile::MOE, &[], "moe_combine")?;
    let blocks = (rows * n_embd).div_ceil(256).clamp(1, 1 << 16);
    dev.launch(
        "moe_ffn (combine)",
        &combine,
        (blocks as u32, 1, 1),
        256,
        0,
        &[
            Arg::Ptr(down),
            Arg::Ptr(pos),
            Arg::Ptr(wts),
            Arg::I32(rows_i),
            Arg::I32(k_i),
            Arg::I32(e_i),
            Arg::Ptr(op),
        ],
    )
}
