//! The CPU backend: weights in the memory-mapped file, planned host buffers, a fixed thread
//! pool of `-t` threads.

mod buffer;
mod kv;
mod matmul;
mod ops;
mod weight;

pub use buffer::CpuBuffer;
pub use kv::CpuKvCache;
pub use weight::CpuWeight;

use formats::GgmlType;

use crate::alloc_log::AllocationLog;
use crate::backend::{AttnParams, AttnShape, Backend, GluActivation, KvSpec, RopeParams};
use crate::error::CoreError;
use crate::host_bytes::HostBytes;
use crate::memory::{host_memory, DeviceMemory};
use crate::plan::{BufferSpec, Role};

pub const DEVICE: &str = "CPU";

pub struct CpuBackend {
    pool: rayon::ThreadPool,
    n_threads: usize,
    log: AllocationLog,
}

impl CpuBackend {
    pub fn new(n_threads: usize) -> Result<CpuBackend, CoreError> {
        let n_threads = n_threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .thread_name(|i| format!("turbine-cpu-{i}"))
            .build()
            .map_err(|e| CoreError::Shape(format!("cannot start {n_threads} CPU threads: {e}")))?;
        Ok(CpuBackend {
            pool,
            n_threads,
            log: AllocationLog::new(),
        })
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Tokens cached for `seq`.
    pub fn kv_len(kv: &CpuKvCache, seq: usize) -> usize {
        kv.seq_len(seq)
    }
}

fn shape_err(op: &str, detail: String) -> CoreError {
    CoreError::Shape(format!("{op}: {detail}"))
}

impl Backend for CpuBackend {
    type Buffer = CpuBuffer;
    type Weight = CpuWeight;
    type KvCache = CpuKvCache;

    fn device(&self) -> &str {
        DEVICE
    }

    fn label(&self) -> String {
        DEVICE.to_string()
    }

    fn memory(&self) -> Option<DeviceMemory> {
        host_memory()
    }

    fn allocation_log(&self) -> &AllocationLog {
        &self.log
    }

    fn host_visible(&self) -> bool {
        true
    }

    fn weight_bytes(&self, ty: GgmlType, n_elements: u64) -> u64 {
        // Mapped in place: exactly the file's bytes.
        ty.bytes_for(n_elements).unwrap_or(0)
    }

    fn matmul_scratch_bytes(&self, _ty: GgmlType, _k: usize, _rows: usize) -> u64 {
        // The stand-in dequantizes one block at a time on the stack.
        0
    }

    fn kv_cache_bytes(&self, spec: &KvSpec) -> Result<u64, CoreError> {
        kv::cache_bytes(spec)
    }

    fn attention_workspace_bytes(
        &self,
        type_k: GgmlType,
        type_v: GgmlType,
        shape: &AttnShape,
    ) -> u64 {
        // Per worker: the (rotated) query, one dequantized K and V head, the accumulator.
        // Independent of the context length and of the number of rows.
        (self.n_threads * kv::worker_floats(type_k, type_v, shape.head_dim_k, shape.head_dim_v))
            as u64
            * 4
    }

    fn alloc(&self, spec: &BufferSpec) -> Result<CpuBuffer, CoreError> {
        let buf = CpuBuffer::new(&spec.name, spec.bytes)?;
        self.log.record(&spec.name, DEVICE, spec.role, spec.bytes);
        Ok(buf)
    }

    fn alloc_kv(&self, spec: &BufferSpec, kv: &KvSpec) -> Result<CpuKvCache, CoreError> {
        CpuKvCache::new(&spec.name, kv, |bytes| {
            self.log.record(&spec.name, DEVICE, spec.role, bytes)
        })
    }

    fn load_weight(
        &self,
        plan_name: &str,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: HostBytes,
    ) -> Result<CpuWeight, CoreError> {
        let w = CpuWeight::new(name, ty, dims, data)?;
        self.log
            .record(plan_name, DEVICE, Role::Model, w.data.len() as u64);
        Ok(w)
    }

    fn get_rows(
        &self,
        table: &CpuWeight,
        ids: &[u32],
        out: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let n = table.row_len;
        let dst = out.f32_prefix_mut(ids.len() * n)?;
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= table.n_rows {
                return Err(shape_err(
                    "get_rows",
                    format!("token id {id} outside the vocabulary of {}", table.n_rows),
                ));
            }
            formats::dequantize(table.ty, table.row(id), &mut dst[i * n..(i + 1) * n]).map_err(
                |e| CoreError::Weight {
                    name: table.name.clone(),
                    reason: e.to_string(),
                },
            )?;
        }
        Ok(())
    }

    fn rms_norm(
        &self,
        x: &CpuBuffer,
        x_row0: usize,
        rows: usize,
        n: usize,
        w: &CpuWeight,
        eps: f32,
        out: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let g = w.f32_values()?;
        if g.len() != n {
            return Err(shape_err(
                "rms_norm",
                format!("{} has {} values, rows have {n}", w.name, g.len()),
            ));
        }
        let src = x.f32_prefix((x_row0 + rows) * n)?;
        let dst = out.f32_prefix_mut(rows * n)?;
        for r in 0..rows {
            ops::rms_norm_row(
                &src[(x_row0 + r) * n..(x_row0 + r + 1) * n],
                g,
                eps,
                &mut dst[r * n..(r + 1) * n],
            );
        }
        Ok(())
    }

