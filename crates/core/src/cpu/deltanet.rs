//! Gated DeltaNet (linear attention) on the CPU: the causal depthwise conv1d with its rolling
//! state, and the gated delta rule with its per-head `d_k × d_v` state.
//!
//! The conv runs token by token in row order. The delta rule walks the rows as runs of
//! consecutive rows of one sequence (exact for any batch: rows of several sequences
//! interleaved, prompt chunks of any length): a run of at least [`MIN_CHUNKED_ROWS`] rows takes
//! the chunked (WY / UT-transform) form of `deltanet_chunked`, which reads and writes the head
//! state once per 64 rows and does most of its work as small matrix products; shorter runs
//! (decode) take the row-by-row recurrence. Both give the same result up to float rounding.
//! Work is split over the thread pool by conv channels and by value heads, which never share
//! state.

use std::sync::Mutex;

use cpu::{split_range, Cpu, KernelPath};

use super::deltanet_chunked::{ChunkWorkspace, CHUNK};

use crate::backend::TokenPos;
use crate::error::CoreError;
use crate::hybrid::DeltaNetParams;

/// Runs of at least this many rows of one sequence take the chunked form
/// (`deltanet_chunked`); shorter ones (decode, small batches) the row-by-row recurrence.
/// Measured (callgrind, 32 value heads of 128, AVX2): the chunked form costs 44% fewer
/// instructions than the recurrence for two rows and 54% fewer for four; one row (decode)
/// stays on the recurrence, bit for bit as before.
pub const MIN_CHUNKED_ROWS: usize = 2;

/// Chunk workspaces of the thread indices of one pool, owned by the backend: all of them are
/// made (a few hundred KiB each for heads of 128) the first time any run takes the chunked
/// form, and again only if the head sizes change, so later prefill passes allocate nothing
/// whichever OS thread serves which index. Decode never makes them.
#[derive(Default)]
pub struct ChunkScratch(Mutex<Vec<Mutex<ChunkWorkspace>>>);

/// Largest key head the kernel keeps on the stack.
pub const MAX_HEAD_K: usize = 512;

