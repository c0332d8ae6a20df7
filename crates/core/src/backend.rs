//! The backend trait: the operations a forward pass needs, on buffers the plan sized.
//!
//! A backend never allocates on its own during a forward pass. Everything it holds comes from
//! [`Backend::alloc`], [`Backend::alloc_kv`] and [`Backend::load_weight`], each called with a
//! planned [`BufferSpec`] (or a planned weight group) and recorded in the backend's
//! [`AllocationLog`]. Operations take explicit shapes; buffers are dense row-major `f32` unless
//! said otherwise (workspaces are raw bytes).
//!
//! The size functions (`*_bytes`) are pure formulas of shapes. The planner calls them before
//! anything exists, for every shape class the engine will run, and takes the maximum.

use formats::GgmlType;

use crate::alloc_log::AllocationLog;
use crate::error::CoreError;
use crate::host_bytes::HostBytes;
use crate::hybrid::{DeltaNetParams, DeltaNetWeights, MoeExperts, MoeParams, MoeShape};
use crate::memory::DeviceMemory;
use crate::plan::BufferSpec;

/// One row of a batch: its sequence and position (the KV cache's row descriptor).
pub use kvcache::TokenPos;

/// Rotary position embedding of one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    /// Leading dimensions of each head that rotate (the rest pass through).
    pub n_rot: usize,
    pub base: f32,
    /// Linear position scale (1 / scaling factor); 1.0 for none.
    pub freq_scale: f32,
    /// NeoX layout: pairs `(i, i + n_rot/2)`; otherwise adjacent pairs `(2i, 2i+1)`.
    pub neox: bool,
}

/// Activation of a gated feed-forward block: `act(gate) * up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GluActivation {
    /// SwiGLU (llama, qwen).
    Silu,
    /// GeGLU with the tanh approximation of GELU (gemma).
    GeluTanh,
}

/// KV geometry of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayerShape {
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Sliding window of the layer, if any (a cache may keep fewer tokens for such layers).
    pub window: Option<usize>,
}

/// Everything the KV cache's size and layout depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvSpec {
    pub layers: Vec<KvLayerShape>,
    /// Token cells in total, shared by all sequences (`-c`).
    pub n_ctx: usize,
    /// Sequences (`-np`); each may hold up to `n_ctx / n_seq` tokens.
    pub n_seq: usize,
    pub type_k: GgmlType,
    pub type_v: GgmlType,
}

impl KvSpec {
    /// Tokens one sequence may hold.
    pub fn cells_per_seq(&self) -> usize {
        self.n_ctx / self.n_seq.max(1)
    }
}

/// One attention call's shape, for workspace sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    /// Query rows (tokens) in the call.
    pub rows: usize,
    /// Most keys any query attends to.
    pub n_kv: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
}

/// Attention of one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Multiplies `q·k` before the softmax.
    pub scale: f32,
    /// Sliding window: a query at position `p` sees keys at `p - window < pos <= p`.
    pub window: Option<usize>,
    /// Attention-logit soft cap `c·tanh(s/c)` (gemma2); `None` for none.
    pub softcap: Option<f32>,
}

/// A compute device. See the module documentation for the memory contract.
pub trait Backend: Send + Sync {
    /// A planned device buffer.
    type Buffer: Send;
    /// A weight tensor resident on the device.
    type Weight: Send + Sync;
    /// The KV cache of all layers and sequences.
    type KvCache: Send;

