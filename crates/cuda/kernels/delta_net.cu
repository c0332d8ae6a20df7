// Gated DeltaNet (linear attention) on the device: the causal depthwise conv1d with its rolling
// state, the gated delta rule with its per-head d_k × d_v state, and the state reset.
//
// State layout (turbine_core::hybrid::DeltaNetParams): per recurrent layer, the conv states of
// all sequences ([d_conv − 1][channels] each, oldest first), then their delta-rule states
// ([n_v_heads][d_k][d_v] each).
//
// Rows are processed in order, each with its own sequence (`info` holds (seq, pos) pairs, or is
// null when every row belongs to sequence `seq0`), which is exact for any batch: prompt chunks,
// decode steps, several sequences interleaved.
//
// v1 (this file):
// - dn_conv: a thread per channel walks the rows in order, state read and written in place.
// - dn_rule: column j of a head's state only depends on its own column (kv_mem_j = Σ_i S_ij k_i,
//   delta_j = β (v_j − kv_mem_j), S_ij += k_i delta_j, o_j = Σ_i S_ij q_i), so a warp takes 32
//   columns of one value head and each lane keeps its column in registers across the rows of a
//   sequence (loaded when the sequence changes, stored at the end). q and k are L2-normed by
//   the warp and shared through shared memory.
// Prefill is the token-by-token recurrence, not the chunked (WY / UT-transform) form: exact, but
// serial over the ubatch rows. Next: chunked prefill on tensor cores.

__device__ __forceinline__ float dn_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float dn_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ int dn_seq(const int* info, int seq0, int r) {
    return info ? info[2 * r] : seq0;
}

// qkv[r][c] = silu(Σ_j w[c][j] · window_j) with window = (state of the row's sequence, input).
extern "C" __global__ void dn_conv(float* __restrict__ qkv, float* __restrict__ state,
                                   const float* __restrict__ kernel, int n_rows, int ch, int kw,
                                   const int* __restrict__ info, int seq0, i64 layer_off,
                                   i64 seq_stride) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= ch) return;
    const float* w = kernel + (i64)c * kw;
    for (int r = 0; r < n_rows; r++) {
        float* st = state + layer_off + (i64)dn_seq(info, seq0, r) * seq_stride + c;
        float* xp = qkv + (i64)r * ch + c;
        float input = *xp;
        float acc = w[kw - 1] * input;
        for (int j = 0; j < kw - 1; j++) acc += w[j] * st[(i64)j * ch];
        for (int j = 0; j + 2 < kw; j++) st[(i64)j * ch] = st[(i64)(j + 1) * ch];
        if (kw >= 2) st[(i64)(kw - 2) * ch] = input;
        *xp = acc / (1.0f + expf(-acc));
    }
}

// Block = one warp: value head blockIdx.x, state columns blockIdx.y·32 + lane. DK: the largest
// key head size this instance holds in registers (dk <= DK).
template <int DK>
__device__ void dn_rule(const float* __restrict__ qkv, const float* __restrict__ alpha,
                        const float* __restrict__ beta, const float* __restrict__ dt_bias,
                        const float* __restrict__ a, float* __restrict__ state,
                        float* __restrict__ out, int n_rows, int nk, int nv, int dk, int dv,
                        const int* __restrict__ info, int seq0, i64 ssm_off, i64 seq_stride) {
    __shared__ float qs[DK], ks[DK];
    int lane = threadIdx.x & 31;
    int h = blockIdx.x, j = blockIdx.y * 32 + lane;
    bool active = j < dv;
    int kh = h % nk;
    i64 ch = 2 * (i64)nk * dk + (i64)nv * dv;
    float q_scale = 1.0f / sqrtf((float)dk);
    float s[DK];
#pragma unroll
    for (int i = 0; i < DK; i++) s[i] = 0.0f;
    int cur = -1;
    float* sp = state;
    for (int r = 0; r < n_rows; r++) {
        int seq = dn_seq(info, seq0, r);
        if (seq != cur) {
            if (cur >= 0 && active) {
#pragma unroll
                for (int i = 0; i < DK; i++)
                    if (i < dk) sp[(i64)i * dv + j] = s[i];
            }
            cur = seq;
            sp = state + ssm_off + (i64)seq * seq_stride + (i64)h * dk * dv;
            if (active) {
#pragma unroll
                for (int i = 0; i < DK; i++)
                    if (i < dk) s[i] = sp[(i64)i * dv + j];
            }
        }
        const float* row = qkv + (i64)r * ch;
        const float* q = row + (i64)kh * dk;
        const float* k = row + (i64)nk * dk + (i64)kh * dk;
        // L2 norms as transformers computes them: x / sqrt(Σx² + 1e-6).
        float sq = 0.0f, sk = 0.0f;
        for (int i = lane; i < dk; i += 32) {
            sq += q[i] * q[i];
            sk += k[i] * k[i];
        }
        float qn = 1.0f / sqrtf(warp_sum(sq) + 1e-6f) * q_scale;
        float kn = 1.0f / sqrtf(warp_sum(sk) + 1e-6f);
        __syncwarp();
        for (int i = lane; i < dk; i += 32) {
            qs[i] = q[i] * qn;
            ks[i] = k[i] * kn;
        }
        __syncwarp();
        float decay = expf(a[h] * dn_softplus(alpha[(i64)r * nv + h] + dt_bias[h]));
        float b = dn_sigmoid(beta[(i64)r * nv + h]);
        if (active) {
            float mem = 0.0f;
#pragma unroll
            for (int i = 0; i < DK; i++) {
                if (i < dk) {
                    s[i] *= decay;
                    mem += s[i] * ks[i];
                }
            }
            float delta = b * (row[2 * (i64)nk * dk + (i64)h * dv + j] - mem);
            float o = 0.0f;
#pragma unroll
            for (int i = 0; i < DK; i++) {
                if (i < dk) {
                    s[i] += ks[i] * delta;
                    o += s[i] * qs[i];
                }
            }
            out[((i64)r * nv + h) * dv + j] = o;
        }
    }
    if (cur >= 0 && active) {
#pragma unroll
        for (int i = 0; i < DK; i++)
            if (i < dk) sp[(i64)i * dv + j] = s[i];
    }
}

#define DN_RULE_KERNEL(DK)                                                                       \
    extern "C" __global__ void __launch_bounds__(32) dn_rule_k##DK(                              \
        const float* qkv, const float* alpha, const float* beta, const float* dt_bias,          \
        const float* a, float* state, float* out, int n_rows, int nk, int nv, int dk, int dv,   \
        const int* info, int seq0, i64 ssm_off, i64 seq_stride) {                                \
        dn_rule<DK>(qkv, alpha, beta, dt_bias, a, state, out, n_rows, nk, nv, dk, dv, info,      \
                    seq0, ssm_off, seq_stride);                                                  \
    }
DN_RULE_KERNEL(32)
DN_RULE_KERNEL(64)
DN_RULE_KERNEL(128)
DN_RULE_KERNEL(256)

// Zeroes one sequence's conv and delta-rule state in every layer (layer = blockIdx.y).
extern "C" __global__ void dn_reset(float* __restrict__ state, i64 layer_stride, i64 conv_off,
                                    i64 conv_n, i64 ssm_off, i64 ssm_n) {
    float* base = state + (i64)blockIdx.y * layer_stride;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < conv_n + ssm_n;
         i += (i64)gridDim.x * blockDim.x)
        base[i < conv_n ? conv_off + i : ssm_off + (i - conv_n)] = 0.0f;
}