fn err(msg: String) -> CoreError {
    CoreError::Kernel(format!("delta_net: {msg}"))
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: handed to the threads of one `ThreadPool::run`; each thread touches only its own
// channels / heads (disjoint element sets), and `run` returns after all threads finished.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn softplus(x: f32) -> f32 {
    // log(1 + e^x), without overflow for large x.
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Checks the shapes shared by the conv and the delta rule.
pub fn check(
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    state_len: usize,
) -> Result<(), CoreError> {
    if p.n_k_heads == 0 || !p.n_v_heads.is_multiple_of(p.n_k_heads) {
        return Err(err(format!(
            "{} value heads are not a multiple of {} key heads",
            p.n_v_heads, p.n_k_heads
        )));
    }
    if p.head_k_dim == 0
        || p.head_k_dim > MAX_HEAD_K
        || p.head_v_dim == 0
        || p.head_v_dim > MAX_HEAD_K
        || p.d_conv == 0
    {
        return Err(err(format!(
            "head sizes k {} v {} (each at most {MAX_HEAD_K}), conv width {}",
            p.head_k_dim, p.head_v_dim, p.d_conv
        )));
    }
    if layer >= p.n_layers {
        return Err(err(format!("layer {layer} of {}", p.n_layers)));
    }
    if let Some(r) = rows.iter().find(|r| r.seq >= p.n_seq) {
        return Err(err(format!("sequence {} of {}", r.seq, p.n_seq)));
    }
    if state_len < p.state_floats() {
        return Err(err(format!(
            "state buffer of {state_len} floats, need {}",
            p.state_floats()
        )));
    }
    Ok(())
}

/// Causal depthwise conv1d + SiLU over `qkv` (`rows × channels`, in place). `kernel` is
/// `[channels][d_conv]` (ggml `[d_conv, channels]`); the conv state of each sequence holds its
/// last `d_conv − 1` inputs (`[d_conv − 1][channels]`, oldest first) and is advanced per row.
pub fn conv(
    cpu: &Cpu,
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    kernel: &[f32],
    qkv: &mut [f32],
    state: &mut [f32],
) -> Result<(), CoreError> {
    let ch = p.conv_channels();
    let kw = p.d_conv;
    if kernel.len() != ch * kw || qkv.len() < rows.len() * ch {
        return Err(err(format!(
            "conv kernel of {} floats (need {}) or input of {} (need {})",
            kernel.len(),
            ch * kw,
            qkv.len(),
            rows.len() * ch
        )));
    }
    let x = SendPtr(qkv.as_mut_ptr());
    let st = SendPtr(state.as_mut_ptr());
    cpu.pool().run(|idx, n| {
        let cols = split_range(ch, idx, n, 16);
        for (r, tp) in rows.iter().enumerate() {
            let base = p.conv_state_offset(layer, tp.seq);
            for c in cols.clone() {
                let w = &kernel[c * kw..(c + 1) * kw];
                // SAFETY: channel c of row r and of this sequence's state belong to this thread
                // only (columns split by `split_range`); offsets are within the checked lengths.
                unsafe {
                    let xv = x.get().add(r * ch + c);
                    let input = *xv;
                    let mut acc = w[kw - 1] * input;
                    for (j, &wj) in w[..kw - 1].iter().enumerate() {
                        acc += wj * *st.get().add(base + j * ch + c);
                    }
                    // Shift the window: drop the oldest input, append this one.
                    for j in 0..kw.saturating_sub(2) {
                        *st.get().add(base + j * ch + c) = *st.get().add(base + (j + 1) * ch + c);
                    }
                    if kw >= 2 {
                        *st.get().add(base + (kw - 2) * ch + c) = input;
                    }
                    *xv = silu(acc);
                }
            }
        }
    });
    Ok(())
}

/// The gated delta rule over the conv output `qkv` (`rows × [q | k | v]`), writing `out`
/// (`rows × n_v_heads × head_v_dim`) and advancing each sequence's state.
#[allow(clippy::too_many_arguments)]
pub fn delta_rule(
    cpu: &Cpu,
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    qkv: &[f32],
    alpha: &[f32],
    beta: &[f32],
    dt_bias: &[f32],
    a: &[f32],
    state: &mut [f32],
    out: &mut [f32],
    scratch: &ChunkScratch,
) -> Result<(), CoreError> {
    delta_rule_runs(
        cpu,
        scratch,
        p,
        layer,
        rows,
        qkv,
        [alpha, beta, dt_bias, a],
        state,
        out,
        MIN_CHUNKED_ROWS,
    )
}

/// [`delta_rule`] with the run length from which the chunked form is used (tests and
/// measurements compare the two forms by moving it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn delta_rule_runs(
    cpu: &Cpu,
    scratch: &ChunkScratch,
    p: &DeltaNetParams,
    layer: usize,
    rows: &[TokenPos],
    qkv: &[f32],
    [alpha, beta, dt_bias, a]: [&[f32]; 4],
    state: &mut [f32],
    out: &mut [f32],
    min_chunked_rows: usize,
) -> Result<(), CoreError> {
    let (nk, nv, dk, dv) = (p.n_k_heads, p.n_v_heads, p.head_k_dim, p.head_v_dim);
    let ch = p.conv_channels();
    let n = rows.len();
    if alpha.len() < n * nv || beta.len() < n * nv || out.len() < n * nv * dv {
        return Err(err("alpha, beta or output buffer too small".into()));
    }
    if dt_bias.len() != nv || a.len() != nv {
        return Err(err(format!(
            "dt_bias has {} and a has {} values, need {nv}",
            dt_bias.len(),
            a.len()
        )));
    }
    let q_scale = 1.0 / (dk as f32).sqrt();
    let avx2 = matches!(cpu.path(), KernelPath::Avx2 | KernelPath::Avx512);
    let chunked = {
        let mut r0 = 0;
        let mut any = false;
        while r0 < n && !any {
            let run = rows[r0..]
                .iter()
                .take_while(|tp| tp.seq == rows[r0].seq)
                .count();
            any = run >= min_chunked_rows;
            r0 += run;
        }
        any
    };
    let mut workspaces = scratch.0.lock().unwrap_or_else(|e| e.into_inner());
    let fits = |w: &Mutex<ChunkWorkspace>| w.lock().map(|w| w.fits(dk, dv)).unwrap_or(false);
    if chunked && (workspaces.len() < cpu.n_threads() || !workspaces.iter().all(fits)) {
        *workspaces = (0..cpu.n_threads())
            .map(|_| Mutex::new(ChunkWorkspace::new(dk, dv)))
            .collect();
    }
    let workspaces = &*workspaces;
    let o = SendPtr(out.as_mut_ptr());
    let st = SendPtr(state.as_mut_ptr());
    cpu.pool().run(|idx, nt| {
        let mut qn = [0.0f32; MAX_HEAD_K];
        let mut kn = [0.0f32; MAX_HEAD_K];
        // This thread index's chunk workspace (see `ChunkScratch`); made here only if the pool
        // has more threads than it reports.
        let mut own = None;
        let mut guard = workspaces
            .get(idx)
            .filter(|_| chunked)
            .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()));
        for h in split_range(nv, idx, nt, 1) {
            let kh = h % nk;
            // The inputs of row r for head h: unit key, scaled unit query, value, log-decay, β.
            let prepare = |r: usize, kn: &mut [f32], qn: &mut [f32], vo: &mut [f32]| {
                let row = &qkv[r * ch..(r + 1) * ch];
                let q = &row[kh * dk..(kh + 1) * dk];
                let k = &row[nk * dk + kh * dk..nk * dk + (kh + 1) * dk];
                let v = &row[2 * nk * dk + h * dv..2 * nk * dk + (h + 1) * dv];
                // L2 norms as transformers computes them: x / sqrt(Σx² + 1e-6).
                let qs = 1.0 / (q.iter().map(|x| x * x).sum::<f32>() + 1e-6).sqrt();
                let ks = 1.0 / (k.iter().map(|x| x * x).sum::<f32>() + 1e-6).sqrt();
                for i in 0..dk {
                    qn[i] = q[i] * qs * q_scale;
                    kn[i] = k[i] * ks;
                }
                vo.copy_from_slice(v);
                let g = a[h] * softplus(alpha[r * nv + h] + dt_bias[h]);
                (g, sigmoid(beta[r * nv + h]))
            };
            let mut r0 = 0;
            while r0 < n {
                // A run of consecutive rows of one sequence: its state advances in row order.
                let seq = rows[r0].seq;
                let r1 = r0 + rows[r0..].iter().take_while(|tp| tp.seq == seq).count();
                let base = p.ssm_state_offset(layer, seq) + h * dk * dv;
                // SAFETY: head h's state of every sequence and head h's output columns belong
                // to this thread only (heads split by `split_range`); all offsets lie within
                // the lengths checked by `check` and above.
                let s = unsafe { std::slice::from_raw_parts_mut(st.get().add(base), dk * dv) };
                if r1 - r0 >= min_chunked_rows {
                    let w = match guard.as_deref_mut() {
                        Some(w) => w,
                        None => own.get_or_insert_with(|| ChunkWorkspace::new(dk, dv)),
                    };
                    for c0 in (r0..r1).step_by(CHUNK) {
                        let len = CHUNK.min(r1 - c0);
                        w.begin(len);
                        for t in 0..len {
                            let (kt, qt, vt) = w.row_mut(t);
                            let (g, b) = prepare(c0 + t, kt, qt, vt);
                            w.set_gates(t, g, b);
                        }
                        w.run(s, avx2);
                        for t in 0..len {
                            // SAFETY: as above (row c0 + t, head h).
                            let out_row = unsafe {
                                std::slice::from_raw_parts_mut(
                                    o.get().add(((c0 + t) * nv + h) * dv),
                                    dv,
                                )
                            };
                            out_row.copy_from_slice(w.out_row(t));
                        }
                    }
                } else {
                    let mut vbuf = [0.0f32; MAX_HEAD_K];
                    for r in r0..r1 {
                        let (g, b) = prepare(r, &mut kn[..dk], &mut qn[..dk], &mut vbuf[..dv]);
                        // SAFETY: as above (row r, head h).
                        let out_row = unsafe {
                            std::slice::from_raw_parts_mut(o.get().add((r * nv + h) * dv), dv)
                        };
                        recurrent_row(s, &kn[..dk], &qn[..dk], &vbuf[..dv], g.exp(), b, out_row);
                    }
                }
                r0 = r1;
            }
        }
    });
    Ok(())
}

