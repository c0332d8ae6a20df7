//! [`CudaBackend`]: the [`Backend`] trait on one CUDA device.
//!
//! Every operation is one or two kernel launches on the model's stream; nothing waits for the
//! device except [`Backend::read`] (logits to the host). Buffers, weights and the KV cache are
//! plain allocations made only through the planned calls and recorded in the allocation log.
//!
//! Runtime memory outside the plan: the CUDA context, the loaded kernels, and one fixed
//! staging buffer of [`STAGING_U32`] values for the token ids and positions the trait passes as
//! host slices (see the crate documentation for the trait change that would remove it).

use std::path::PathBuf;
use std::sync::Mutex;

use formats::GgmlType;
use turbine_core::backend::unfused;
use turbine_core::{
    AllocationLog, AttnParams, AttnShape, Backend, BufferSpec, CoreError, DeltaNetParams,
    DeltaNetWeights, DeviceMemory, GluActivation, HostBytes, KvSpec, MoeExperts, MoeParams,
    MoeShape, Role, RopeParams, TokenPos, WeightShape,
};

use crate::attention;
use crate::buffer::{kv_kernel_suffix, weight_kernel_suffix, CudaBuffer, CudaWeight};
use crate::compile;
use crate::delta_net;
use crate::device::{cuda_err, Arg, Device, DeviceAlloc};
use crate::gated;
use crate::gemm;
use crate::kv::{self, CudaKvCache};
use crate::matmul;
use crate::moe;

/// u32 values of the staging buffer (64 KiB).
pub const STAGING_U32: usize = 16384;
/// Threads per block of the element-wise kernels.
const EW_THREADS: u32 = 256;

/// Construction options.
#[derive(Clone, Debug, Default)]
pub struct CudaConfig {
    pub ordinal: usize,
    /// Where compiled kernels are cached; `None` compiles every run.
    pub cache_dir: Option<PathBuf>,
}

impl CudaConfig {
    /// Device `ordinal`, kernels cached in [`compile::default_cache_dir`].
    pub fn device(ordinal: usize) -> CudaConfig {
        CudaConfig {
            ordinal,
            cache_dir: compile::default_cache_dir(),
        }
    }
}

pub struct CudaBackend {
    /// cuBLAS for prefill products; declared first so it is destroyed before the context.
    blas: Option<gemm::Blas>,
    pub(crate) dev: Device,
    device_name: String,
    log: AllocationLog,
    /// Host ids/positions go through here; the lock keeps an upload and the kernel that reads
    /// it together when several threads share the backend.
    staging: Mutex<DeviceAlloc>,
}

fn shape_err(op: &str, detail: String) -> CoreError {
    CoreError::Shape(format!("{op}: {detail}"))
}

fn ew_grid(n: usize) -> (u32, u32, u32) {
    let blocks = n.div_ceil(EW_THREADS as usize).clamp(1, 1 << 20);
    (blocks as u32, 1, 1)
}

impl CudaBackend {
    pub fn new(cfg: CudaConfig) -> Result<CudaBackend, CoreError> {
        let dev = Device::new(cfg.ordinal, cfg.cache_dir)?;
        let staging = DeviceAlloc::new(&dev, "cuda.staging", (STAGING_U32 * 4) as u64)?;
        // TURBINE_CUDA_NO_CUBLAS=1 keeps every product on turbine's own kernels (A/B checks).
        let blas = if std::env::var_os("TURBINE_CUDA_NO_CUBLAS").is_some_and(|v| v == "1") {
            None
        } else {
            gemm::Blas::new(&dev)?
        };
        Ok(CudaBackend {
            blas,
            device_name: format!("CUDA{}", cfg.ordinal),
            dev,
            log: AllocationLog::new(),
            staging: Mutex::new(staging),
        })
    }

    /// True where `matmul` of a `ty` weight with inner dimension `k` over `rows` rows rounds
    /// its operands to f16 (the cuBLAS tensor-core path), so a reference must do the same.
    pub fn matmul_rounds_to_f16(&self, ty: GgmlType, k: usize, rows: usize) -> bool {
        self.uses_blas(ty, k, rows)
    }

