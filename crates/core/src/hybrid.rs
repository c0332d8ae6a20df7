//! Shapes and parameters of the mixture-of-experts FFN and the Gated DeltaNet (linear
//! attention) mixer: the ops qwen3moe, qwen35 and qwen35moe add to the [`crate::Backend`].
//!
//! The recurrent state of the DeltaNet layers is **context** memory, like the KV cache: one
//! planned buffer, its size a formula of the model shape and the number of sequences
//! ([`DeltaNetParams::state_bytes`]), independent of the context length.

/// Routing and shape of one MoE FFN call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeParams {
    pub n_expert: usize,
    /// Experts each row uses (top-k).
    pub n_expert_used: usize,
    /// Rows of each expert's gate/up matrix (`expert_feed_forward_length`).
    pub n_ff_exp: usize,
    /// Divide the top-k probabilities by their sum (`norm_topk_prob`).
    pub norm_topk: bool,
    /// Multiplies the routing weights (`expert_weights_scale`); 1.0 for none.
    pub weights_scale: f32,
}

/// The shape a MoE workspace is sized for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoeShape {
    pub rows: usize,
    pub n_embd: usize,
    pub n_ff_exp: usize,
    pub n_expert: usize,
    pub n_expert_used: usize,
}

impl MoeParams {
    /// The shape of a call over `rows` rows of `n_embd`.
    pub fn shape(&self, rows: usize, n_embd: usize) -> MoeShape {
        MoeShape {
            rows,
            n_embd,
            n_ff_exp: self.n_ff_exp,
            n_expert: self.n_expert,
            n_expert_used: self.n_expert_used,
        }
    }
}

/// The routed experts of one layer, each a 3-D weight `[k, n, n_expert]` in ggml order
/// (`gate`, `up`: `[n_embd, n_ff_exp, n_expert]`; `down`: `[n_ff_exp, n_embd, n_expert]`).
pub struct MoeExperts<'a, W> {
    pub gate: &'a W,
    pub up: &'a W,
    pub down: &'a W,
}

/// Geometry of one Gated DeltaNet layer (llama.cpp's `ssm.*` keys).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeltaNetParams {
    /// Key heads (`ssm.group_count`); value head `h` reads key head `h % n_k_heads`.
    pub n_k_heads: usize,
    /// Value heads (`ssm.time_step_rank`).
    pub n_v_heads: usize,
    /// Key (and query) head size (`ssm.state_size`).
    pub head_k_dim: usize,
    /// Value head size (`ssm.inner_size / n_v_heads`).
    pub head_v_dim: usize,
    /// Causal conv1d kernel width (`ssm.conv_kernel`).
    pub d_conv: usize,
    /// Recurrent layers in the state buffer.
    pub n_layers: usize,
    /// Sequences in the state buffer.
    pub n_seq: usize,
}

impl DeltaNetParams {
    /// Channels of the conv1d: Q and K (`n_k_heads × head_k_dim` each), then V.
    pub fn conv_channels(&self) -> usize {
        2 * self.n_k_heads * self.head_k_dim + self.n_v_heads * self.head_v_dim
    }

    /// Floats of one sequence's conv state in one layer: the last `d_conv − 1` inputs.
    pub fn conv_state_floats(&self) -> usize {
        self.d_conv.saturating_sub(1) * self.conv_channels()
    }

    /// Floats of one sequence's delta-rule state in one layer: `n_v_heads × head_k_dim ×
    /// head_v_dim`.
    pub fn ssm_state_floats(&self) -> usize {
        self.n_v_heads * self.head_k_dim * self.head_v_dim
    }

    /// Float offset of the conv state of (`layer`, `seq`). Layout: per layer, the conv states
    /// of all sequences, then their delta-rule states.
    pub fn conv_state_offset(&self, layer: usize, seq: usize) -> usize {
        layer * self.n_seq * self.layer_floats_per_seq() + seq * self.conv_state_floats()
    }

    /// Float offset of the delta-rule state of (`layer`, `seq`).
    pub fn ssm_state_offset(&self, layer: usize, seq: usize) -> usize {
        layer * self.n_seq * self.layer_floats_per_seq()
            + self.n_seq * self.conv_state_floats()
            + seq * self.ssm_state_floats()
    }

    fn layer_floats_per_seq(&self) -> usize {
        self.conv_state_floats() + self.ssm_state_floats()
    }

    /// Floats of the whole state buffer.
    pub fn state_floats(&self) -> usize {
        self.n_layers * self.n_seq * self.layer_floats_per_seq()
    }

    /// Bytes of the whole state buffer (f32): `n_layers × n_seq × ((d_conv − 1) × channels +
    /// n_v_heads × head_k_dim × head_v_dim) × 4`. No context-length term.
    pub fn state_bytes(&self) -> u64 {
        self.state_floats() as u64 * 4
    }
}

/// The per-layer weights a DeltaNet call reads besides its projections.
pub struct DeltaNetWeights<'a, W> {
    /// Depthwise conv kernel `[d_conv, channels]` (ggml order).
    pub conv1d: &'a W,
    /// `[n_v_heads]`, added to alpha before the softplus.
    pub dt_bias: &'a W,
    /// `[n_v_heads]`, `-exp(A_log)`.
    pub a: &'a W,
}
