// Rotary position embedding, in place. One block per row (token); the angles of the row are
// built once in shared memory the way the CPU reference builds them (theta_i by repeated f32
// multiplication with base^(-2/n_rot)), then every (head, pair) rotates.
//
// positions: per-row positions, or null for contiguous rows pos0, pos0 + 1, ...
// neox: pairs (i, i + n_rot/2); otherwise adjacent pairs (2i, 2i + 1).
// freq_factors: null, or n_rot/2 divisors of each pair's angle (llama 3 rope_freqs).

#define ROPE_MAX_HALF 512

// Angles of position `pos` into shared memory: cs[i] = cos θ_i, sn[i] = sin θ_i, with θ_i built
// as the CPU reference builds them. Every thread of the block must call this (it synchronizes).
__device__ void rope_angles(float pos, int half, float theta_scale, float freq_scale,
                            const float* freq_factors, float* cs, float* sn) {
    if (threadIdx.x == 0) {
        float theta_base = pos;
        for (int i = 0; i < half; i++) {
            float ff = freq_factors ? freq_factors[i] : 1.0f;
            cs[i] = freq_scale * theta_base / ff;
            theta_base *= theta_scale;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float theta = cs[i];
        sn[i] = sinf(theta);
        cs[i] = cosf(theta);
    }
    __syncthreads();
}

// Rotates the pairs of one head (in place, shared or global memory).
__device__ __forceinline__ void rope_pairs(float* head, int half, int neox, const float* cs,
                                           const float* sn) {
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        int a = neox ? i : 2 * i;
        int b = neox ? i + half : 2 * i + 1;
        float x0 = head[a], x1 = head[b];
        head[a] = x0 * cs[i] - x1 * sn[i];
        head[b] = x0 * sn[i] + x1 * cs[i];
    }
}

extern "C" __global__ void rope(float* x, const int* positions, int pos0, int n_head,
                                int head_dim, int n_rot, float theta_scale, float freq_scale,
                                int neox, const float* freq_factors) {
    __shared__ float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    int r = blockIdx.x;
    int half = n_rot / 2;
    rope_angles((float)(positions ? positions[r] : pos0 + r), half, theta_scale, freq_scale,
                freq_factors, cs, sn);
    float* row = x + (i64)r * n_head * head_dim;
    for (int p = threadIdx.x; p < n_head * half; p += blockDim.x) {
        int h = p / half, i = p % half;
        float* head = row + (i64)h * head_dim;
        int a = neox ? i : 2 * i;
        int b = neox ? i + half : 2 * i + 1;
        float x0 = head[a], x1 = head[b];
        head[a] = x0 * cs[i] - x1 * sn[i];
        head[b] = x0 * sn[i] + x1 * cs[i];
    }
}

// The query and key heads of an attention layer in one launch: grid (rows, n_head + n_head_kv),
// block (r, h) takes query head h (h < n_head) or key head h − n_head of row r, RMS-normalizes
// it when a norm weight is given (qwen3 and gemma 3's q_norm / k_norm; sum of squares in double
// like the rms_norm kernel), then rotates it. The head goes through shared memory, so the norm's
// reads finish before the rotation's writes.
#define NR_THREADS 128
#define NR_MAX_HEAD 1024
extern "C" __global__ void __launch_bounds__(NR_THREADS)
    norm_rope_qk(float* q, float* k, const float* qw, const float* kw, int n_head, int n_head_kv,
                 int head_dim, float eps, const int* positions, int pos0, int n_rot,
                 float theta_scale, float freq_scale, int neox, const float* freq_factors) {
    __shared__ float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    __shared__ float hv[NR_MAX_HEAD];
    __shared__ double part[NR_THREADS / 32];
    const int r = blockIdx.x, hh = blockIdx.y, tid = threadIdx.x;
    const bool is_q = hh < n_head;
    float* head = is_q ? q + ((i64)r * n_head + hh) * head_dim
                       : k + ((i64)r * n_head_kv + (hh - n_head)) * head_dim;
    const float* w = is_q ? qw : kw;
    float scale = 1.0f;
    if (w) {
        double s = 0.0;
        for (int i = tid; i < head_dim; i += NR_THREADS) {
            float v = head[i];
            s += (double)(v * v);
        }
        scale = block_rms_scale(s, head_dim, eps, part);
    }
    for (int i = tid; i < head_dim; i += NR_THREADS) hv[i] = w ? head[i] * scale * w[i] : head[i];
    const int half = n_rot / 2;
    // rope_angles synchronizes, which also publishes hv.
    rope_angles((float)(positions ? positions[r] : pos0 + r), half, theta_scale, freq_scale,
                freq_factors, cs, sn);
    rope_pairs(hv, half, neox, cs, sn);
    __syncthreads();
    for (int i = tid; i < head_dim; i += NR_THREADS) head[i] = hv[i];
}