    /// `rows` RMS-normed rows of `n` from `xp` times `wp` into `op` (may equal `xp`).
    fn rms_norm_rows(
        &self,
        xp: u64,
        wp: u64,
        op: u64,
        rows: usize,
        n: usize,
        eps: f32,
    ) -> Result<(), CoreError> {
        let f = self.dev.function(&compile::NORM, &[], "rms_norm")?;
        self.dev.launch(
            "rms_norm",
            &f,
            (rows as u32, 1, 1),
            256,
            0,
            &[
                Arg::Ptr(xp),
                Arg::Ptr(wp),
                Arg::Ptr(op),
                Arg::I32(n as i32),
                Arg::F32(eps),
            ],
        )
    }

    /// Runs `launch(positions_ptr, pos0)`: consecutive positions as their first (null
    /// pointer), scattered ones staged on the device.
    fn with_positions<F>(&self, op: &str, positions: &[i32], launch: F) -> Result<(), CoreError>
    where
        F: Fn(u64, i32) -> Result<(), CoreError>,
    {
        let contiguous = positions
            .windows(2)
            .all(|w| w[0].checked_add(1) == Some(w[1]));
        match positions.first() {
            None => Ok(()),
            Some(&p0) if contiguous => launch(0, p0),
            Some(_) => {
                if positions.len() > STAGING_U32 {
                    return Err(shape_err(
                        op,
                        format!(
                            "{} scattered positions exceed {STAGING_U32}",
                            positions.len()
                        ),
                    ));
                }
                let as_u32: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
                self.with_staged(op, &as_u32, |_, _, staged| launch(staged, 0))
            }
        }
    }

    /// Products of more rows than the matvec takes go to cuBLAS where it is loaded.
    fn uses_blas(&self, ty: GgmlType, k: usize, rows: usize) -> bool {
        self.blas.is_some() && rows > matmul::MATVEC_MAX_ROWS && gemm::serves(ty, k)
    }

    /// The device's name (`NVIDIA H100 80GB HBM3`).
    pub fn device_model(&self) -> &str {
        &self.dev.name
    }

    /// Compute capability.
    pub fn arch(&self) -> (i32, i32) {
        self.dev.arch
    }

    /// Synchronize after every launch, so a kernel fault names its operation (slow; for checks).
    pub fn set_sync_each_op(&self, on: bool) {
        self.dev.set_sync_each_op(on);
    }

    pub fn synchronize(&self) -> Result<(), CoreError> {
        self.dev.synchronize("synchronize")
    }

    /// Copies `data` into the start of `buf` (inputs of tests and checks).
    pub fn write_f32(&self, buf: &mut CudaBuffer, data: &[f32]) -> Result<(), CoreError> {
        let ptr = buf.f32_ptr(data.len())?;
        self.dev.upload("write", ptr, data)
    }

    /// The packed bytes of one cached head (`v = false`: K) at `pos` of `seq` in `layer`.
    pub fn kv_cell_bytes(
        &self,
        kv: &CudaKvCache,
        layer: usize,
        seq: usize,
        head: usize,
        pos: usize,
        v: bool,
    ) -> Result<Vec<u8>, CoreError> {
        let (addr, hb) = kv.cell_addr(layer, seq, head, pos, v)?;
        let mut out = vec![0u8; hb];
        self.dev.download("read KV cell", &mut out, addr)?;
        Ok(out)
    }

    /// Uploads `values` to the staging buffer and runs `f` with its address, chunk by chunk
    /// (`f(offset, len, address)`).
    fn with_staged(
        &self,
        op: &str,
        values: &[u32],
        mut f: impl FnMut(usize, usize, u64) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let staging = self
            .staging
            .lock()
            .map_err(|_| cuda_err(op, "staging lock poisoned"))?;
        for (i, chunk) in values.chunks(STAGING_U32).enumerate() {
            self.dev.upload(op, staging.ptr(), chunk)?;
            f(i * STAGING_U32, chunk.len(), staging.ptr())?;
        }
        Ok(())
    }

