// Shared by every kernel module: integer types, f16/bf16 conversions, loads, warp reductions,
// and per-element dequantization of every weight and KV type turbine reads on the GPU.
//
// NVRTC compiles these without any CUDA header (no toolkit on the machine that builds turbine),
// so the f16 conversions are written as single PTX instructions.
//
// Type ids are ggml's (formats::GgmlType::id); the block layouts are the `formats::blocks`
// structs, little endian, packed. Every f16 field sits at an even offset of its block and every
// block of a row starts at an even offset, so 16-bit loads are aligned.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#define TY_F32 0
#define TY_F16 1
#define TY_Q4_0 2
#define TY_Q4_1 3
#define TY_Q5_0 6
#define TY_Q5_1 7
#define TY_Q8_0 8
#define TY_Q4_K 12
#define TY_Q5_K 13
#define TY_Q6_K 14
#define TY_IQ4_NL 20
#define TY_BF16 30
#define TY_TURBO3 41
#define TY_TURBO4 42
#define TY_TURBO2 43

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// Round to nearest even, like half::f16::from_f32, in integer arithmetic. (A `cvt.rn.f16.f32`
// written straight into byte stores came out with one wrong byte per value on sm_90 with
// NVRTC 13.0; the integer form leaves nothing to the code generator.)
__device__ __forceinline__ u16 f2h(float f) {
    u32 x = __float_as_uint(f);
    u32 sign = (x >> 16) & 0x8000u;
    u32 exp = (x >> 23) & 0xffu;
    u32 man = x & 0x7fffffu;
    if (exp == 0xffu) return (u16)(sign | 0x7c00u | (man ? (0x200u | (man >> 13)) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (u16)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (u16)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        u32 h = man >> shift;
        u32 half_bit = 1u << (shift - 1);
        u32 rem = man & ((1u << shift) - 1u);
        if (rem > half_bit || (rem == half_bit && (h & 1u))) h++;
        return (u16)(sign | h);
    }
    u32 h = sign | ((u32)e << 10) | (man >> 13);
    u32 rem = man & 0x1fffu;
    // A carry out of the mantissa correctly bumps the exponent (up to inf).
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (u16)h;
}

__device__ __forceinline__ float bf2f(u16 h) { return __uint_as_float(((u32)h) << 16); }

// formats::f32_to_bf16: round to nearest even, NaN kept quiet.
__device__ __forceinline__ u16 f2bf(float x) {
    u32 u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 64u);
    return (u16)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

// 16- and 8-byte vector loads (no CUDA headers under NVRTC, so no float4/uint4).
struct alignas(16) F4 { float x, y, z, w; };
struct alignas(16) U4 { u32 x, y, z, w; };
struct alignas(8) U2 { u32 x, y; };

__device__ __forceinline__ u16 ld_u16(const u8* p) { return *(const u16*)p; }
__device__ __forceinline__ float ld_h(const u8* p) { return h2f(ld_u16(p)); }
// Unaligned 32-bit little-endian load (q5_0's qh sits at offset 2).
__device__ __forceinline__ u32 ld_u32_bytes(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// No math header under NVRTC: -inf spelled out.
#define NEG_INF (__int_as_float(0xff800000))

// GLU activations, shared by the element-wise GLU and the fused matvec epilogues.
__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float gelu_tanh(float g) {
    const float SQRT_2_OVER_PI = 0.7978845608028654f;
    const float COEF_A = 0.044715f;
    return 0.5f * g * (1.0f + tanhf(SQRT_2_OVER_PI * g * (1.0f + COEF_A * g * g)));
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// 1 / sqrt(mean + eps) for an RMS norm over n values, from each thread's partial sum of squares
// `s` (in double, like the CPU reference): warp shuffles, then the block's warps through
// `partial` (blockDim.x / 32 doubles of shared memory). Every thread of the block must call it;
// all get the scale.
__device__ float block_rms_scale(double s, int n, float eps, double* partial) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = s;
    __syncthreads();
    double total = 0.0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) total += partial[i];
    const float mean = (float)(total / (double)n);
    return 1.0f / sqrtf(mean + eps);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// ---- block geometry ---------------------------------------------------------------------------

template <int T> struct TypeInfo;
template <> struct TypeInfo<TY_F32> { static constexpr int BS = 1, BB = 4; };
template <> struct TypeInfo<TY_F16> { static constexpr int BS = 1, BB = 2; };
template <> struct TypeInfo<TY_BF16> { static constexpr int BS = 1, BB = 2; };
template <> struct TypeInfo<TY_Q4_0> { static constexpr int BS = 32, BB = 18; };
template <> struct TypeInfo<TY_Q4_1> { static constexpr int BS = 32, BB = 20; };
template <> struct TypeInfo<TY_Q5_0> { static constexpr int BS = 32, BB = 22; };
template <> struct TypeInfo<TY_Q5_1> { static constexpr int BS = 32, BB = 24; };
template <> struct TypeInfo<TY_Q8_0> { static constexpr int BS = 32, BB = 34; };
template <> struct TypeInfo<TY_IQ4_NL> { static constexpr int BS = 32, BB = 18; };
template <> struct TypeInfo<TY_Q4_K> { static constexpr int BS = 256, BB = 144; };
template <> struct TypeInfo<TY_Q5_K> { static constexpr int BS = 256, BB = 176; };
template <> struct TypeInfo<TY_Q6_K> { static constexpr int BS = 256, BB = 210; };
template <> struct TypeInfo<TY_TURBO2> { static constexpr int BS = 128, BB = 34; };
template <> struct TypeInfo<TY_TURBO3> { static constexpr int BS = 128, BB = 50; };
template <> struct TypeInfo<TY_TURBO4> { static constexpr int BS = 128, BB = 66; };

__constant__ i8 KVALUES_IQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

// TurboQuant codebooks and decision midpoints (TURBO-KV.md), f32 literals as written there.
__constant__ float TURBO_C2[4] = {-0.133462f, -0.039994f, 0.039994f, 0.133462f};
__constant__ float TURBO_M2[3] = {-0.086728f, 0.0f, 0.086728f};
__constant__ float TURBO_C3[8] = {-0.190685f, -0.117832f, -0.065717f, -0.021460f,
                                  0.021460f,  0.065717f,  0.117832f,  0.190685f};
__constant__ float TURBO_M3[7] = {-0.154259f, -0.091775f, -0.043589f, 0.0f,
                                  0.043589f,  0.091775f,  0.154259f};
__constant__ float TURBO_C4[16] = {-0.240210f, -0.181385f, -0.141492f, -0.109598f,
                                   -0.082046f, -0.057088f, -0.033692f, -0.011141f,
                                   0.011141f,  0.033692f,  0.057088f,  0.082046f,
                                   0.109598f,  0.141492f,  0.181385f,  0.240210f};
__constant__ float TURBO_M4[15] = {-0.210798f, -0.161439f, -0.125545f, -0.095822f, -0.069567f,
                                   -0.045390f, -0.022417f, 0.0f,       0.022417f,  0.045390f,
                                   0.069567f,  0.095822f,  0.125545f,  0.161439f,  0.210798f};
// Rotation sign diagonals S1, S2: bit i set means -1.
__constant__ u8 TURBO_S1[16] = {0x59, 0x03, 0x6a, 0xe4, 0x49, 0x59, 0xf8, 0x42,
                                0xbb, 0x3b, 0xc6, 0xa4, 0xa9, 0x50, 0xf2, 0x49};
__constant__ u8 TURBO_S2[16] = {0x90, 0xee, 0xac, 0x16, 0xdc, 0x8f, 0x62, 0x3f,
                                0x7a, 0x35, 0xa5, 0xb7, 0x62, 0x65, 0xa5, 0xbe};
#define TURBO_INV_SQRT_128 0.08838834764831845f

__device__ __forceinline__ float turbo_sign(const u8* s, int i) {
    return ((s[i >> 3] >> (i & 7)) & 1) ? -1.0f : 1.0f;
}

template <int T> struct Turbo;
template <> struct Turbo<TY_TURBO2> { static constexpr int NC = 4; };
template <> struct Turbo<TY_TURBO3> { static constexpr int NC = 8; };
template <> struct Turbo<TY_TURBO4> { static constexpr int NC = 16; };

template <int T> __device__ __forceinline__ float turbo_centroid(int c);
template <> __device__ __forceinline__ float turbo_centroid<TY_TURBO2>(int c) { return TURBO_C2[c]; }
template <> __device__ __forceinline__ float turbo_centroid<TY_TURBO3>(int c) { return TURBO_C3[c]; }
template <> __device__ __forceinline__ float turbo_centroid<TY_TURBO4>(int c) { return TURBO_C4[c]; }

// Index of element j of a turbo block (TURBO-KV.md "Index of element j"). The primary template
// serves non-turbo types in branches that `if constexpr` discards but still compiles (kernels
// are not templates).
template <int T> __device__ __forceinline__ int turbo_index(const u8* b, int j) { return 0; }
template <> __device__ __forceinline__ int turbo_index<TY_TURBO2>(const u8* b, int j) {
    return (b[2 + (j >> 2)] >> (2 * (j & 3))) & 3;
}
template <> __device__ __forceinline__ int turbo_index<TY_TURBO3>(const u8* b, int j) {
    int lo = (b[2 + (j >> 2)] >> (2 * (j & 3))) & 3;
    int hi = (b[34 + (j >> 3)] >> (j & 7)) & 1;
    return lo | (hi << 2);
}
template <> __device__ __forceinline__ int turbo_index<TY_TURBO4>(const u8* b, int j) {
    return (b[2 + (j >> 1)] >> (4 * (j & 1))) & 15;
}

template <int T> __device__ __forceinline__ constexpr bool is_turbo() {
    return T == TY_TURBO2 || T == TY_TURBO3 || T == TY_TURBO4;
}

// ---- element dequantization -------------------------------------------------------------------
// deq<T>(blk, j): value j of the block at `blk`, computed as formats::dequantize_block_* does.

__device__ __forceinline__ void k4_scale_min(const u8* q, int j, int& sc, int& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

template <int T> __device__ __forceinline__ float deq(const u8* b, int j);

template <> __device__ __forceinline__ float deq<TY_F32>(const u8* b, int j) {
    return *(const float*)b;
}
template <> __device__ __forceinline__ float deq<TY_F16>(const u8* b, int j) { return ld_h(b); }
template <> __device__ __forceinline__ float deq<TY_BF16>(const u8* b, int j) {
    return bf2f(ld_u16(b));
}
template <> __device__ __forceinline__ float deq<TY_Q4_0>(const u8* b, int j) {
    const u8* qs = b + 2;
    int q = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    return (float)(q - 8) * ld_h(b);
}
template <> __device__ __forceinline__ float deq<TY_Q4_1>(const u8* b, int j) {
    const u8* qs = b + 4;
    int q = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    return (float)q * ld_h(b) + ld_h(b + 2);
}
template <> __device__ __forceinline__ float deq<TY_Q5_0>(const u8* b, int j) {
    u32 qh = ld_u32_bytes(b + 2);
    const u8* qs = b + 6;
    int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    int q = lo | (int)(((qh >> j) & 1u) << 4);
    return (float)(q - 16) * ld_h(b);
}
template <> __device__ __forceinline__ float deq<TY_Q5_1>(const u8* b, int j) {
    u32 qh = ld_u32_bytes(b + 4);
    const u8* qs = b + 8;
    int lo = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    int q = lo | (int)(((qh >> j) & 1u) << 4);
    return (float)q * ld_h(b) + ld_h(b + 2);
}
template <> __device__ __forceinline__ float deq<TY_Q8_0>(const u8* b, int j) {
    return (float)((const i8*)(b + 2))[j] * ld_h(b);
}
template <> __device__ __forceinline__ float deq<TY_IQ4_NL>(const u8* b, int j) {
    const u8* qs = b + 2;
    int q = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
    return ld_h(b) * (float)KVALUES_IQ4NL[q];
}
template <> __device__ __forceinline__ float deq<TY_Q4_K>(const u8* b, int j) {
    int c = j >> 6, w = j & 63, l = w & 31, hi = w >> 5;
    int sc, m;
    k4_scale_min(b + 4, 2 * c + hi, sc, m);
    u8 qb = b[16 + 32 * c + l];
    int q = hi ? (qb >> 4) : (qb & 15);
    float d1 = ld_h(b) * (float)sc, m1 = ld_h(b + 2) * (float)m;
    return d1 * (float)q - m1;
}
template <> __device__ __forceinline__ float deq<TY_Q5_K>(const u8* b, int j) {
    int c = j >> 6, w = j & 63, l = w & 31, hi = w >> 5;
    int sc, m;
    k4_scale_min(b + 4, 2 * c + hi, sc, m);
    u8 qb = b[48 + 32 * c + l];
    int q = hi ? (qb >> 4) : (qb & 15);
    int mask = hi ? (2 << (2 * c)) : (1 << (2 * c));
    if (b[16 + l] & mask) q += 16;
    float d1 = ld_h(b) * (float)sc, m1 = ld_h(b + 2) * (float)m;
    return d1 * (float)q - m1;
}
template <> __device__ __forceinline__ float deq<TY_Q6_K>(const u8* b, int j) {
    int n = j >> 7, w = j & 127, part = w >> 5, l = w & 31, is = l >> 4;
    const u8* ql = b + 64 * n;
    const u8* qh = b + 128 + 32 * n;
    const i8* sc = (const i8*)(b + 192 + 8 * n);
    int q;
    switch (part) {
        case 0: q = (ql[l] & 15) | ((qh[l] & 3) << 4); break;
        case 1: q = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4); break;
        case 2: q = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4); break;
        default: q = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4); break;
    }
    return ld_h(b + 208) * (float)sc[is + 2 * part] * (float)(q - 32);
}
template <> __device__ __forceinline__ float deq<TY_TURBO2>(const u8* b, int j) {
    return TURBO_C2[turbo_index<TY_TURBO2>(b, j)] * ld_h(b);
}
template <> __device__ __forceinline__ float deq<TY_TURBO3>(const u8* b, int j) {
    return TURBO_C3[turbo_index<TY_TURBO3>(b, j)] * ld_h(b);
}
template <> __device__ __forceinline__ float deq<TY_TURBO4>(const u8* b, int j) {
    return TURBO_C4[turbo_index<TY_TURBO4>(b, j)] * ld_h(b);
}