    /// Device name used in plans and allocation records (`"CPU"`, `"CUDA0"`).
    fn device(&self) -> &str;
    /// Label for the breakdown line (`"CPU"`, `"CUDA0 (NVIDIA H100 80GB HBM3)"`).
    fn label(&self) -> String;
    /// Total and free memory now.
    fn memory(&self) -> Option<DeviceMemory>;
    fn allocation_log(&self) -> &AllocationLog;
    /// Time per operation since the last call, where the backend measures it (the CUDA
    /// backend under `TURBINE_CUDA_PROFILE=1`); `None` otherwise.
    fn profile_report(&self) -> Option<String> {
        None
    }
    /// True where buffers are host memory that [`Backend::host_f32`] reads in place, so
    /// logits need no planned host copy.
    fn host_visible(&self) -> bool;
    /// The device name host-side buffers are planned under: this device when it is host
    /// memory, else `"Host"`.
    fn host_device(&self) -> &str {
        if self.host_visible() {
            self.device()
        } else {
            "Host"
        }
    }

    // ---- sizes: pure formulas, used by the planner -------------------------------------

    /// Bytes this backend holds for a weight of `ty` with `n_elements` values.
    fn weight_bytes(&self, ty: GgmlType, n_elements: u64) -> u64;
    /// Scratch for `matmul` with weight type `ty`, inner dimension `k` and `rows` input rows.
    fn matmul_scratch_bytes(&self, ty: GgmlType, k: usize, rows: usize) -> u64;
    /// Bytes of the KV cache for `spec`.
    fn kv_cache_bytes(&self, spec: &KvSpec) -> Result<u64, CoreError>;
    /// Workspace for one `attention` call of `shape` over a cache of `type_k`/`type_v`.
    fn attention_workspace_bytes(
        &self,
        type_k: GgmlType,
        type_v: GgmlType,
        shape: &AttnShape,
    ) -> Result<u64, CoreError>;

    // ---- allocation from the plan ------------------------------------------------------

    fn alloc(&self, spec: &BufferSpec) -> Result<Self::Buffer, CoreError>;
    fn alloc_kv(&self, spec: &BufferSpec, kv: &KvSpec) -> Result<Self::KvCache, CoreError>;
    /// Makes a weight resident. `plan_name` is the plan buffer it is counted under (weights are
    /// planned per group, e.g. `"weights"`); `dims` are in ggml order (`dims[0]` contiguous).
    fn load_weight(
        &self,
        plan_name: &str,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: HostBytes,
    ) -> Result<Self::Weight, CoreError>;

    // ---- operations --------------------------------------------------------------------

