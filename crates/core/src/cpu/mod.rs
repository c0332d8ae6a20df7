//! The CPU backend: weights in the memory-mapped file, planned host buffers, the `cpu` crate's
//! kernels on one persistent pool of `-t` threads, and the `kvcache` crate's paged cache.

mod buffer;
mod deltanet;
mod deltanet_chunked;
mod exec;
mod gated;
mod kv;
mod moe;
mod weight;

pub use buffer::CpuBuffer;
pub use kv::{CpuKvCache, PAGE_SIZE};
pub use weight::CpuWeight;

use cpu::{Cpu, CpuConfig, KernelPath, RopeMode, WeightView};
use formats::GgmlType;
use kvcache::{attention_workspace_bytes, AttentionInput, AttentionShape, KvCache};

use crate::alloc_log::AllocationLog;
use crate::backend::{AttnParams, AttnShape, Backend, GluActivation, KvSpec, RopeParams, TokenPos};
use crate::error::CoreError;
use crate::host_bytes::HostBytes;
use crate::hybrid::{DeltaNetParams, DeltaNetWeights, MoeExperts, MoeParams, MoeShape};
use crate::memory::{host_memory, DeviceMemory};
use crate::plan::{BufferSpec, Role};
use exec::PoolExecutor;
use kv::{kv_config, kv_err};

pub const DEVICE: &str = "CPU";

pub struct CpuBackend {
    cpu: Cpu,
    log: AllocationLog,
    /// Packed 64-wide turbo heads and centered turbo keys (see `kv::kv_config`).
    refined_turbo_kv: bool,
    /// Per-thread workspaces of the chunked delta rule (made on first use).
    delta_scratch: deltanet::ChunkScratch,
}

fn k_err(e: cpu::CpuError) -> CoreError {
    CoreError::Kernel(e.to_string())
}

fn view(w: &CpuWeight) -> WeightView<'_> {
    WeightView {
        ty: w.ty,
        bytes: w.data.as_slice(),
        rows: w.n_rows,
        cols: w.row_len,
    }
}

impl CpuBackend {
    /// Starts `n_threads` threads (the caller included) on the best kernel path.
    pub fn new(n_threads: usize) -> Result<CpuBackend, CoreError> {
        CpuBackend::with_path(n_threads, None)
    }

    /// Stores turbo K/V rows the way the CUDA backend does (each head padded to its own
    /// rotation group, keys not centered), so `check-backend` compares the same algorithm.
    pub fn with_cuda_turbo_layout(mut self) -> CpuBackend {
        self.refined_turbo_kv = false;
        self
    }

    /// Like [`CpuBackend::new`] with a forced kernel path (tests compare paths).
    pub fn with_path(n_threads: usize, path: Option<KernelPath>) -> Result<CpuBackend, CoreError> {
        let cpu = Cpu::new(&CpuConfig {
            n_threads,
            kernel_path: path,
        })
        .map_err(k_err)?;
        Ok(CpuBackend {
            cpu,
            log: AllocationLog::new(),
            refined_turbo_kv: true,
            delta_scratch: deltanet::ChunkScratch::default(),
        })
    }

    pub fn n_threads(&self) -> usize {
        self.cpu.pool().n_threads()
    }

    pub fn kernel_path(&self) -> KernelPath {
        self.cpu.path()
    }

    fn attn_shape(
        &self,
        spec_k: GgmlType,
        spec_v: GgmlType,
        s: &AttnShape,
    ) -> Result<AttentionShape, CoreError> {
        Ok(AttentionShape {
            k_type: kvcache::KvType::from_ggml(spec_k).map_err(kv_err)?,
            v_type: kvcache::KvType::from_ggml(spec_v).map_err(kv_err)?,
            head_dim_k: s.head_dim_k,
            head_dim_v: s.head_dim_v,
            n_kv_heads: s.n_head_kv,
            n_heads: s.n_head,
            max_rows: s.rows,
            n_workers: self.n_threads(),
            path: kvcache::KernelPath::best(),
        })
    }
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

    fn matmul_scratch_bytes(&self, ty: GgmlType, k: usize, rows: usize) -> u64 {
        // Activations quantized to the weight type's companion format.
        cpu::matmul_scratch_bytes(ty, k, rows) as u64
    }

    fn kv_cache_bytes(&self, spec: &KvSpec) -> Result<u64, CoreError> {
        Ok(
            KvCache::bytes_required(&kv_config(spec, self.refined_turbo_kv)?).map_err(kv_err)?
                as u64,
        )
    }

    fn attention_workspace_bytes(
        &self,
        type_k: GgmlType,
        type_v: GgmlType,
        shape: &AttnShape,
    ) -> Result<u64, CoreError> {
        // Per-worker tiles (plus split-K partials): independent of the context length.
        let s = self.attn_shape(type_k, type_v, shape)?;
        Ok(attention_workspace_bytes(&s).map_err(kv_err)? as u64)
    }