    /// Runs `f(first_row, n_rows, rowinfo, seq0, pos0)` over `rows`: in one call with a null
    /// `rowinfo` when the rows are consecutive positions of one sequence (every forward pass of
    /// one sequence), else chunk by chunk with the (sequence, position) pairs staged on the
    /// device.
    pub(crate) fn with_rows(
        &self,
        op: &str,
        rows: &[TokenPos],
        mut f: impl FnMut(usize, usize, u64, i32, i32) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        if rows
            .iter()
            .any(|t| t.seq > i32::MAX as usize || t.pos > i32::MAX as usize)
        {
            return Err(shape_err(op, "sequence or position beyond 32 bits".into()));
        }
        let contiguous = rows
            .iter()
            .enumerate()
            .all(|(i, t)| t.seq == first.seq && t.pos == first.pos + i);
        if contiguous && first.pos + rows.len() <= i32::MAX as usize {
            return f(0, rows.len(), 0, first.seq as i32, first.pos as i32);
        }
        let pairs: Vec<u32> = rows
            .iter()
            .flat_map(|t| [t.seq as u32, t.pos as u32])
            .collect();
        self.with_staged(op, &pairs, |off, len, staged| {
            f(off / 2, len / 2, staged, 0, 0)
        })
    }

    fn elementwise(&self, func: &str, args: &[Arg], n: usize) -> Result<(), CoreError> {
        let f = self.dev.function(&compile::ELEMENTWISE, &[], func)?;
        self.dev.launch(func, &f, ew_grid(n), EW_THREADS, 0, args)
    }
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer;
    type Weight = CudaWeight;
    type KvCache = CudaKvCache;

    fn device(&self) -> &str {
        &self.device_name
    }

    fn label(&self) -> String {
        format!("{} ({})", self.device_name, self.dev.name)
    }

    fn memory(&self) -> Option<DeviceMemory> {
        let (free, total) = self.dev.mem_info().ok()?;
        Some(DeviceMemory {
            total: total as u64,
            free: free as u64,
        })
    }

    fn allocation_log(&self) -> &AllocationLog {
        &self.log
    }

    fn profile_report(&self) -> Option<String> {
        self.dev.profile_report()
    }

    fn host_visible(&self) -> bool {
        false
    }

    fn weight_bytes(&self, ty: GgmlType, n_elements: u64) -> u64 {
        // The file's bytes, uploaded as they are.
        ty.bytes_for(n_elements).unwrap_or(0)
    }

    fn matmul_scratch_bytes(&self, ty: GgmlType, k: usize, rows: usize) -> u64 {
        // The matvec and tiled kernels read the quantized weights in place; the cuBLAS path
        // needs f16 operands (gemm::scratch_bytes).
        if self.uses_blas(ty, k, rows) {
            gemm::scratch_bytes(k, rows)
        } else {
            0
        }
    }

    fn kv_cache_bytes(&self, spec: &KvSpec) -> Result<u64, CoreError> {
        kv::cache_bytes(spec)
    }

    fn attention_workspace_bytes(
        &self,
        type_k: GgmlType,
        type_v: GgmlType,
        shape: &AttnShape,
    ) -> Result<u64, CoreError> {
        kv::check_type(type_k)?;
        kv::check_type(type_v)?;
        Ok(attention::workspace_bytes(type_v, shape))
    }

    fn alloc(&self, spec: &BufferSpec) -> Result<CudaBuffer, CoreError> {
        let mem = DeviceAlloc::new(&self.dev, &spec.name, spec.bytes)?;
        self.log
            .record(&spec.name, &self.device_name, spec.role, spec.bytes);
        Ok(CudaBuffer {
            name: spec.name.clone(),
            mem,
        })
    }

    fn alloc_kv(&self, spec: &BufferSpec, kv: &KvSpec) -> Result<CudaKvCache, CoreError> {
        CudaKvCache::new(&self.dev, &spec.name, kv, |bytes| {
            self.log
                .record(&spec.name, &self.device_name, spec.role, bytes)
        })
    }

    fn load_weight(
        &self,
        plan_name: &str,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: HostBytes,
    ) -> Result<CudaWeight, CoreError> {
        let shape = WeightShape::of(name, ty, dims, data.len())?;
        let total = shape.total;
        let mem = DeviceAlloc::new(&self.dev, name, total)?;
        self.dev
            .upload(&format!("upload {name}"), mem.ptr(), data.as_slice())?;
        self.log
            .record(plan_name, &self.device_name, Role::Model, total);
        Ok(CudaWeight {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            row_len: shape.row_len,
            n_rows: shape.n_rows,
            row_bytes: shape.row_bytes,
            mem,
        })
    }

