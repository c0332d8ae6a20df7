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
// Rows whose length is a multiple of 32 (every quantized type: 32-value sub-blocks, or 16-value
// halves of them): each lane decodes 8 consecutive values of a sub-block with one or two wide
// loads and its scale once, instead of one element (and its scale) per step.


// Eight consecutive values of sub-block `sb` (values 8·p .. 8·p + 7, p in 0..4).
template <int T> __device__ __forceinline__ void deq8(const u8* row, int sb, int p, float* w) {
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = deq_row<T>(row, sb * 32 + 8 * p + i);
}
template <> __device__ __forceinline__ void deq8<TY_F32>(const u8* row, int sb, int p, float* w) {
    const F4* q = (const F4*)(row + (i64)(sb * 32 + 8 * p) * 4);
    F4 a = q[0], b = q[1];
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
    w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
}
template <> __device__ __forceinline__ void deq8<TY_F16>(const u8* row, int sb, int p, float* w) {
    U4 v = *(const U4*)(row + (i64)(sb * 32 + 8 * p) * 2);
    u32 a[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        w[2 * j] = h2f((u16)(a[j] & 0xffffu));
        w[2 * j + 1] = h2f((u16)(a[j] >> 16));
    }
}
template <> __device__ __forceinline__ void deq8<TY_Q4_0>(const u8* row, int sb, int p, float* w) {
    const u8* b = row + (i64)sb * 18;
    float d = ld_h(b);
    const u16* q = (const u16*)(b + 2 + 8 * (p & 1));
    int shift = 4 * (p >> 1);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        u32 v = q[i];
        w[2 * i] = (float)((int)((v >> shift) & 15u) - 8) * d;
        w[2 * i + 1] = (float)((int)((v >> (8 + shift)) & 15u) - 8) * d;
    }
}
template <> __device__ __forceinline__ void deq8<TY_Q4_1>(const u8* row, int sb, int p, float* w) {
    const u8* b = row + (i64)sb * 20;
    float d = ld_h(b), m = ld_h(b + 2);
    const u32* q = (const u32*)(b + 4 + 8 * (p & 1));
    int shift = 4 * (p >> 1);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        u32 v = q[i];
#pragma unroll
        for (int j = 0; j < 4; j++) w[4 * i + j] = (float)((v >> (8 * j + shift)) & 15u) * d + m;
    }
}
template <> __device__ __forceinline__ void deq8<TY_Q8_0>(const u8* row, int sb, int p, float* w) {
    const u8* b = row + (i64)sb * 34;
    float d = ld_h(b);
    const u16* q = (const u16*)(b + 2 + 8 * p);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        u32 v = q[i];
        w[2 * i] = (float)(i8)(v & 0xffu) * d;
        w[2 * i + 1] = (float)(i8)(v >> 8) * d;
    }
}
template <> __device__ __forceinline__ void deq8<TY_Q4_K>(const u8* row, int sb, int p, float* w) {
    const u8* b = row + (i64)(sb >> 3) * 144;
    int j = sb & 7;
    int sc, mn;
    k4_scale_min(b + 4, j, sc, mn);
    float d = ld_h(b) * (float)sc, m = ld_h(b + 2) * (float)mn;
    const u32* q = (const u32*)(b + 16 + 32 * (j >> 1) + 8 * p);
    int shift = 4 * (j & 1);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        u32 v = q[i];
#pragma unroll
        for (int k = 0; k < 4; k++) w[4 * i + k] = d * (float)((v >> (8 * k + shift)) & 15u) - m;
    }
}
template <> __device__ __forceinline__ void deq8<TY_Q6_K>(const u8* row, int sb, int p, float* w) {
    const u8* b = row + (i64)(sb >> 3) * 210;
    int j = sb & 7, n = j >> 2, part = j & 3;
    const u16* ql = (const u16*)(b + 64 * n + 32 * (part & 1) + 8 * p);
    const u16* qh = (const u16*)(b + 128 + 32 * n + 8 * p);
    const i8* sc = (const i8*)(b + 192 + 8 * n);
    float d = ld_h(b + 208) * (float)sc[2 * part + (p >> 1)];
    int lshift = (part >> 1) * 4, hshift = 2 * part;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        u32 l = ql[i], h = qh[i];
        int q0 = (int)(((l >> lshift) & 15u) | (((h >> hshift) & 3u) << 4)) - 32;
        int q1 = (int)(((l >> (8 + lshift)) & 15u) | (((h >> (8 + hshift)) & 3u) << 4)) - 32;
        w[2 * i] = d * (float)q0;
        w[2 * i + 1] = d * (float)q1;
    }
}