// Element e of a row of type T.
template <int T> __device__ __forceinline__ float deq_row(const u8* row, int e) {
    constexpr int BS = TypeInfo<T>::BS, BB = TypeInfo<T>::BB;
    return deq<T>(row + (i64)(e / BS) * BB, e % BS);
}

// ---- the turbo rotation, cooperatively over shared memory -------------------------------------
// `v` holds `nblk` groups of 128 values. Every thread of the block must call these.

__device__ void block_hadamard(float* v, int nblk) {
    for (int h = 1; h < 128; h <<= 1) {
        for (int p = threadIdx.x; p < 64 * nblk; p += blockDim.x) {
            int g = p >> 6, q = p & 63;
            int j = (q / h) * 2 * h + (q % h);
            float* x = v + g * 128;
            float a = x[j], c = x[j + h];
            x[j] = a + c;
            x[j + h] = a - c;
        }
        __syncthreads();
    }
}

// R(x) = S2 · (1/√128) · H · S1 · x, exactly as formats::rotation::rotate.
__device__ void block_rotate(float* v, int nblk) {
    for (int i = threadIdx.x; i < 128 * nblk; i += blockDim.x) v[i] *= turbo_sign(TURBO_S1, i & 127);
    __syncthreads();
    block_hadamard(v, nblk);
    for (int i = threadIdx.x; i < 128 * nblk; i += blockDim.x)
        v[i] *= TURBO_INV_SQRT_128 * turbo_sign(TURBO_S2, i & 127);
    __syncthreads();
}

