// Mixture-of-experts SwiGLU FFN on the device, with no host round trip:
//   out[r] += Σ_{e ∈ top-k(softmax(logits[r]))} w_e · down_e(silu(gate_e x[r]) · up_e x[r]).
//
// Expert tensors are 3-D ggml stacks [k, n, n_expert]: expert e's rows are rows e·n .. e·n + n
// of the stack, each `row_bytes` long and read in its GGUF encoding (common.cuh's decoders), so
// only the selected experts' weights are touched.
//
// v1 (this file):
// - moe_route: a warp per row; softmax statistics, then k successive arg-maxima in the strict
//   order (logit descending, expert id ascending), so no "already chosen" flags are needed and
//   ties go to the lower id (as the CPU router does); renormalisation and weights_scale.
// - Small batches (decode): a "pair" is one (row, slot). moe_gate_up_vec: a warp per (output,
//   pair) computes gate and up of the pair's expert and stores silu(g)·u; moe_down_vec: a warp
//   per (output, row) sums the row's slots' down products, weighted, into out (deterministic,
//   no atomics, no down buffer).
// - Larger batches (prefill): moe_group (one block) counts pairs per expert, orders them by
//   expert (ascending pair index within an expert) and lays out row tiles per expert; the
//   grouped tiled kernels then multiply each expert's gathered rows with that expert's weights,
//   a 32-row × 64-output tile per block, each weight dequantized once per tile; moe_combine adds
//   the weighted down outputs of each row's slots into out.
// Next: tensor cores (or cuBLAS grouped GEMM) for the grouped products; 8-values-per-lane
// decoding in the vector kernels.

#define MOE_WARPS 4
#define MOE_TR 32   // rows (pairs) per grouped tile
#define MOE_TO 64   // outputs per grouped tile
#define MOE_TK 32   // inner slice per step
#define MOE_GROUP_CHUNK 4096

#define POS_INF (__int_as_float(0x7f800000))

__device__ __forceinline__ float moe_silu(float x) { return x / (1.0f + expf(-x)); }

// ---- routing ----------------------------------------------------------------------------------

extern "C" __global__ void moe_route(const float* __restrict__ logits, int rows, int n_expert,
                                     int k, int norm_topk, float scale, int* __restrict__ ids,
                                     float* __restrict__ wts) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r = blockIdx.x * MOE_WARPS + warp;
    if (r >= rows) return;
    const float* l = logits + (i64)r * n_expert;
    float mx = NEG_INF;
    for (int e = lane; e < n_expert; e += 32) mx = fmaxf(mx, l[e]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int e = lane; e < n_expert; e += 32) sum += expf(l[e] - mx);
    sum = warp_sum(sum);
    float prev_l = POS_INF;
    int prev_e = -1;
    float chosen = 0.0f;
    for (int s = 0; s < k; s++) {
        float bl = NEG_INF;
        int be = 0x7fffffff;
        for (int e = lane; e < n_expert; e += 32) {
            float v = l[e];
            bool eligible = v < prev_l || (v == prev_l && e > prev_e);
            if (eligible && (v > bl || (v == bl && e < be))) {
                bl = v;
                be = e;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bl, o);
            int oe = __shfl_xor_sync(0xffffffffu, be, o);
            if (ov > bl || (ov == bl && oe < be)) {
                bl = ov;
                be = oe;
            }
        }
        float p = expf(bl - mx) / sum;
        if (lane == 0) {
            ids[(i64)r * k + s] = be;
            wts[(i64)r * k + s] = p;
        }
        chosen += p;
        prev_l = bl;
        prev_e = be;
    }
    if (lane == 0) {
        for (int s = 0; s < k; s++) {
            float w = wts[(i64)r * k + s];
            if (norm_topk && chosen > 0.0f) w /= chosen;
            wts[(i64)r * k + s] = w * scale;
        }
    }
}

// ---- small batches: one warp per output ------------------------------------------------------