    /// `out[i] = dequantize(table row ids[i])` (token embeddings).
    fn get_rows(
        &self,
        table: &Self::Weight,
        ids: &[u32],
        out: &mut Self::Buffer,
    ) -> Result<(), CoreError>;
    /// RMS norm of rows `x_row0 .. x_row0 + rows` of `x` (rows of `n`), times `w`, into `out`
    /// rows `0 .. rows`.
    #[allow(clippy::too_many_arguments)]
    fn rms_norm(
        &self,
        x: &Self::Buffer,
        x_row0: usize,
        rows: usize,
        n: usize,
        w: &Self::Weight,
        eps: f32,
        out: &mut Self::Buffer,
    ) -> Result<(), CoreError>;
    /// In-place RMS norm of `rows` rows of `n` (also per-head norms: rows = tokens × heads).
    fn rms_norm_inplace(
        &self,
        x: &mut Self::Buffer,
        rows: usize,
        n: usize,
        w: &Self::Weight,
        eps: f32,
    ) -> Result<(), CoreError>;
    /// A residual add and the next norm in one call: `x[r] += y[r]`, then `y[r] =
    /// rms_norm(x[r]) · w` for `rows` rows of `n`. Backends may do it in one pass; the default
    /// runs [`add`](Backend::add) and [`rms_norm`](Backend::rms_norm).
    fn add_rms_norm(
        &self,
        x: &mut Self::Buffer,
        y: &mut Self::Buffer,
        rows: usize,
        n: usize,
        w: &Self::Weight,
        eps: f32,
    ) -> Result<(), CoreError> {
        self.add(x, y, rows * n)?;
        self.rms_norm(x, 0, rows, n, w, eps, y)
    }
    /// `out[r][o] = Σ_i w[o][i] · x[r][i]` for `rows` rows; `w` has `dims = [k, n_out]`.
    fn matmul(
        &self,
        w: &Self::Weight,
        x: &Self::Buffer,
        rows: usize,
        out: &mut Self::Buffer,
        scratch: &mut Self::Buffer,
    ) -> Result<(), CoreError>;
    /// Three products of the same input (a layer's q, k and v projections):
    /// `outs[i] = ws[i] · x`. Backends may run them as one launch; the default runs [`matmul`]
    /// on each.
    ///
    /// [`matmul`]: Backend::matmul
    fn matmul3(
        &self,
        ws: [&Self::Weight; 3],
        x: &Self::Buffer,
        rows: usize,
        outs: [&mut Self::Buffer; 3],
        scratch: &mut Self::Buffer,
    ) -> Result<(), CoreError> {
        unfused::matmul3(self, ws, x, rows, outs, scratch)
    }
    /// A gated FFN's first half: `gate = act(gate_w · x) ⊙ (up_w · x)` (`n_ff` outputs per
    /// row), `up` holding the up product where the backend needs it. Backends may fuse it; the default runs both
    /// products and [`glu`](Backend::glu).
    #[allow(clippy::too_many_arguments)]
    fn matmul_glu(
        &self,
        gate_w: &Self::Weight,
        up_w: &Self::Weight,
        x: &Self::Buffer,
        rows: usize,
        n_ff: usize,
        act: GluActivation,
        gate: &mut Self::Buffer,
        up: &mut Self::Buffer,
        scratch: &mut Self::Buffer,
    ) -> Result<(), CoreError> {
        unfused::matmul_glu(self, [gate_w, up_w], x, rows, n_ff, act, gate, up, scratch)
    }
    /// `x[r] += bias` for `rows` rows.
    fn add_bias(
        &self,
        x: &mut Self::Buffer,
        rows: usize,
        bias: &Self::Weight,
    ) -> Result<(), CoreError>;
    /// Rotates the rows of `n_head` heads of `head_dim`, row `r` at `positions[r]`.
    /// `freq_factors` (llama 3 `rope_freqs`, `n_rot / 2` values) divide each pair's angle.
    fn rope(
        &self,
        x: &mut Self::Buffer,
        n_head: usize,
        head_dim: usize,
        positions: &[i32],
        rope: &RopeParams,
        freq_factors: Option<&Self::Weight>,
    ) -> Result<(), CoreError>;
    /// The query and key heads of an attention layer: each head RMS-normalized by its norm
    /// weight where one is given (`q_norm`, `k_norm`), then rotated (`rope`) at its row's
    /// position. Backends may do it in one pass; the default runs
    /// [`rms_norm_inplace`](Backend::rms_norm_inplace) and [`rope`](Backend::rope) on each.
    #[allow(clippy::too_many_arguments)]
    fn norm_rope_qk(
        &self,
        q: &mut Self::Buffer,
        n_head: usize,
        k: &mut Self::Buffer,
        n_head_kv: usize,
        head_dim: usize,
        norms: (Option<&Self::Weight>, Option<&Self::Weight>),
        eps: f32,
        positions: &[i32],
        rope: &RopeParams,
        freq_factors: Option<&Self::Weight>,
    ) -> Result<(), CoreError> {
        let rows = positions.len();
        if let Some(w) = norms.0 {
            self.rms_norm_inplace(q, rows * n_head, head_dim, w, eps)?;
        }
        if let Some(w) = norms.1 {
            self.rms_norm_inplace(k, rows * n_head_kv, head_dim, w, eps)?;
        }
        self.rope(q, n_head, head_dim, positions, rope, freq_factors)?;
        self.rope(k, n_head_kv, head_dim, positions, rope, freq_factors)
    }
    /// `x[..n] *= s`.
    fn scale(&self, x: &mut Self::Buffer, n: usize, s: f32) -> Result<(), CoreError>;
    /// `x[..n] += y[..n]`.
    fn add(&self, x: &mut Self::Buffer, y: &Self::Buffer, n: usize) -> Result<(), CoreError>;
    /// `gate[..n] = act(gate) * up`.
    fn glu(
        &self,
        gate: &mut Self::Buffer,
        up: &Self::Buffer,
        n: usize,
        act: GluActivation,
    ) -> Result<(), CoreError>;
    /// `x[..n] = cap · tanh(x / cap)`.
    fn softcap(&self, x: &mut Self::Buffer, n: usize, cap: f32) -> Result<(), CoreError>;

