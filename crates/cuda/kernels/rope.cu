// Rotary position embedding, in place. One block per row (token); the angles of the row are
// built once in shared memory the way the CPU reference builds them (theta_i by repeated f32
// multiplication with base^(-2/n_rot)), then every (head, pair) rotates.
//
// positions: per-row positions, or null for contiguous rows pos0, pos0 + 1, ...
// neox: pairs (i, i + n_rot/2); otherwise adjacent pairs (2i, 2i + 1).
// freq_factors: null, or n_rot/2 divisors of each pair's angle (llama 3 rope_freqs).

#define ROPE_MAX_HALF 512

extern "C" __global__ void rope(float* x, const int* positions, int pos0, int n_head,
                                int head_dim, int n_rot, float theta_scale, float freq_scale,
                                int neox, const float* freq_factors) {
    __shared__ float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    int r = blockIdx.x;
    int half = n_rot / 2;
    if (threadIdx.x == 0) {
        float theta_base = (float)(positions ? positions[r] : pos0 + r);
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