// H[pair][o] = silu(gate_e[o] · x[row]) · (up_e[o] · x[row]), e = ids[pair], row = pair / k_used.
template <int T>
__device__ void moe_gate_up_vec(const u8* __restrict__ G, const u8* __restrict__ U,
                                const float* __restrict__ X, const int* __restrict__ ids,
                                int k_used, float* __restrict__ H, int kdim, int n_ff,
                                i64 row_bytes) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o = blockIdx.x * MOE_WARPS + warp;
    int pair = blockIdx.y;
    if (o >= n_ff) return;
    int e = ids[pair];
    i64 wrow = ((i64)e * n_ff + o) * row_bytes;
    const u8* g = G + wrow;
    const u8* u = U + wrow;
    const float* x = X + (i64)(pair / k_used) * kdim;
    float ga = 0.0f, ua = 0.0f;
    if constexpr (T == TY_Q4_K) {
        // Wide loads and one scale per sub-block (common.cuh), as the dense q4_K decode:
        // the per-value decoder below reached 190 GB/s on Qwen3.5-35B-A3B's experts.
        float acc[2][1];
        q4k_lane_dots<1, 2>(G + (i64)e * n_ff * row_bytes, U + (i64)e * n_ff * row_bytes, x, kdim,
                            o, n_ff, row_bytes, acc);
        ga = acc[0][0];
        ua = acc[1][0];
    } else {
        for (int i = lane; i < kdim; i += 32) {
            float xv = x[i];
            ga += deq_row<T>(g, i) * xv;
            ua += deq_row<T>(u, i) * xv;
        }
    }
    ga = warp_sum(ga);
    ua = warp_sum(ua);
    if (lane == 0) H[(i64)pair * n_ff + o] = moe_silu(ga) * ua;
}

// out[r][o] += Σ_s wts[r,s] · (down_{ids[r,s]}[o] · H[r,s]).
template <int T>
__device__ void moe_down_vec(const u8* __restrict__ D, const float* __restrict__ H,
                             const int* __restrict__ ids, const float* __restrict__ wts,
                             int k_used, float* __restrict__ out, int n_ff, int n_embd,
                             i64 row_bytes) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o = blockIdx.x * MOE_WARPS + warp;
    int r = blockIdx.y;
    if (o >= n_embd) return;
    float acc = 0.0f;
    if constexpr (T == TY_Q4_K) {
        // Lane partials of every slot, weighted, then one warp sum.
        for (int s = 0; s < k_used; s++) {
            int pair = r * k_used + s;
            const u8* de = D + (i64)ids[pair] * n_embd * row_bytes;
            float a[1][1];
            q4k_lane_dots<1, 1>(de, de, H + (i64)pair * n_ff, n_ff, o, n_embd, row_bytes, a);
            acc += wts[pair] * a[0][0];
        }
        acc = warp_sum(acc);
    } else {
        for (int s = 0; s < k_used; s++) {
            int pair = r * k_used + s;
            const u8* d = D + ((i64)ids[pair] * n_embd + o) * row_bytes;
            const float* h = H + (i64)pair * n_ff;
            float dot = 0.0f;
            for (int i = lane; i < n_ff; i += 32) dot += deq_row<T>(d, i) * h[i];
            acc += wts[pair] * warp_sum(dot);
        }
    }
    if (lane == 0) out[(i64)r * n_embd + o] += acc;
}

// ---- larger batches: pairs grouped by expert -------------------------------------------------