// One block of MATVEC32_THREADS per output row. A step of the block covers 32 sub-blocks
// (1024 values, four K-quant super-blocks): thread t decodes values 8·(t%4) .. +7 of sub-block
// t/4, so a warp's weight loads are contiguous and its input loads are 1 KiB contiguous per row
// (fully coalesced). Few steps per thread and independent loads keep many bytes in flight;
// the four warps' sums meet in shared memory.
#define MATVEC32_THREADS 128

// q4_K rows: a thread takes 8 bytes of a 32-byte quant chunk, i.e. 8 values of each of the two
// sub-blocks the chunk holds (low and high nibbles), and applies each sub-block's scale and
// minimum once: d·Σq·x − m·Σx. Twice the weight bytes per thread of the generic path.
template <int R>
__device__ __forceinline__ void matvec_q4k(const u8* __restrict__ row, const float* __restrict__ X,
                           float* acc, int k, int rows) {
    const int tid = threadIdx.x, p = tid & 3;
    const int npairs = k >> 6;
#pragma unroll 2
    for (int u = tid >> 2; u < npairs; u += MATVEC32_THREADS / 4) {
        const u8* b = row + (i64)(u >> 2) * 144;
        const int jj = u & 3;
        int sc0, m0, sc1, m1;
        k4_scale_min(b + 4, 2 * jj, sc0, m0);
        k4_scale_min(b + 4, 2 * jj + 1, sc1, m1);
        const float d = ld_h(b), dm = ld_h(b + 2);
        const float d0 = d * (float)sc0, mm0 = dm * (float)m0;
        const float d1 = d * (float)sc1, mm1 = dm * (float)m1;
        const u32* q = (const u32*)(b + 16 + 32 * jj + 8 * p);
        const u32 v0 = q[0], v1 = q[1];
        const int e0 = u * 64 + 8 * p;
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (R == 1 || r < rows) {
                const F4* xl = (const F4*)(X + (i64)r * k + e0);
                const F4* xh = (const F4*)(X + (i64)r * k + e0 + 32);
                F4 a0 = xl[0], a1 = xl[1], c0 = xh[0], c1 = xh[1];
                float xlo[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                float xhi[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
                float slo = 0.0f, shi = 0.0f, sxl = 0.0f, sxh = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const u32 byte = ((i < 4 ? v0 : v1) >> (8 * (i & 3))) & 0xffu;
                    slo += (float)(byte & 15u) * xlo[i];
                    shi += (float)(byte >> 4) * xhi[i];
                    sxl += xlo[i];
                    sxh += xhi[i];
                }
                acc[r] += d0 * slo - mm0 * sxl + d1 * shi - mm1 * sxh;
            }
        }
    }
}
template <int T, int R>
__device__ void matvec32(const u8* __restrict__ W, const float* __restrict__ X,
                         float* __restrict__ Y, int k, int n_out, int rows, i64 row_bytes) {
    __shared__ float part[MATVEC32_THREADS / 32][R];
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int o = blockIdx.x;
    const u8* row = W + (i64)o * row_bytes;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    int nsb = k >> 5, p = tid & 3;
    if constexpr (T == TY_Q4_K) {
        matvec_q4k<R>(row, X, acc, k, rows);
        nsb = 0;  // done: skip the generic loop
    }
#pragma unroll 4
    for (int sb = tid >> 2; sb < nsb; sb += MATVEC32_THREADS / 4) {
        float w[8];
        deq8<T>(row, sb, p, w);
        int e = sb * 32 + 8 * p;
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (R == 1 || r < rows) {
                const F4* x = (const F4*)(X + (i64)r * k + e);
                F4 a = x[0], b = x[1];
                acc[r] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x +
                          w[5] * b.y + w[6] * b.z + w[7] * b.w;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        float s = warp_sum(acc[r]);
        if (lane == 0) part[warp][r] = s;
    }
    __syncthreads();
    if (tid < rows) {
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < MATVEC32_THREADS / 32; w++) s += part[w][tid];
        Y[(i64)tid * n_out + o] = s;
    }
}

