// Matrix products with quantized weights read in place: out[r][o] = Σ_i W[o][i] · x[r][i].
// W has n_out rows of k values (row_bytes each, type T); x and out are dense f32 row-major.
//
// v1 (this file):
// - matvec: decode and small batches (rows <= MATVEC_MAX_ROWS). One warp per output row; each
//   lane dequantizes every 32nd weight of the row straight from its block and multiplies it
//   with up to 8 input rows held in registers, then a warp reduction. Memory-bound on the
//   weights, which are read exactly once.
// - tiled: prefill. A 64×64 output tile per block of 256 threads; weights are dequantized into
//   shared memory 32 columns at a time, so each weight is decoded once per 64 input rows.
// Next steps: tensor cores (mma on dequantized f16 tiles) or cuBLAS for large rows, and
// 16-byte vector loads with per-block decoding in the matvec.

#define MATVEC_MAX_ROWS 8
#define MATVEC_WARPS 4

template <int T>
__device__ void matvec(const u8* __restrict__ W, const float* __restrict__ X, float* __restrict__ Y,
                       int k, int n_out, int rows, i64 row_bytes) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o = blockIdx.x * MATVEC_WARPS + warp;
    if (o >= n_out) return;
    const u8* row = W + (i64)o * row_bytes;
    float acc[MATVEC_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MATVEC_MAX_ROWS; r++) acc[r] = 0.0f;
    for (int e = lane; e < k; e += 32) {
        float w = deq_row<T>(row, e);
#pragma unroll
        for (int r = 0; r < MATVEC_MAX_ROWS; r++)
            if (r < rows) acc[r] += w * X[(i64)r * k + e];
    }
#pragma unroll
    for (int r = 0; r < MATVEC_MAX_ROWS; r++) {
        if (r < rows) {
            float s = warp_sum(acc[r]);
            if (lane == 0) Y[(i64)r * n_out + o] = s;
        }
    }
}

// ---- sub-block matvec (v2) --------------------------------------------------------------------
// Rows whose length is a multiple of 32: each lane decodes whole 32-value sub-blocks (every
// weight type here is made of 32-value sub-blocks, or of 16-value halves of them) with wide
// loads and multiplies them with F4 loads of the inputs. Lanes of a warp take consecutive
// sub-blocks, so the warp still reads its row front to back.

// 16-byte vector loads (no CUDA headers under NVRTC, so no float4/uint4).
struct alignas(16) F4 { float x, y, z, w; };
struct alignas(16) U4 { u32 x, y, z, w; };

// The 32 values of sub-block `sb` of a row (elements 32·sb .. 32·sb + 31).
template <int T> __device__ __forceinline__ void deq32(const u8* row, int sb, float* w) {
#pragma unroll
    for (int i = 0; i < 32; i++) w[i] = deq_row<T>(row, sb * 32 + i);
}
template <> __device__ __forceinline__ void deq32<TY_F32>(const u8* row, int sb, float* w) {
    const F4* p = (const F4*)(row + (i64)sb * 128);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        F4 v = p[i];
        w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
    }
}
template <> __device__ __forceinline__ void deq32<TY_F16>(const u8* row, int sb, float* w) {
    const U4* p = (const U4*)(row + (i64)sb * 64);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        U4 v = p[i];
        u32 a[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            w[8 * i + 2 * j] = h2f((u16)(a[j] & 0xffffu));
            w[8 * i + 2 * j + 1] = h2f((u16)(a[j] >> 16));
        }
    }
}
template <> __device__ __forceinline__ void deq32<TY_Q4_0>(const u8* row, int sb, float* w) {
    const u8* b = row + (i64)sb * 18;
    float d = ld_h(b);
    const u16* q = (const u16*)(b + 2);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        u32 v = q[i];
        w[2 * i] = (float)((int)(v & 15) - 8) * d;
        w[2 * i + 1] = (float)((int)((v >> 8) & 15) - 8) * d;
        w[2 * i + 16] = (float)((int)((v >> 4) & 15) - 8) * d;
        w[2 * i + 17] = (float)((int)((v >> 12) & 15) - 8) * d;
    }
}
template <> __device__ __forceinline__ void deq32<TY_Q4_1>(const u8* row, int sb, float* w) {
    const u8* b = row + (i64)sb * 20;
    float d = ld_h(b), m = ld_h(b + 2);
    const u32* q = (const u32*)(b + 4);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        u32 v = q[i];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            u32 byte = (v >> (8 * j)) & 0xffu;
            w[4 * i + j] = (float)(byte & 15) * d + m;
            w[4 * i + j + 16] = (float)(byte >> 4) * d + m;
        }
    }
}
template <> __device__ __forceinline__ void deq32<TY_Q8_0>(const u8* row, int sb, float* w) {
    const u8* b = row + (i64)sb * 34;
    float d = ld_h(b);
    const u16* q = (const u16*)(b + 2);
#pragma unroll
    for (int i = 0; i < 16; i++) {
        u32 v = q[i];
        w[2 * i] = (float)(i8)(v & 0xffu) * d;
        w[2 * i + 1] = (float)(i8)(v >> 8) * d;
    }
}
template <> __device__ __forceinline__ void deq32<TY_Q4_K>(const u8* row, int sb, float* w) {
    const u8* b = row + (i64)(sb >> 3) * 144;
    int j = sb & 7;
    int sc, mn;
    k4_scale_min(b + 4, j, sc, mn);
    float d = ld_h(b) * (float)sc, m = ld_h(b + 2) * (float)mn;
    const U4* q = (const U4*)(b + 16 + 32 * (j >> 1));
    int shift = 4 * (j & 1);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        U4 v = q[h];
        u32 a[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int k = 0; k < 4; k++)
                w[16 * h + 4 * i + k] = d * (float)((a[i] >> (8 * k + shift)) & 15u) - m;
    }
}
template <> __device__ __forceinline__ void deq32<TY_Q6_K>(const u8* row, int sb, float* w) {
    const u8* b = row + (i64)(sb >> 3) * 210;
    int j = sb & 7, n = j >> 2, part = j & 3;
    const u16* ql = (const u16*)(b + 64 * n + 32 * (part & 1));
    const u16* qh = (const u16*)(b + 128 + 32 * n);
    const i8* sc = (const i8*)(b + 192 + 8 * n);
    float d = ld_h(b + 208);
    float d0 = d * (float)sc[2 * part], d1 = d * (float)sc[2 * part + 1];
    int lshift = (part >> 1) * 4, hshift = 2 * part;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        u32 l = ql[i], h = qh[i];
        int q0 = (int)(((l >> lshift) & 15u) | (((h >> hshift) & 3u) << 4)) - 32;
        int q1 = (int)(((l >> (8 + lshift)) & 15u) | (((h >> (8 + hshift)) & 3u) << 4)) - 32;
        float dd = i < 8 ? d0 : d1;
        w[2 * i] = dd * (float)q0;
        w[2 * i + 1] = dd * (float)q1;
    }
}