    /// Makes positions `0..n_tokens` of `seq` writable (call once per forward pass, before
    /// the layers store their rows). Fails, changing nothing, when the cache is full.
    fn kv_reserve(
        &self,
        kv: &mut Self::KvCache,
        seq: usize,
        n_tokens: usize,
    ) -> Result<(), CoreError>;
    /// Writes the K and V rows of `rows` (one per token: sequence and position) of `layer`.
    fn kv_store(
        &self,
        kv: &mut Self::KvCache,
        layer: usize,
        rows: &[TokenPos],
        k: &Self::Buffer,
        v: &Self::Buffer,
    ) -> Result<(), CoreError>;
    /// Forgets the cached tokens of `seq` at positions `>= from`.
    fn kv_truncate(&self, kv: &mut Self::KvCache, seq: usize, from: usize)
        -> Result<(), CoreError>;
    /// Causal attention of the query rows `rows` (sequence, position) over their sequences'
    /// cached keys, the new ones included. `out` gets `rows × n_head × head_dim_v`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        kv: &Self::KvCache,
        layer: usize,
        rows: &[TokenPos],
        q: &Self::Buffer,
        params: &AttnParams,
        out: &mut Self::Buffer,
        workspace: &mut Self::Buffer,
    ) -> Result<(), CoreError>;

    // ---- hybrid / MoE families (qwen3moe, qwen35, qwen35moe) ----------------------------
    // Default implementations say the op is missing, so a backend compiles before it has them.

    fn not_implemented(&self, op: &'static str) -> CoreError {
        CoreError::NotImplemented {
            op,
            backend: self.device().to_string(),
        }
    }

    /// Workspace bytes of one [`Backend::moe_ffn`] call of `shape`.
    fn moe_workspace_bytes(&self, _shape: &MoeShape) -> u64 {
        0
    }

    /// Mixture-of-experts SwiGLU FFN, accumulated into `out`:
    /// `out[r] += Σ_{e ∈ top-k(softmax(logits[r]))} w_e · down_e(silu(gate_e x[r]) · up_e x[r])`.
    /// `x`: `rows × n_embd`; `logits`: `rows × n_expert` (the router's output). Reads only the
    /// selected experts' weights. `scratch` is the matmul scratch (sized over the expert
    /// weights too).
    #[allow(clippy::too_many_arguments)]
    fn moe_ffn(
        &self,
        _x: &Self::Buffer,
        _rows: usize,
        _logits: &Self::Buffer,
        _experts: &MoeExperts<'_, Self::Weight>,
        _params: &MoeParams,
        _out: &mut Self::Buffer,
        _workspace: &mut Self::Buffer,
        _scratch: &mut Self::Buffer,
    ) -> Result<(), CoreError> {
        Err(self.not_implemented("moe_ffn"))
    }

    /// Gated DeltaNet core of recurrent layer `layer` (index among the recurrent layers) for
    /// the rows `rows` (sequence, position; a sequence's rows in position order): causal conv1d
    /// and SiLU over `qkv` (`rows × conv_channels`, in place, conv state updated), L2-normed
    /// q/k, gates `g = a · softplus(alpha + dt_bias)`, `β = sigmoid(beta)`, and the delta rule
    /// `S ← e^g S; S ← S + k (β (v − Sᵀk))ᵀ; o = Sᵀ q / √d_k` per value head, state updated.
    /// Shapes: `alpha`, `beta` are `rows × n_v_heads`; `out` is `rows × n_v_heads ×
    /// head_v_dim`.
    #[allow(clippy::too_many_arguments)]
    fn delta_net(
        &self,
        _params: &DeltaNetParams,
        _layer: usize,
        _rows: &[TokenPos],
        _weights: &DeltaNetWeights<'_, Self::Weight>,
        _qkv: &mut Self::Buffer,
        _alpha: &Self::Buffer,
        _beta: &Self::Buffer,
        _state: &mut Self::Buffer,
        _out: &mut Self::Buffer,
    ) -> Result<(), CoreError> {
        Err(self.not_implemented("delta_net"))
    }

    /// Zeroes the recurrent state of `seq` in every layer (a new or reset sequence).
    fn recurrent_reset(
        &self,
        _params: &DeltaNetParams,
        _state: &mut Self::Buffer,
        _seq: usize,
    ) -> Result<(), CoreError> {
        Err(self.not_implemented("recurrent_reset"))
    }

    /// Splits the output of a gated query projection, `rows × n_head × [q (head_dim) | gate
    /// (head_dim)]`, into `q` and `gate` (`rows × n_head × head_dim` each).
    fn split_q_gate(
        &self,
        _qg: &Self::Buffer,
        _rows: usize,
        _n_head: usize,
        _head_dim: usize,
        _q: &mut Self::Buffer,
        _gate: &mut Self::Buffer,
    ) -> Result<(), CoreError> {
        Err(self.not_implemented("split_q_gate"))
    }

    /// `x[r][i] *= sigmoid(gate[r][i])` for `rows` rows of `width`; with `gate_width == 1`
    /// one gate value scales the whole row.
    fn sigmoid_mul(
        &self,
        _x: &mut Self::Buffer,
        _gate: &Self::Buffer,
        _rows: usize,
        _width: usize,
        _gate_width: usize,
    ) -> Result<(), CoreError> {
        Err(self.not_implemented("sigmoid_mul"))
    }

    /// Copies `dst.len()` floats starting at float `offset` of `buf` to the host.
    fn read(&self, buf: &Self::Buffer, offset: usize, dst: &mut [f32]) -> Result<(), CoreError>;
    /// The buffer's floats in place, where the device is host memory (no copy needed).
    fn host_f32<'a>(&self, buf: &'a Self::Buffer) -> Option<&'a [f32]>;
}