// R⁻¹(y) = S1 · (1/√128) · H · S2 · y.
__device__ void block_rotate_inverse(float* v, int nblk) {
    for (int i = threadIdx.x; i < 128 * nblk; i += blockDim.x) v[i] *= turbo_sign(TURBO_S2, i & 127);
    __syncthreads();
    block_hadamard(v, nblk);
    for (int i = threadIdx.x; i < 128 * nblk; i += blockDim.x)
        v[i] *= TURBO_INV_SQRT_128 * turbo_sign(TURBO_S1, i & 127);
    __syncthreads();
}

// ---- q4_K row dots (matmul.cu's decode kernels, moe.cu's expert products) ----------------------
// See matmul.cu ("q4_K matvec, several output rows per warp") for the lane layout: lane
// (s, j, h) takes 16 bytes of quant chunk j (values 16h..16h+15 of sub-blocks 2j and 2j+1) of
// super-block s of each row; nibbles become floats under the exponent of 2^23; each sub-block's
// scale and minimum apply once. Rows are k values, k a multiple of 256; X 16-byte aligned.

// Byte i (0..11) of a q4_K super-block's packed scales, held in header words y, z, w.
__device__ __forceinline__ u32 k4_scale_byte(u32 y, u32 z, u32 w, int i) {
    const u32 word = i < 4 ? y : (i < 8 ? z : w);
    return (word >> (8 * (i & 3))) & 0xffu;
}