    fn alloc(&self, spec: &BufferSpec) -> Result<CpuBuffer, CoreError> {
        let buf = CpuBuffer::new(&spec.name, spec.bytes)?;
        self.log.record(&spec.name, DEVICE, spec.role, spec.bytes);
        Ok(buf)
    }

    fn alloc_kv(&self, spec: &BufferSpec, kv: &KvSpec) -> Result<CpuKvCache, CoreError> {
        let cache = KvCache::new(&kv_config(kv, self.refined_turbo_kv)?).map_err(kv_err)?;
        self.log.record(
            &spec.name,
            DEVICE,
            spec.role,
            cache.allocated_bytes() as u64,
        );
        Ok(CpuKvCache { cache })
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
        let dst = out.f32_prefix_mut(ids.len() * table.row_len)?;
        cpu::get_rows(&view(table), ids, dst).map_err(k_err)
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
        let src = &x.f32_prefix((x_row0 + rows) * n)?[x_row0 * n..];
        let dst = out.f32_prefix_mut(rows * n)?;
        cpu::rms_norm(&self.cpu, src, n, Some(w.f32_values()?), eps, dst).map_err(k_err)
    }

    fn rms_norm_inplace(
        &self,
        x: &mut CpuBuffer,
        rows: usize,
        n: usize,
        w: &CpuWeight,
        eps: f32,
    ) -> Result<(), CoreError> {
        let data = x.f32_prefix_mut(rows * n)?;
        cpu::rms_norm_inplace(&self.cpu, data, n, Some(w.f32_values()?), eps).map_err(k_err)
    }

    fn matmul(
        &self,
        w: &CpuWeight,
        x: &CpuBuffer,
        rows: usize,
        out: &mut CpuBuffer,
        scratch: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let xs = x.f32_prefix(rows * w.row_len)?;
        let os = out.f32_prefix_mut(rows * w.n_rows)?;
        cpu::matmul(&self.cpu, &view(w), xs, rows, os, scratch.as_bytes_mut())
            .map_err(|e| CoreError::Kernel(format!("{}: {e}", w.name)))
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
        positions: &[i32],
        rope: &RopeParams,
        freq_factors: Option<&CpuWeight>,
    ) -> Result<(), CoreError> {
        let data = x.f32_prefix_mut(positions.len() * n_head * head_dim)?;
        let mode = if rope.neox {
            RopeMode::Neox
        } else {
            RopeMode::Normal
        };
        let mut p = cpu::RopeParams::new(rope.n_rot, mode, rope.base);
        p.freq_scale = rope.freq_scale;
        let factors = match freq_factors {
            Some(w) => Some(w.f32_values()?),
            None => None,
        };
        cpu::rope_inplace(&self.cpu, data, n_head, head_dim, positions, &p, factors).map_err(k_err)
    }

    fn scale(&self, x: &mut CpuBuffer, n: usize, s: f32) -> Result<(), CoreError> {
        cpu::scale_inplace(&self.cpu, x.f32_prefix_mut(n)?, s);
        Ok(())
    }

    fn add(&self, x: &mut CpuBuffer, y: &CpuBuffer, n: usize) -> Result<(), CoreError> {
        let ys = y.f32_prefix(n)?;
        cpu::add_inplace(&self.cpu, x.f32_prefix_mut(n)?, ys).map_err(k_err)
    }

    fn glu(
        &self,
        gate: &mut CpuBuffer,
        up: &CpuBuffer,
        n: usize,
        act: GluActivation,
    ) -> Result<(), CoreError> {
        let u = up.f32_prefix(n)?;
        let g = gate.f32_prefix_mut(n)?;
        match act {
            GluActivation::Silu => cpu::swiglu_inplace(&self.cpu, g, u),
            GluActivation::GeluTanh => cpu::geglu_inplace(&self.cpu, g, u),
        }
        .map_err(k_err)
    }

    fn softcap(&self, x: &mut CpuBuffer, n: usize, cap: f32) -> Result<(), CoreError> {
        for v in x.f32_prefix_mut(n)? {
            *v = cap * (*v / cap).tanh();
        }
        Ok(())
    }

    fn kv_reserve(
        &self,
        kv: &mut CpuKvCache,
        seq: usize,
        n_tokens: usize,
    ) -> Result<(), CoreError> {
        kv.cache.reserve(seq, n_tokens).map_err(kv_err)
    }