/// The unfused forms of the fused [`Backend`] operations: the trait's defaults, and what a
/// backend that fuses only some shapes runs for the others.
pub mod unfused {
    use super::{Backend, CoreError, GluActivation};

    /// [`Backend::matmul3`] as three [`Backend::matmul`] calls.
    pub fn matmul3<B: Backend + ?Sized>(
        b: &B,
        ws: [&B::Weight; 3],
        x: &B::Buffer,
        rows: usize,
        outs: [&mut B::Buffer; 3],
        scratch: &mut B::Buffer,
    ) -> Result<(), CoreError> {
        for (w, out) in ws.into_iter().zip(outs) {
            b.matmul(w, x, rows, out, scratch)?;
        }
        Ok(())
    }

    /// [`Backend::matmul_glu`] as two products and [`Backend::glu`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_glu<B: Backend + ?Sized>(
        b: &B,
        [gate_w, up_w]: [&B::Weight; 2],
        x: &B::Buffer,
        rows: usize,
        n_ff: usize,
        act: GluActivation,
        gate: &mut B::Buffer,
        up: &mut B::Buffer,
        scratch: &mut B::Buffer,
    ) -> Result<(), CoreError> {
        b.matmul(gate_w, x, rows, gate, scratch)?;
        b.matmul(up_w, x, rows, up, scratch)?;
        b.glu(gate, up, rows * n_ff, act)
    }
}