// offsets[e] .. offsets[e + 1]: the sorted positions of expert e's pairs; tile_start[e]: its
// first row tile; perm[position] = pair, pos[pair] = position. One block.
extern "C" __global__ void moe_group(const int* __restrict__ ids, int n_pairs, int n_expert,
                                     int* __restrict__ offsets, int* __restrict__ tile_start,
                                     int* __restrict__ perm, int* __restrict__ pos) {
    __shared__ int chunk[MOE_GROUP_CHUNK];
    // Pass 1: counts (into offsets[e + 1]); pass 2: placement. Every thread owns experts
    // threadIdx.x, threadIdx.x + blockDim.x, ... and scans the pairs in order.
    for (int pass = 0; pass < 2; pass++) {
        for (int e0 = 0; e0 < n_expert; e0 += blockDim.x) {
            int e = e0 + threadIdx.x;
            int c = pass == 0 ? 0 : (e < n_expert ? offsets[e] : 0);
            for (int i0 = 0; i0 < n_pairs; i0 += MOE_GROUP_CHUNK) {
                int n = min(MOE_GROUP_CHUNK, n_pairs - i0);
                __syncthreads();
                for (int i = threadIdx.x; i < n; i += blockDim.x) chunk[i] = ids[i0 + i];
                __syncthreads();
                if (e < n_expert) {
                    for (int i = 0; i < n; i++) {
                        if (chunk[i] == e) {
                            if (pass == 1) {
                                perm[c] = i0 + i;
                                pos[i0 + i] = c;
                            }
                            c++;
                        }
                    }
                }
            }
            if (pass == 0 && e < n_expert) offsets[e + 1] = c;
        }
        __syncthreads();
        if (pass == 0) {
            if (threadIdx.x == 0) {
                offsets[0] = 0;
                tile_start[0] = 0;
                for (int e = 0; e < n_expert; e++) {
                    int c = offsets[e + 1];
                    offsets[e + 1] = offsets[e] + c;
                    tile_start[e + 1] = tile_start[e] + (c + MOE_TR - 1) / MOE_TR;
                }
            }
            __syncthreads();
        }
    }
}

// The expert whose row tiles hold tile `t` (largest e with tile_start[e] <= t), or -1 past the
// last tile.
__device__ __forceinline__ int moe_tile_expert(const int* tile_start, int n_expert, int t) {
    if (t >= tile_start[n_expert]) return -1;
    int lo = 0, hi = n_expert - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (tile_start[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// Y[p][o] for the sorted positions p of one expert's row tile: GLU: silu(W1·x)·(W2·x) with
// x = X[perm[p] / k_used] (gate/up); else W1·X[p] (down, inputs already in sorted order).
template <int T, bool GLU>
__device__ void moe_grouped(const u8* __restrict__ W1, const u8* __restrict__ W2,
                            const float* __restrict__ X, const int* __restrict__ perm, int k_used,
                            const int* __restrict__ offsets, const int* __restrict__ tile_start,
                            int n_expert, float* __restrict__ Y, int kdim, int n_out,
                            i64 row_bytes) {
    __shared__ float ws1[MOE_TK][MOE_TO + 1];
    __shared__ float ws2[GLU ? MOE_TK : 1][GLU ? MOE_TO + 1 : 1];
    __shared__ float xs[MOE_TK][MOE_TR + 1];
    __shared__ int xrow[MOE_TR];
    int e = moe_tile_expert(tile_start, n_expert, blockIdx.y);
    if (e < 0) return;
    int p0 = offsets[e] + (blockIdx.y - tile_start[e]) * MOE_TR;
    int pend = offsets[e + 1];
    int o0 = blockIdx.x * MOE_TO;
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const u8* base1 = W1 + (i64)e * n_out * row_bytes;
    const u8* base2 = GLU ? W2 + (i64)e * n_out * row_bytes : W1;
    if (tid < MOE_TR) {
        int p = p0 + tid;
        xrow[tid] = p < pend ? (GLU ? perm[p] / k_used : p) : -1;
    }
    float a1[2][4], a2[2][4];
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) a1[a][b] = a2[a][b] = 0.0f;
    __syncthreads();
    for (int k0 = 0; k0 < kdim; k0 += MOE_TK) {
        for (int idx = tid; idx < MOE_TK * MOE_TO; idx += 256) {
            int oo = idx / MOE_TK, kk = idx % MOE_TK;
            int o = o0 + oo, c = k0 + kk;
            bool in = o < n_out && c < kdim;
            ws1[kk][oo] = in ? deq_row<T>(base1 + (i64)o * row_bytes, c) : 0.0f;
            if (GLU) ws2[kk][oo] = in ? deq_row<T>(base2 + (i64)o * row_bytes, c) : 0.0f;
        }
        for (int idx = tid; idx < MOE_TK * MOE_TR; idx += 256) {
            int rr = idx / MOE_TK, kk = idx % MOE_TK;
            int xr = xrow[rr], c = k0 + kk;
            xs[kk][rr] = (xr >= 0 && c < kdim) ? X[(i64)xr * kdim + c] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < MOE_TK; kk++) {
            float xv[2], w1[4], w2[4];
#pragma unroll
            for (int a = 0; a < 2; a++) xv[a] = xs[kk][ty + 16 * a];
#pragma unroll
            for (int b = 0; b < 4; b++) {
                w1[b] = ws1[kk][tx + 16 * b];
                if (GLU) w2[b] = ws2[kk][tx + 16 * b];
            }
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    a1[a][b] += xv[a] * w1[b];
                    if (GLU) a2[a][b] += xv[a] * w2[b];
                }
        }
        __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < 2; a++) {
        int p = p0 + ty + 16 * a;
        if (p >= pend) continue;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            int o = o0 + tx + 16 * b;
            if (o < n_out) Y[(i64)p * n_out + o] = GLU ? moe_silu(a1[a][b]) * a2[a][b] : a1[a][b];
        }
    }
}