    fn get_rows(
        &self,
        table: &CudaWeight,
        ids: &[u32],
        out: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        let n = table.row_len;
        let out_ptr = out.f32_ptr(ids.len() * n)?;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= table.n_rows) {
            return Err(shape_err(
                "get_rows",
                format!("token id {bad} outside the vocabulary of {}", table.n_rows),
            ));
        }
        let suffix = weight_kernel_suffix(table.ty).ok_or(CoreError::Unsupported {
            op: "get_rows",
            ty: table.ty,
            backend: "CUDA",
        })?;
        let func = format!("get_rows_{suffix}");
        let f = self.dev.function(&compile::GET_ROWS, &[], &func)?;
        self.with_staged("get_rows", ids, |off, len, staged| {
            self.dev.launch(
                "get_rows",
                &f,
                (len as u32, 1, 1),
                256,
                0,
                &[
                    Arg::Ptr(table.ptr()),
                    Arg::Ptr(staged),
                    Arg::Ptr(out_ptr + (off * n * 4) as u64),
                    Arg::I32(n as i32),
                    Arg::I64(table.row_bytes as i64),
                ],
            )
        })
    }

    fn rms_norm(
        &self,
        x: &CudaBuffer,
        x_row0: usize,
        rows: usize,
        n: usize,
        w: &CudaWeight,
        eps: f32,
        out: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        let wp = w.f32_vector("rms_norm", n)?;
        let xp = x.f32_ptr((x_row0 + rows) * n)? + (x_row0 * n * 4) as u64;
        let op = out.f32_ptr(rows * n)?;
        self.rms_norm_rows(xp, wp, op, rows, n, eps)
    }

    fn rms_norm_inplace(
        &self,
        x: &mut CudaBuffer,
        rows: usize,
        n: usize,
        w: &CudaWeight,
        eps: f32,
    ) -> Result<(), CoreError> {
        let wp = w.f32_vector("rms_norm", n)?;
        let xp = x.f32_ptr(rows * n)?;
        self.rms_norm_rows(xp, wp, xp, rows, n, eps)
    }

    fn add_rms_norm(
        &self,
        x: &mut CudaBuffer,
        y: &mut CudaBuffer,
        rows: usize,
        n: usize,
        w: &CudaWeight,
        eps: f32,
    ) -> Result<(), CoreError> {
        let wp = w.f32_vector("add_rms_norm", n)?;
        let xp = x.f32_ptr(rows * n)?;
        let yp = y.f32_ptr(rows * n)?;
        let f = self.dev.function(&compile::NORM, &[], "add_rms_norm")?;
        self.dev.launch(
            "add_rms_norm",
            &f,
            (rows as u32, 1, 1),
            256,
            0,
            &[
                Arg::Ptr(xp),
                Arg::Ptr(yp),
                Arg::Ptr(wp),
                Arg::I32(n as i32),
                Arg::F32(eps),
            ],
        )
    }

    fn matmul(
        &self,
        w: &CudaWeight,
        x: &CudaBuffer,
        rows: usize,
        out: &mut CudaBuffer,
        scratch: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        match &self.blas {
            Some(blas) if self.uses_blas(w.ty, w.row_len, rows) => {
                blas.matmul(&self.dev, w, x, rows, out, scratch)
            }
            _ => matmul::matmul(&self.dev, w, x, rows, out),
        }
    }

    fn matmul3(
        &self,
        ws: [&CudaWeight; 3],
        x: &CudaBuffer,
        rows: usize,
        outs: [&mut CudaBuffer; 3],
        scratch: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        let ptrs = [
            outs[0].f32_ptr(ws[0].n_rows)?,
            outs[1].f32_ptr(ws[1].n_rows)?,
            outs[2].f32_ptr(ws[2].n_rows)?,
        ];
        if matmul::matvec3(&self.dev, ws, x, rows, ptrs)? {
            return Ok(());
        }
        unfused::matmul3(self, ws, x, rows, outs, scratch)
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul_glu(
        &self,
        gate_w: &CudaWeight,
        up_w: &CudaWeight,
        x: &CudaBuffer,
        rows: usize,
        n_ff: usize,
        act: GluActivation,
        gate: &mut CudaBuffer,
        up: &mut CudaBuffer,
        scratch: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        if gate_w.n_rows == n_ff && matmul::matvec_glu(&self.dev, gate_w, up_w, x, rows, act, gate)?
        {
            return Ok(());
        }
        unfused::matmul_glu(self, [gate_w, up_w], x, rows, n_ff, act, gate, up, scratch)
    }

    fn add_bias(
        &self,
        x: &mut CudaBuffer,
        rows: usize,
        bias: &CudaWeight,
    ) -> Result<(), CoreError> {
        let width = bias.row_len * bias.n_rows;
        let bp = bias.f32_vector("add_bias", width)?;
        let n = rows * width;
        let xp = x.f32_ptr(n)?;
        self.elementwise(
            "add_bias",
            &[
                Arg::Ptr(xp),
                Arg::Ptr(bp),
                Arg::I64(n as i64),
                Arg::I32(width as i32),
            ],
            n,
        )
    }

    fn rope(
        &self,
        x: &mut CudaBuffer,
        n_head: usize,
        head_dim: usize,
        positions: &[i32],
        rope: &RopeParams,
        freq_factors: Option<&CudaWeight>,
    ) -> Result<(), CoreError> {
        let n_rot = rope.n_rot;
        if n_rot > head_dim || !n_rot.is_multiple_of(2) || n_rot > 1024 {
            return Err(shape_err(
                "rope",
                format!("{n_rot} rotated dimensions for heads of {head_dim}"),
            ));
        }
        let rows = positions.len();
        let xp = x.f32_ptr(rows * n_head * head_dim)?;
        let ff = match freq_factors {
            Some(w) => w.f32_vector("rope", n_rot / 2)?,
            None => 0,
        };
        // Same f32 operation as the CPU reference, so the angle tables agree.
        let theta_scale = rope.base.powf(-2.0 / n_rot as f32);
        let f = self.dev.function(&compile::ROPE, &[], "rope")?;
        let launch = |pos_ptr: u64, pos0: i32| {
            self.dev.launch(
                "rope",
                &f,
                (rows as u32, 1, 1),
                128,
                0,
                &[
                    Arg::Ptr(xp),
                    Arg::Ptr(pos_ptr),
                    Arg::I32(pos0),
                    Arg::I32(n_head as i32),
                    Arg::I32(head_dim as i32),
                    Arg::I32(n_rot as i32),
                    Arg::F32(theta_scale),
                    Arg::F32(rope.freq_scale),
                    Arg::I32(rope.neox as i32),
                    Arg::Ptr(ff),
                ],
            )
        };
        self.with_positions("rope", positions, launch)
    }

    fn norm_rope_qk(
        &self,
        q: &mut CudaBuffer,
        n_head: usize,
        k: &mut CudaBuffer,
        n_head_kv: usize,
        head_dim: usize,
        norms: (Option<&CudaWeight>, Option<&CudaWeight>),
        eps: f32,
        positions: &[i32],
        rope: &RopeParams,
        freq_factors: Option<&CudaWeight>,
    ) -> Result<(), CoreError> {
        const OP: &str = "norm_rope_qk";
        let n_rot = rope.n_rot;
        // The kernel holds one head (≤ 1024 values) and its angles (≤ 512) in shared memory.
        if n_rot > head_dim || !n_rot.is_multiple_of(2) || head_dim > 1024 {
            return Err(shape_err(
                OP,
                format!("{n_rot} rotated dimensions for heads of {head_dim}"),
            ));
        }
        if n_head + n_head_kv > 65535 {
            return Err(shape_err(OP, format!("{n_head} + {n_head_kv} heads")));
        }
        let rows = positions.len();
        let qp = q.f32_ptr(rows * n_head * head_dim)?;
        let kp = k.f32_ptr(rows * n_head_kv * head_dim)?;
        let qw = match norms.0 {
            Some(w) => w.f32_vector(OP, head_dim)?,
            None => 0,
        };
        let kw = match norms.1 {
            Some(w) => w.f32_vector(OP, head_dim)?,
            None => 0,
        };
        let ff = match freq_factors {
            Some(w) => w.f32_vector(OP, n_rot / 2)?,
            None => 0,
        };
        // Same f32 operation as the CPU reference, so the angle tables agree.
        let theta_scale = rope.base.powf(-2.0 / n_rot as f32);
        let f = self.dev.function(&compile::ROPE, &[], "norm_rope_qk")?;
        let launch = |pos_ptr: u64, pos0: i32| {
            self.dev.launch(
                OP,
                &f,
                (rows as u32, (n_head + n_head_kv) as u32, 1),
                128,
                0,
                &[
                    Arg::Ptr(qp),
                    Arg::Ptr(kp),
                    Arg::Ptr(qw),
                    Arg::Ptr(kw),
                    Arg::I32(n_head as i32),
                    Arg::I32(n_head_kv as i32),
                    Arg::I32(head_dim as i32),
                    Arg::F32(eps),
                    Arg::Ptr(pos_ptr),
                    Arg::I32(pos0),
                    Arg::I32(n_rot as i32),
                    Arg::F32(theta_scale),
                    Arg::F32(rope.freq_scale),
                    Arg::I32(rope.neox as i32),
                    Arg::Ptr(ff),
                ],
            )
        };
        self.with_positions(OP, positions, launch)
    }

    fn scale(&self, x: &mut CudaBuffer, n: usize, s: f32) -> Result<(), CoreError> {
        let xp = x.f32_ptr(n)?;
        self.elementwise("scale", &[Arg::Ptr(xp), Arg::I64(n as i64), Arg::F32(s)], n)
    }

    fn add(&self, x: &mut CudaBuffer, y: &CudaBuffer, n: usize) -> Result<(), CoreError> {
        let xp = x.f32_ptr(n)?;
        let yp = y.f32_ptr(n)?;
        self.elementwise("add", &[Arg::Ptr(xp), Arg::Ptr(yp), Arg::I64(n as i64)], n)
    }

    fn glu(
        &self,
        gate: &mut CudaBuffer,
        up: &CudaBuffer,
        n: usize,
        act: GluActivation,
    ) -> Result<(), CoreError> {
        let gp = gate.f32_ptr(n)?;
        let up = up.f32_ptr(n)?;
        let func = match act {
            GluActivation::Silu => "glu_silu",
            GluActivation::GeluTanh => "glu_gelu_tanh",
        };
        self.elementwise(func, &[Arg::Ptr(gp), Arg::Ptr(up), Arg::I64(n as i64)], n)
    }

    fn softcap(&self, x: &mut CudaBuffer, n: usize, cap: f32) -> Result<(), CoreError> {
        let xp = x.f32_ptr(n)?;
        self.elementwise(
            "softcap",
            &[Arg::Ptr(xp), Arg::I64(n as i64), Arg::F32(cap)],
            n,
        )
    }

    fn kv_reserve(
        &self,
        kv: &mut CudaKvCache,
        seq: usize,
        n_tokens: usize,
    ) -> Result<(), CoreError> {
        kv.reserve(seq, n_tokens)
    }

    fn kv_store(
        &self,
        kv: &mut CudaKvCache,
        layer: usize,
        rows: &[TokenPos],
        k: &CudaBuffer,
        v: &CudaBuffer,
    ) -> Result<(), CoreError> {
        let (s, k_head_bytes, v_head_bytes, kbase, vbase) = {
            let lc = kv.layer(layer)?;
            (
                lc.shape,
                lc.k_head_bytes,
                lc.v_head_bytes,
                lc.k.ptr(),
                lc.v.ptr(),
            )
        };
        let n = rows.len();
        let kp = k.f32_ptr(n * s.n_head_kv * s.head_dim_k)?;
        let vp = v.f32_ptr(n * s.n_head_kv * s.head_dim_v)?;
        kv.mark_written(layer, rows)?;
        let (type_k, type_v) = (kv.spec.type_k, kv.spec.type_v);
        let cells = kv.cells;
        let mut funcs = Vec::with_capacity(2);
        for ty in [type_k, type_v] {
            let suffix = kv_kernel_suffix(ty).ok_or(CoreError::Unsupported {
                op: "kv_store",
                ty,
                backend: "CUDA",
            })?;
            // Turbo rows: a warp per 128-group (rotation and codebook search in parallel);
            // iq4_nl: a thread per (row, head) (its blocks depend on the previous one); the
            // other types: a thread per (row, head, block).
            let name = if ty.is_turbo() {
                format!("kv_store_warp_{suffix}")
            } else if ty == GgmlType::Iq4Nl {
                format!("kv_store_{suffix}")
            } else {
                format!("kv_store_blocks_{suffix}")
            };
            funcs.push(self.dev.function(&compile::KV_STORE, &[], &name)?);
        }
        self.with_rows("kv_store", rows, |r0, nr, info, seq0, pos0| {
            for (f, src, ty, hd, hb, base) in [
                (&funcs[0], kp, type_k, s.head_dim_k, k_head_bytes, kbase),
                (&funcs[1], vp, type_v, s.head_dim_v, v_head_bytes, vbase),
            ] {
                let pad = kv::padded_dim(ty, hd);
                let (grid, block) = if ty.is_turbo() {
                    ((nr * s.n_head_kv * (pad / 128)).div_ceil(4), 128)
                } else if ty == GgmlType::Iq4Nl {
                    ((nr * s.n_head_kv).div_ceil(64), 64)
                } else {
                    (
                        (nr * s.n_head_kv * (pad / ty.block_size())).div_ceil(128),
                        128,
                    )
                };
                self.dev.launch(
                    "kv_store",
                    f,
                    (grid as u32, 1, 1),
                    block,
                    0,
                    &[
                        Arg::Ptr(src + (r0 * s.n_head_kv * hd * 4) as u64),
                        Arg::Ptr(base),
                        Arg::I32(nr as i32),
                        Arg::I32(s.n_head_kv as i32),
                        Arg::I32(hd as i32),
                        Arg::I32(pad as i32),
                        Arg::I64(hb as i64),
                        Arg::I64(cells as i64),
                        Arg::Ptr(info),
                        Arg::I32(seq0),
                        Arg::I32(pos0),
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn kv_truncate(&self, kv: &mut CudaKvCache, seq: usize, from: usize) -> Result<(), CoreError> {
        kv.truncate(seq, from)
    }

    fn attention(
        &self,
        kv: &CudaKvCache,
        layer: usize,
        rows: &[TokenPos],
        q: &CudaBuffer,
        params: &AttnParams,
        out: &mut CudaBuffer,
        workspace: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        attention::attention(self, kv, layer, rows, q, params, out, workspace)
    }

    fn read(&self, buf: &CudaBuffer, offset: usize, dst: &mut [f32]) -> Result<(), CoreError> {
        let p = buf.f32_ptr(offset + dst.len())?;
        self.dev.download("read", dst, p + (offset * 4) as u64)
    }

    fn host_f32<'a>(&self, _buf: &'a CudaBuffer) -> Option<&'a [f32]> {
        None
    }

    // ---- hybrid / MoE families: crate::moe, crate::delta_net, crate::gated ----------------

    fn moe_workspace_bytes(&self, shape: &MoeShape) -> u64 {
        moe::workspace_bytes(shape)
    }

    fn moe_ffn(
        &self,
        x: &CudaBuffer,
        rows: usize,
        logits: &CudaBuffer,
        experts: &MoeExperts<'_, CudaWeight>,
        params: &MoeParams,
        out: &mut CudaBuffer,
        workspace: &mut CudaBuffer,
        _scratch: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        moe::moe_ffn(self, x, rows, logits, experts, params, out, workspace)
    }

    fn delta_net(
        &self,
        params: &DeltaNetParams,
        layer: usize,
        rows: &[TokenPos],
        weights: &DeltaNetWeights<'_, CudaWeight>,
        qkv: &mut CudaBuffer,
        alpha: &CudaBuffer,
        beta: &CudaBuffer,
        state: &mut CudaBuffer,
        out: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        delta_net::delta_net(
            self, params, layer, rows, weights, qkv, alpha, beta, state, out,
        )
    }

    fn recurrent_reset(
        &self,
        params: &DeltaNetParams,
        state: &mut CudaBuffer,
        seq: usize,
    ) -> Result<(), CoreError> {
        delta_net::reset(self, params, state, seq)
    }

    fn split_q_gate(
        &self,
        qg: &CudaBuffer,
        rows: usize,
        n_head: usize,
        head_dim: usize,
        q: &mut CudaBuffer,
        gate: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        gated::split_q_gate(&self.dev, qg, rows, n_head, head_dim, q, gate)
    }

    fn sigmoid_mul(
        &self,
        x: &mut CudaBuffer,
        gate: &CudaBuffer,
        rows: usize,
        width: usize,
        gate_width: usize,
    ) -> Result<(), CoreError> {
        gated::sigmoid_mul(&self.dev, x, gate, rows, width, gate_width)
    }
}