    fn kv_store(
        &self,
        kv: &mut CpuKvCache,
        layer: usize,
        rows: &[TokenPos],
        k: &CpuBuffer,
        v: &CpuBuffer,
    ) -> Result<(), CoreError> {
        let c = kv.cache.config();
        let ks = k.f32_prefix(rows.len() * c.n_kv_heads * c.head_dim_k)?;
        let vs = v.f32_prefix(rows.len() * c.n_kv_heads * c.head_dim_v)?;
        kv.cache.write(layer, rows, ks, vs).map_err(kv_err)
    }

    fn kv_truncate(&self, kv: &mut CpuKvCache, seq: usize, from: usize) -> Result<(), CoreError> {
        kv.cache.truncate(seq, from).map_err(kv_err)
    }

    fn attention(
        &self,
        kv: &CpuKvCache,
        layer: usize,
        rows: &[TokenPos],
        q: &CpuBuffer,
        params: &AttnParams,
        out: &mut CpuBuffer,
        workspace: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        if params.softcap.is_some() {
            return Err(CoreError::Kv(
                "attention logit soft-capping is not supported".into(),
            ));
        }
        let n = rows.len();
        let input = AttentionInput {
            layer,
            tokens: rows,
            q: q.f32_prefix(n * params.n_head * params.head_dim_k)?,
            n_heads: params.n_head,
            scale: params.scale,
        };
        let o = out.f32_prefix_mut(n * params.n_head * params.head_dim_v)?;
        // The window is the cache's per-layer configuration (from the same hyperparameters).
        kv.cache
            .attend(
                &input,
                o,
                &PoolExecutor(self.cpu.pool()),
                workspace.f32_mut(),
            )
            .map_err(kv_err)
    }

    fn moe_workspace_bytes(&self, shape: &MoeShape) -> u64 {
        moe::moe_workspace_floats(shape) as u64 * 4
    }

    fn moe_ffn(
        &self,
        x: &CpuBuffer,
        rows: usize,
        logits: &CpuBuffer,
        experts: &MoeExperts<'_, CpuWeight>,
        params: &MoeParams,
        out: &mut CpuBuffer,
        workspace: &mut CpuBuffer,
        scratch: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let n_embd = experts.gate.row_len;
        moe::moe_ffn(
            &self.cpu,
            x.f32_prefix(rows * n_embd)?,
            rows,
            n_embd,
            logits.f32_prefix(rows * params.n_expert)?,
            experts.gate,
            experts.up,
            experts.down,
            params,
            out.f32_prefix_mut(rows * n_embd)?,
            workspace.f32_mut(),
            scratch.as_bytes_mut(),
        )
    }

    fn delta_net(
        &self,
        params: &DeltaNetParams,
        layer: usize,
        rows: &[TokenPos],
        weights: &DeltaNetWeights<'_, CpuWeight>,
        qkv: &mut CpuBuffer,
        alpha: &CpuBuffer,
        beta: &CpuBuffer,
        state: &mut CpuBuffer,
        out: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let n = rows.len();
        let st = state.f32_mut();
        deltanet::check(params, layer, rows, st.len())?;
        let qkv = qkv.f32_prefix_mut(n * params.conv_channels())?;
        deltanet::conv(
            &self.cpu,
            params,
            layer,
            rows,
            weights.conv1d.f32_values()?,
            qkv,
            st,
        )?;
        deltanet::delta_rule(
            &self.cpu,
            params,
            layer,
            rows,
            qkv,
            alpha.f32_prefix(n * params.n_v_heads)?,
            beta.f32_prefix(n * params.n_v_heads)?,
            weights.dt_bias.f32_values()?,
            weights.a.f32_values()?,
            st,
            out.f32_prefix_mut(n * params.n_v_heads * params.head_v_dim)?,
            &self.delta_scratch,
        )
    }

    fn recurrent_reset(
        &self,
        params: &DeltaNetParams,
        state: &mut CpuBuffer,
        seq: usize,
    ) -> Result<(), CoreError> {
        deltanet::reset(params, state.f32_mut(), seq)
    }

    fn split_q_gate(
        &self,
        qg: &CpuBuffer,
        rows: usize,
        n_head: usize,
        head_dim: usize,
        q: &mut CpuBuffer,
        gate: &mut CpuBuffer,
    ) -> Result<(), CoreError> {
        let n = rows * n_head * head_dim;
        gated::split_q_gate(
            qg.f32_prefix(2 * n)?,
            head_dim,
            q.f32_prefix_mut(n)?,
            gate.f32_prefix_mut(n)?,
        );
        Ok(())
    }

    fn sigmoid_mul(
        &self,
        x: &mut CpuBuffer,
        gate: &CpuBuffer,
        rows: usize,
        width: usize,
        gate_width: usize,
    ) -> Result<(), CoreError> {
        gated::sigmoid_mul(
            x.f32_prefix_mut(rows * width)?,
            gate.f32_prefix(rows * gate_width)?,
            width,
            gate_width,
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
