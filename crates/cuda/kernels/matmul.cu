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