// ---- q4_K matvec, several output rows per warp (v3) -------------------------------------------
// Decode reads each weight once, so the kernel must keep ~3 TB/s of weight bytes moving with
// little arithmetic per byte. A warp owns RPW output rows and walks them together: lane
// (s, j, h) takes 16 bytes of quant chunk j (values 16h..16h+15 of sub-blocks 2j and 2j+1) of
// super-block s of every row, so each input value loaded from L1 serves RPW rows, and every
// weight load is one 16-byte access (plus the super-block's 16-byte header, shared by the 8
// lanes of that super-block). Nibbles become floats by placing them under the exponent of
// 2^23 (one byte permute and one subtraction, exact) instead of integer-to-float conversions,
// whose throughput is a quarter of the FMA's. Each sub-block's scale and minimum apply once:
// d·sc·Σq·x − dmin·m·Σx.
#define MV4K_WARPS 4

// The per-lane dots (q4k_lane_dots) live in common.cuh: moe.cu's expert products use them too.

// One product: block `blk` of the launch covers output rows (blk·MV4K_WARPS + warp)·RPW ...
template <int RPW>
__device__ __forceinline__ void matvec_q4k_block(const u8* W, const float* X, float* Y, int k,
                                                 int n_out, i64 row_bytes, int blk) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int o0 = (blk * MV4K_WARPS + warp) * RPW;
    if (o0 >= n_out) return;
    float acc[1][RPW];
    q4k_lane_dots<RPW, 1>(W, W, X, k, o0, n_out, row_bytes, acc);
#pragma unroll
    for (int i = 0; i < RPW; i++) {
        const float v = warp_sum(acc[0][i]);
        if (lane == 0 && o0 + i < n_out) Y[o0 + i] = v;
    }
}

#define MV4K_KERNEL(RPW)                                                                         \
    extern "C" __global__ void __launch_bounds__(32 * MV4K_WARPS)                                \
        matvec_q4k_w##RPW(const u8* W, const float* X, float* Y, int k, int n_out,              \
                          i64 row_bytes) {                                                       \
        matvec_q4k_block<RPW>(W, X, Y, k, n_out, row_bytes, blockIdx.x);                         \
    }                                                                                            \
    /* Three products of the same input in one launch (a layer's q, k, v): blocks           */   \
    /* 0 .. b0 − 1 take the first, the next b1 the second, the rest the third.              */   \
    extern "C" __global__ void __launch_bounds__(32 * MV4K_WARPS) matvec3_q4k_w##RPW(           \
        const u8* W0, float* Y0, int n0, int b0, const u8* W1, float* Y1, int n1, int b1,       \
        const u8* W2, float* Y2, int n2, const float* X, int k, i64 row_bytes) {                 \
        const int blk = blockIdx.x;                                                              \
        if (blk < b0)                                                                            \
            matvec_q4k_block<RPW>(W0, X, Y0, k, n0, row_bytes, blk);                             \
        else if (blk < b0 + b1)                                                                  \
            matvec_q4k_block<RPW>(W1, X, Y1, k, n1, row_bytes, blk - b0);                        \
        else                                                                                     \
            matvec_q4k_block<RPW>(W2, X, Y2, k, n2, row_bytes, blk - b0 - b1);                   \
    }
MV4K_KERNEL(1)
MV4K_KERNEL(2)
MV4K_KERNEL(4)

// A gated FFN's first half for one input row: Y[o] = act(gate_o · x) · (up_o · x). Each warp
// reads the same rows of both matrices, so the activation applies in the epilogue (no separate
// product outputs, no GLU launch).
template <int RPW, int ACT>
__device__ void matvec_glu_q4k(const u8* Wg, const u8* Wu, const float* X, float* Y, int k,
                               int n_out, i64 row_bytes) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int o0 = (blockIdx.x * MV4K_WARPS + warp) * RPW;
    if (o0 >= n_out) return;
    float acc[2][RPW];
    q4k_lane_dots<RPW, 2>(Wg, Wu, X, k, o0, n_out, row_bytes, acc);
#pragma unroll
    for (int i = 0; i < RPW; i++) {
        const float g = warp_sum(acc[0][i]), u = warp_sum(acc[1][i]);
        if (lane == 0 && o0 + i < n_out) Y[o0 + i] = (ACT == 0 ? silu(g) : gelu_tanh(g)) * u;
    }
}
#define MV4K_GLU_KERNEL(RPW, NAME, ACT)                                                          \
    extern "C" __global__ void __launch_bounds__(32 * MV4K_WARPS) matvec_glu_##NAME##_q4k_w##RPW( \
        const u8* Wg, const u8* Wu, const float* X, float* Y, int k, int n_out, i64 row_bytes) { \
        matvec_glu_q4k<RPW, ACT>(Wg, Wu, X, Y, k, n_out, row_bytes);                             \
    }