/// One row of the delta rule on head state `s` (`d_k × d_v`): decay, delta update, output.
fn recurrent_row(
    s: &mut [f32],
    kn: &[f32],
    qn: &[f32],
    v: &[f32],
    decay: f32,
    b: f32,
    out_row: &mut [f32],
) {
    let (dk, dv) = (kn.len(), v.len());
    // S ← e^g S, and kv_mem = Sᵀ k (after the decay).
    out_row.fill(0.0);
    for i in 0..dk {
        let srow = &mut s[i * dv..(i + 1) * dv];
        for (sv, m) in srow.iter_mut().zip(out_row.iter_mut()) {
            *sv *= decay;
            *m += *sv * kn[i];
        }
    }
    // delta = β (v − kv_mem), kept in out_row for the update.
    for (m, &vv) in out_row.iter_mut().zip(v) {
        *m = b * (vv - *m);
    }
    // S ← S + k deltaᵀ, then o = Sᵀ q (accumulated after the update).
    let mut acc = [0.0f32; MAX_HEAD_K];
    let accv = &mut acc[..dv];
    for i in 0..dk {
        let srow = &mut s[i * dv..(i + 1) * dv];
        for ((sv, &dl), ac) in srow.iter_mut().zip(out_row.iter()).zip(accv.iter_mut()) {
            *sv += kn[i] * dl;
            *ac += *sv * qn[i];
        }
    }
    out_row.copy_from_slice(accv);
}

/// Zeroes every layer's state of `seq`.
pub fn reset(p: &DeltaNetParams, state: &mut [f32], seq: usize) -> Result<(), CoreError> {
    if seq >= p.n_seq || state.len() < p.state_floats() {
        return Err(err(format!("reset of sequence {seq} of {}", p.n_seq)));
    }
    for layer in 0..p.n_layers {
        let c = p.conv_state_offset(layer, seq);
        state[c..c + p.conv_state_floats()].fill(0.0);
        let s = p.ssm_state_offset(layer, seq);
        state[s..s + p.ssm_state_floats()].fill(0.0);
    }
    Ok(())
}

#[cfg(test)]
#[path = "deltanet_tests.rs"]
mod tests;