// 6-bit scale and minimum of sub-block i (0..7) from the header words (see k4_scale_min).
__device__ __forceinline__ void k4_scale_min_words(u32 y, u32 z, u32 w, int i, float& sc,
                                                   float& m) {
    if (i < 4) {
        sc = (float)(k4_scale_byte(y, z, w, i) & 63u);
        m = (float)(k4_scale_byte(y, z, w, i + 4) & 63u);
    } else {
        const u32 hi = k4_scale_byte(y, z, w, i + 4);
        sc = (float)((hi & 15u) | ((k4_scale_byte(y, z, w, i - 4) >> 6) << 4));
        m = (float)((hi >> 4) | ((k4_scale_byte(y, z, w, i) >> 6) << 4));
    }
}

// Byte b (0..3) of v, a value 0..255, as a float: the byte becomes the low mantissa bits of
// 2^23, and 2^23 is subtracted (exact).
__device__ __forceinline__ float byte_to_float(u32 v, int b) {
    return __int_as_float((int)__byte_perm(v, 0x4B000000u, 0x7540u | (u32)b)) - 8388608.0f;
}

// Per-lane partial dots of rows o0 .. o0 + RPW − 1 of NW weight matrices (same shape) with one
// input row x: acc[w][i]. The caller sums them over the warp.
template <int RPW, int NW>
__device__ __forceinline__ void q4k_lane_dots(const u8* __restrict__ W0, const u8* __restrict__ W1,
                                              const float* __restrict__ X, int k, int o0,
                                              int n_out, i64 row_bytes, float (&acc)[NW][RPW]) {
    const int lane = threadIdx.x & 31;
    const int nsuper = k >> 8;
    const int j = (lane & 7) >> 1, h = lane & 1;
    const u8* rowp[NW][RPW];
#pragma unroll
    for (int w = 0; w < NW; w++)
#pragma unroll
        for (int i = 0; i < RPW; i++) {
            rowp[w][i] = (w == 0 ? W0 : W1) + (i64)min(o0 + i, n_out - 1) * row_bytes;
            acc[w][i] = 0.0f;
        }
#pragma unroll 2
    for (int s = lane >> 3; s < nsuper; s += 4) {
        const i64 boff = (i64)s * 144;
        U4 hdr[NW][RPW], qv[NW][RPW];
#pragma unroll
        for (int w = 0; w < NW; w++)
#pragma unroll
            for (int i = 0; i < RPW; i++) {
                hdr[w][i] = *(const U4*)(rowp[w][i] + boff);
                qv[w][i] = *(const U4*)(rowp[w][i] + boff + 16 + 32 * j + 16 * h);
            }
        const int e = s * 256 + 64 * j + 16 * h;
        const F4* xl = (const F4*)(X + e);
        const F4* xh = (const F4*)(X + e + 32);
        float xlo[16], xhi[16];
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const F4 a = xl[t], c = xh[t];
            xlo[4 * t] = a.x; xlo[4 * t + 1] = a.y; xlo[4 * t + 2] = a.z; xlo[4 * t + 3] = a.w;
            xhi[4 * t] = c.x; xhi[4 * t + 1] = c.y; xhi[4 * t + 2] = c.z; xhi[4 * t + 3] = c.w;
        }
        float sxl = 0.0f, sxh = 0.0f;
#pragma unroll
        for (int t = 0; t < 16; t++) {
            sxl += xlo[t];
            sxh += xhi[t];
        }
#pragma unroll
        for (int w = 0; w < NW; w++)
#pragma unroll
            for (int i = 0; i < RPW; i++) {
                const U4 q = qv[w][i], hd = hdr[w][i];
                const u32 words[4] = {q.x, q.y, q.z, q.w};
                float dl = 0.0f, dh = 0.0f;
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    const u32 lo = words[t] & 0x0f0f0f0fu, hi = (words[t] >> 4) & 0x0f0f0f0fu;
#pragma unroll
                    for (int b = 0; b < 4; b++) {
                        dl += byte_to_float(lo, b) * xlo[4 * t + b];
                        dh += byte_to_float(hi, b) * xhi[4 * t + b];
                    }
                }
                float sc0, m0, sc1, m1;
                k4_scale_min_words(hd.y, hd.z, hd.w, 2 * j, sc0, m0);
                k4_scale_min_words(hd.y, hd.z, hd.w, 2 * j + 1, sc1, m1);
                const float d = h2f((u16)(hd.x & 0xffffu)), dmin = h2f((u16)(hd.x >> 16));
                acc[w][i] += d * (sc0 * dl + sc1 * dh) - dmin * (m0 * sxl + m1 * sxh);
            }
    }
}