    fn rms_norm_inplace(
        &self,
        x: &mut CpuBuffer,
        rows: usize,
        n: usize,
        w: &CpuWeight,
        eps: f32,
    ) -> Result<(), CoreError> {
        let g = w.f32_values()?;
        if g.len() != n {
            return Err(shape_err(
                "rms_norm",
                format!("{} has {} values, rows have {n}", w.name, g.len()),
            ));
        }
        let data = x.f32_prefix_mut(rows * n)?;
        for row in data.chunks_exact_mut(n) {
            ops::rms_norm_row_inplace(row, g, eps);
        }
        Ok(())
    }

    fn matmul(
        &self,
        w: &CpuWeight,
        x: &CpuBuffer,
        rows: usize,
        out: &mut CpuBuffer,
        _scratch: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let xs = x.f32_prefix(rows * w.row_len)?;
        let os = out.f32_prefix_mut(rows * w.n_rows)?;
        matmul::matmul(&self.pool, w, xs, rows, os)
    }

    fn add_bias(&self, x: &mut CpuBuffer, rows: usize, bias: &CpuWeight) -> Result<(), CoreError> {
        let b = bias.f32_values()?;
        let data = x.f32_prefix_mut(rows * b.len())?;
        for row in data.chunks_exact_mut(b.len()) {
            for (v, &bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
        Ok(())
    }

    fn rope(
        &self,
        x: &mut CpuBuffer,
        n_head: usize,
        head_dim: usize,
        positions: &[u32],
        rope: &RopeParams,
        freq_factors: Option<&CpuWeight>,
    ) -> Result<(), CoreError> {
        let n = n_head * head_dim;
        let factors = match freq_factors {
            Some(w) => {
                let f = w.f32_values()?;
                if f.len() != rope.n_rot / 2 {
                    return Err(shape_err(
                        "rope",
                        format!(
                            "{} has {} values, expected {}",
                            w.name,
                            f.len(),
                            rope.n_rot / 2
                        ),
                    ));
                }
                Some(f)
            }
            None => None,
        };
        let data = x.f32_prefix_mut(positions.len() * n)?;
        for (row, &pos) in data.chunks_exact_mut(n).zip(positions) {
            ops::rope_row(row, n_head, head_dim, pos, rope, factors)?;
        }
        Ok(())
    }

    fn scale(&self, x: &mut CpuBuffer, n: usize, s: f32) -> Result<(), CoreError> {
        for v in x.f32_prefix_mut(n)? {
            *v *= s;
        }
        Ok(())
    }

    fn add(&self, x: &mut CpuBuffer, y: &CpuBuffer, n: usize) -> Result<(), CoreError> {
        let ys = y.f32_prefix(n)?;
        for (a, &b) in x.f32_prefix_mut(n)?.iter_mut().zip(ys) {
            *a += b;
        }
        Ok(())
    }

    fn glu(
        &self,
        gate: &mut CpuBuffer,
        up: &CpuBuffer,
        n: usize,
        act: GluActivation,
    ) -> Result<(), CoreError> {
        let u = up.f32_prefix(n)?;
        ops::glu(gate.f32_prefix_mut(n)?, u, act);
        Ok(())
    }

    fn softcap(&self, x: &mut CpuBuffer, n: usize, cap: f32) -> Result<(), CoreError> {
        for v in x.f32_prefix_mut(n)? {
            *v = cap * (*v / cap).tanh();
        }
        Ok(())
    }

    fn kv_store(
        &self,
        kv: &mut CpuKvCache,
        layer: usize,
        seq: usize,
        pos0: usize,
        k: &CpuBuffer,
        v: &CpuBuffer,
        rows: usize,
    ) -> Result<(), CoreError> {
        kv.store(layer, seq, pos0, k.f32(), v.f32(), rows)
    }

    fn kv_truncate(&self, kv: &mut CpuKvCache, seq: usize, from: usize) -> Result<(), CoreError> {
        kv.truncate(seq, from)
    }

    fn attention(
        &self,
        kv: &CpuKvCache,
        layer: usize,
        seq: usize,
        q: &CpuBuffer,
        rows: usize,
        pos0: usize,
        params: &AttnParams,
        out: &mut CpuBuffer,
        workspace: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        kv.attention(
            &self.pool,
            layer,
            seq,
            q.f32(),
            rows,
            pos0,
            params,
            out.f32_mut(),
            workspace.f32_mut(),
        )
    }

    fn read(&self, buf: &CpuBuffer, offset: usize, dst: &mut [f32]) -> Result<(), CoreError> {
        let src = buf.f32_prefix(offset + dst.len())?;
        dst.copy_from_slice(&src[offset..]);
        Ok(())
    }

    fn host_f32<'a>(&self, buf: &'a CpuBuffer) -> Option<&'a [f32]> {
        Some(buf.f32())
    }
}