template <int T>
__device__ void matvec32(const u8* __restrict__ W, const float* __restrict__ X,
                         float* __restrict__ Y, int k, int n_out, int rows, i64 row_bytes) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int o = blockIdx.x * MATVEC_WARPS + warp;
    if (o >= n_out) return;
    const u8* row = W + (i64)o * row_bytes;
    float acc[MATVEC_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < MATVEC_MAX_ROWS; r++) acc[r] = 0.0f;
    int nsb = k >> 5;
    for (int sb = lane; sb < nsb; sb += 32) {
        float w[32];
        deq32<T>(row, sb, w);
#pragma unroll
        for (int r = 0; r < MATVEC_MAX_ROWS; r++) {
            if (r < rows) {
                const F4* x = (const F4*)(X + (i64)r * k + sb * 32);
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    F4 v = x[i];
                    s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
                }
                acc[r] += s;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < MATVEC_MAX_ROWS; r++) {
        if (r < rows) {
            float s = warp_sum(acc[r]);
            if (lane == 0) Y[(i64)r * n_out + o] = s;
        }
    }
}

#define TILE 64
#define TK 32

template <int T>
__device__ void matmul_tiled(const u8* __restrict__ W, const float* __restrict__ X,
                             float* __restrict__ Y, int k, int n_out, int rows, i64 row_bytes) {
    __shared__ float ws[TK][TILE + 1];
    __shared__ float xs[TK][TILE + 1];
    int o0 = blockIdx.x * TILE, r0 = blockIdx.y * TILE;
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    float acc[4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) acc[a][b] = 0.0f;
    for (int k0 = 0; k0 < k; k0 += TK) {
        for (int idx = tid; idx < TK * TILE; idx += 256) {
            int rr = idx / TK, kk = idx % TK;
            int o = o0 + rr, r = r0 + rr, e = k0 + kk;
            ws[kk][rr] = (o < n_out && e < k) ? deq_row<T>(W + (i64)o * row_bytes, e) : 0.0f;
            xs[kk][rr] = (r < rows && e < k) ? X[(i64)r * k + e] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < TK; kk++) {
            float xv[4], wv[4];
#pragma unroll
            for (int a = 0; a < 4; a++) xv[a] = xs[kk][ty + 16 * a];
#pragma unroll
            for (int b = 0; b < 4; b++) wv[b] = ws[kk][tx + 16 * b];
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) acc[a][b] += xv[a] * wv[b];
        }
        __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < 4; a++) {
        int r = r0 + ty + 16 * a;
        if (r >= rows) continue;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            int o = o0 + tx + 16 * b;
            if (o < n_out) Y[(i64)r * n_out + o] = acc[a][b];
        }
    }
}

#define MATMUL_KERNELS(NAME, T)                                                                  \
    extern "C" __global__ void __launch_bounds__(32 * MATVEC_WARPS)                              \
        matvec_##NAME(const u8* W, const float* X, float* Y, int k, int n_out, int rows,        \
                      i64 row_bytes) {                                                           \
        matvec<T>(W, X, Y, k, n_out, rows, row_bytes);                                           \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(32 * MATVEC_WARPS)                              \
        matvec32_##NAME(const u8* W, const float* X, float* Y, int k, int n_out, int rows,      \
                        i64 row_bytes) {                                                         \
        matvec32<T>(W, X, Y, k, n_out, rows, row_bytes);                                         \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        matmul_##NAME(const u8* W, const float* X, float* Y, int k, int n_out, int rows,        \
                      i64 row_bytes) {                                                           \
        matmul_tiled<T>(W, X, Y, k, n_out, rows, row_bytes);                                     \
    }

MATMUL_KERNELS(f32, TY_F32)
MATMUL_KERNELS(f16, TY_F16)
MATMUL_KERNELS(bf16, TY_BF16)
MATMUL_KERNELS(q4_0, TY_Q4_0)
MATMUL_KERNELS(q4_1, TY_Q4_1)
MATMUL_KERNELS(q5_0, TY_Q5_0)
MATMUL_KERNELS(q5_1, TY_Q5_1)
MATMUL_KERNELS(q8_0, TY_Q8_0)
MATMUL_KERNELS(iq4_nl, TY_IQ4_NL)
MATMUL_KERNELS(q4_K, TY_Q4_K)
MATMUL_KERNELS(q5_K, TY_Q5_K)
MATMUL_KERNELS(q6_K, TY_Q6_K)