MV4K_GLU_KERNEL(1, silu, 0)
MV4K_GLU_KERNEL(2, silu, 0)
MV4K_GLU_KERNEL(4, silu, 0)
MV4K_GLU_KERNEL(1, gelu_tanh, 1)
MV4K_GLU_KERNEL(2, gelu_tanh, 1)
MV4K_GLU_KERNEL(4, gelu_tanh, 1)

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

// R: input rows the kernel's registers hold (the launch picks the smallest R >= rows); few
// registers for decode (R = 1) keep many blocks resident to hide the loads' latency.
#define MATVEC32_KERNEL(NAME, T, R)                                                              \
    extern "C" __global__ void __launch_bounds__(MATVEC32_THREADS, 8)                            \
        matvec32_r##R##_##NAME(const u8* W, const float* X, float* Y, int k, int n_out,         \
                               int rows, i64 row_bytes) {                                        \
        matvec32<T, R>(W, X, Y, k, n_out, rows, row_bytes);                                      \
    }

#define MATMUL_KERNELS(NAME, T)                                                                  \
    extern "C" __global__ void __launch_bounds__(32 * MATVEC_WARPS)                              \
        matvec_##NAME(const u8* W, const float* X, float* Y, int k, int n_out, int rows,        \
                      i64 row_bytes) {                                                           \
        matvec<T>(W, X, Y, k, n_out, rows, row_bytes);                                           \
    }                                                                                            \
    MATVEC32_KERNEL(NAME, T, 1)                                                                  \
    MATVEC32_KERNEL(NAME, T, 2)                                                                  \
    MATVEC32_KERNEL(NAME, T, 4)                                                                  \
    MATVEC32_KERNEL(NAME, T, 8)                                                                  \
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

// ---- operands of the cuBLAS path (prefill) ----------------------------------------------------
// Large products run as f16 tensor-core GEMMs in cuBLAS: the weights are dequantized to f16 a
// chunk of output rows at a time into planned scratch, the inputs converted once.

// Rows o0 .. o0 + n of W (type T, rows of k values, k a multiple of 32) into dense f16;
// thread per 8 values.
template <int T>
__device__ void dequant_rows_f16(const u8* __restrict__ W, u16* __restrict__ out, int k, int n,
                                 i64 row_bytes, int o0) {
    i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    i64 per_row = k >> 3;
    if (t >= per_row * n) return;
    int r = (int)(t / per_row), c = (int)(t % per_row);
    float w[8];
    deq8<T>(W + (i64)(o0 + r) * row_bytes, c >> 2, c & 3, w);
    U4 v;
    v.x = (u32)f2h(w[0]) | ((u32)f2h(w[1]) << 16);
    v.y = (u32)f2h(w[2]) | ((u32)f2h(w[3]) << 16);
    v.z = (u32)f2h(w[4]) | ((u32)f2h(w[5]) << 16);
    v.w = (u32)f2h(w[6]) | ((u32)f2h(w[7]) << 16);
    *(U4*)(out + (i64)r * k + 8 * c) = v;
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ x, u16* __restrict__ out, i64 n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        out[i] = f2h(x[i]);
}

#define DEQUANT_F16_KERNEL(NAME, T)                                                              \
    extern "C" __global__ void dequant_f16_##NAME(const u8* W, u16* out, int k, int n,          \
                                                  i64 row_bytes, int o0) {                       \
        dequant_rows_f16<T>(W, out, k, n, row_bytes, o0);                                        \
    }
DEQUANT_F16_KERNEL(f32, TY_F32)
DEQUANT_F16_KERNEL(f16, TY_F16)
DEQUANT_F16_KERNEL(bf16, TY_BF16)
DEQUANT_F16_KERNEL(q4_0, TY_Q4_0)
DEQUANT_F16_KERNEL(q4_1, TY_Q4_1)
DEQUANT_F16_KERNEL(q5_0, TY_Q5_0)
DEQUANT_F16_KERNEL(q5_1, TY_Q5_1)
DEQUANT_F16_KERNEL(q8_0, TY_Q8_0)
DEQUANT_F16_KERNEL(iq4_nl, TY_IQ4_NL)
DEQUANT_F16_KERNEL(q4_K, TY_Q4_K)
DEQUANT_F16_KERNEL(q5_K, TY_Q5_K)
DEQUANT_F16_KERNEL(q6_K, TY_Q6_K)