// out[r][o] += Σ_s wts[r,s] · D[pos[r,s]][o].
extern "C" __global__ void moe_combine(const float* __restrict__ D, const int* __restrict__ pos,
                                       const float* __restrict__ wts, int rows, int k_used,
                                       int n_embd, float* __restrict__ out) {
    i64 n = (i64)rows * n_embd;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        int r = (int)(i / n_embd), o = (int)(i % n_embd);
        float acc = 0.0f;
        for (int s = 0; s < k_used; s++) {
            int pair = r * k_used + s;
            acc += wts[pair] * D[(i64)pos[pair] * n_embd + o];
        }
        out[i] += acc;
    }
}

#define MOE_KERNELS(NAME, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(32 * MOE_WARPS)                                 \
        moe_gate_up_vec_##NAME(const u8* G, const u8* U, const float* X, const int* ids,        \
                               int k_used, float* H, int kdim, int n_ff, i64 row_bytes) {       \
        moe_gate_up_vec<T>(G, U, X, ids, k_used, H, kdim, n_ff, row_bytes);                      \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(32 * MOE_WARPS)                                 \
        moe_down_vec_##NAME(const u8* D, const float* H, const int* ids, const float* wts,      \
                            int k_used, float* out, int n_ff, int n_embd, i64 row_bytes) {      \
        moe_down_vec<T>(D, H, ids, wts, k_used, out, n_ff, n_embd, row_bytes);                   \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) moe_gate_up_grouped_##NAME(               \
        const u8* G, const u8* U, const float* X, const int* perm, int k_used,                   \
        const int* offsets, const int* tile_start, int n_expert, float* Y, int kdim, int n_out,  \
        i64 row_bytes) {                                                                         \
        moe_grouped<T, true>(G, U, X, perm, k_used, offsets, tile_start, n_expert, Y, kdim,      \
                             n_out, row_bytes);                                                  \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) moe_down_grouped_##NAME(                  \
        const u8* D, const float* X, const int* offsets, const int* tile_start, int n_expert,   \
        float* Y, int kdim, int n_out, i64 row_bytes) {                                          \
        moe_grouped<T, false>(D, D, X, nullptr, 1, offsets, tile_start, n_expert, Y, kdim,       \
                              n_out, row_bytes);                                                 \
    }

MOE_KERNELS(f32, TY_F32)
MOE_KERNELS(f16, TY_F16)
MOE_KERNELS(bf16, TY_BF16)
MOE_KERNELS(q4_0, TY_Q4_0)
MOE_KERNELS(q4_1, TY_Q4_1)
MOE_KERNELS(q5_0, TY_Q5_0)
MOE_KERNELS(q5_1, TY_Q5_1)
MOE_KERNELS(q8_0, TY_Q8_0)
MOE_KERNELS(iq4_nl, TY_IQ4_NL)
MOE_KERNELS(q4_K, TY_Q4_K)
MOE_KERNELS(q5_K, TY_Q5_K)
MOE_KERNELS(q6_K, TY_Q6_K)
