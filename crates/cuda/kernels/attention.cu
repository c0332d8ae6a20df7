// Attention that reads the packed KV cache directly (no expansion to f16).
//
// Compiled once per (K type, V type) pair: the host defines KT and VT (ggml type ids); with TC_D
// also defined, the module holds only the tensor-core prefill of that head width (end of file).
//
// attn_partial: grid (splits, n_head, rows), 128 threads. Block (s, h, r) attends query row r
// (sequence and position (rowinfo[2r], rowinfo[2r+1]), or (seq0, pos0 + r) when rowinfo is
// null), head h, to the keys of split s of its sequence: positions [s·split_len,
// (s+1)·split_len) within the row's causal (and sliding-window) range. Keys go in tiles of 32: each warp scores
// keys (lanes over head dims), then an online-softmax update, then every thread accumulates its
// own output dims over the tile's values.
// - Turbo K: the query is rotated once (R q, zero-padded to 128-groups), and a per-query table
//   lut[c][j] = (R q)[j] · C[c] turns the score into table lookups: score = Σ_blocks norm · Σ_j
//   lut[idx_j][j]. Inner products survive the rotation, so no key is ever un-rotated.
// - Turbo V: per key and 128-group, the codebook scaled by p_t · norm is built in shared memory
//   ("scaled codebook"), so accumulation is one lookup per value; the output stays in the
//   rotated domain until R⁻¹ is applied once per output row.
// With direct = 1 (one split covering every key) the block normalizes and writes the output.
// Otherwise it writes (m, l, acc[pad_v]) to the workspace, and attn_merge combines the splits.

#ifndef KT
#error "KT (K cache type id) must be defined"
#endif
#ifndef VT
#error "VT (V cache type id) must be defined"
#endif

#define ATTN_THREADS 128
#define ATTN_WARPS (ATTN_THREADS / 32)
#define ATTN_TILE 32
// Output dims per thread: padded V heads up to 512 values.
#define ATTN_DPT 4

template <int T, bool TURBO> struct NcOf { static constexpr int NC = 1; };
template <int T> struct NcOf<T, true> { static constexpr int NC = Turbo<T>::NC; };

constexpr bool K_TURBO = is_turbo<KT>();
constexpr bool V_TURBO = is_turbo<VT>();
constexpr int NCK = NcOf<KT, K_TURBO>::NC;
constexpr int NCV = NcOf<VT, V_TURBO>::NC;

template <int T> __device__ __forceinline__ float centroid(int c) {
    if constexpr (is_turbo<T>()) return turbo_centroid<T>(c);
    else return 0.0f;
}

// Value d of a cached row, turbo centroids read from a shared-memory copy `cb`: lanes look up
// different centroids, which constant memory would serve one address at a time.
template <int T>
__device__ __forceinline__ float deq_cb(const u8* row, int d, const float* cb) {
    if constexpr (is_turbo<T>()) {
        const u8* blk = row + (i64)(d >> 7) * TypeInfo<T>::BB;
        return cb[turbo_index<T>(blk, d & 127)] * ld_h(blk);
    } else {
        return deq_row<T>(row, d);
    }
}

#ifndef TC_D
extern "C" __global__ void __launch_bounds__(ATTN_THREADS)
    attn_partial(const float* __restrict__ q, const u8* __restrict__ kbase,
                 const u8* __restrict__ vbase, float* __restrict__ out, float* __restrict__ ws,
                 const u32* __restrict__ rowinfo, int seq0, int pos0, int n_head, int n_head_kv, int hdk, int hdv, int pad_k, int pad_v,
                 i64 khb, i64 vhb, i64 cells, float scale, int window, float softcap,
                 int split_len, int n_splits, int direct) {
    extern __shared__ float smem[];
    const int nbv = pad_v / 128;
    float* qs = smem;
    float* lut = qs + pad_k;
    float* sc = lut + (K_TURBO ? NCK * pad_k : 0);
    float* pw = sc + ATTN_TILE;
    float* vcb = pw + ATTN_TILE;
    float* acc_s = vcb + (V_TURBO ? ATTN_TILE * nbv * NCV : 0);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int s = blockIdx.x, h = blockIdx.y, r = blockIdx.z;
    const int kvh = h / (n_head / n_head_kv);
    const i64 seq = rowinfo ? rowinfo[2 * r] : seq0;
    const int pos = rowinfo ? (int)rowinfo[2 * r + 1] : pos0 + r;
    const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
    const int t0 = max(lo, s * split_len);
    const int t1 = min(pos + 1, (s + 1) * split_len);

    const float* qr = q + ((i64)r * n_head + h) * hdk;
    for (int i = tid; i < pad_k; i += ATTN_THREADS) qs[i] = i < hdk ? qr[i] : 0.0f;
    __syncthreads();
    if constexpr (K_TURBO) {
        block_rotate(qs, pad_k / 128);
        for (int i = tid; i < NCK * pad_k; i += ATTN_THREADS)
            lut[i] = qs[i % pad_k] * centroid<KT>(i / pad_k);
        __syncthreads();
    }

    const u8* kh = kbase + (seq * n_head_kv + kvh) * cells * khb;
    const u8* vh = vbase + (seq * n_head_kv + kvh) * cells * vhb;
    float m = NEG_INF, l = 0.0f;
    float acc[ATTN_DPT];
#pragma unroll
    for (int i = 0; i < ATTN_DPT; i++) acc[i] = 0.0f;

    for (int tile = t0; tile < t1; tile += ATTN_TILE) {
        const int nt = min(ATTN_TILE, t1 - tile);
        for (int kt = warp; kt < nt; kt += ATTN_WARPS) {
            const u8* kr = kh + (i64)(tile + kt) * khb;
            float part = 0.0f;
            if constexpr (K_TURBO) {
                for (int d = lane; d < pad_k; d += 32) {
                    const u8* blk = kr + (i64)(d >> 7) * TypeInfo<KT>::BB;
                    part += lut[turbo_index<KT>(blk, d & 127) * pad_k + d] * ld_h(blk);
                }
            } else {
                for (int d = lane; d < hdk; d += 32) part += qs[d] * deq_row<KT>(kr, d);
            }
            part = warp_sum(part);
            if (lane == 0) {
                float x = part * scale;
                if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
                sc[kt] = x;
            }
        }
        __syncthreads();
        float mt = NEG_INF;
        for (int kt = 0; kt < nt; kt++) mt = fmaxf(mt, sc[kt]);
        const float mnew = fmaxf(m, mt);
        const float corr = expf(m - mnew);
        for (int kt = tid; kt < nt; kt += ATTN_THREADS) pw[kt] = expf(sc[kt] - mnew);
        __syncthreads();
        if constexpr (V_TURBO) {
            for (int i = tid; i < nt * nbv * NCV; i += ATTN_THREADS) {
                int kt = i / (nbv * NCV), rem = i % (nbv * NCV);
                int b = rem / NCV, c = rem % NCV;
                const u8* blk = vh + (i64)(tile + kt) * vhb + (i64)b * TypeInfo<VT>::BB;
                vcb[i] = pw[kt] * ld_h(blk) * centroid<VT>(c);
            }
            __syncthreads();
        }
        float lsum = 0.0f;
        for (int kt = 0; kt < nt; kt++) lsum += pw[kt];
        l = l * corr + lsum;
        m = mnew;
#pragma unroll
        for (int i = 0; i < ATTN_DPT; i++) {
            const int d = tid + ATTN_THREADS * i;
            if (d < pad_v) {
                float a = acc[i] * corr;
                for (int kt = 0; kt < nt; kt++) {
                    const u8* vr = vh + (i64)(tile + kt) * vhb;
                    if constexpr (V_TURBO) {
                        const u8* blk = vr + (i64)(d >> 7) * TypeInfo<VT>::BB;
                        a += vcb[(kt * nbv + (d >> 7)) * NCV + turbo_index<VT>(blk, d & 127)];
                    } else {
                        a += pw[kt] * deq_row<VT>(vr, d);
                    }
                }
                acc[i] = a;
            }
        }
        __syncthreads();
    }

    if (!direct) {
        float* w = ws + (((i64)r * n_head + h) * n_splits + s) * (pad_v + 2);
        if (tid == 0) {
            w[0] = m;
            w[1] = l;
        }
#pragma unroll
        for (int i = 0; i < ATTN_DPT; i++) {
            const int d = tid + ATTN_THREADS * i;
            if (d < pad_v) w[2 + d] = acc[i];
        }
        return;
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* o = out + ((i64)r * n_head + h) * hdv;
    if constexpr (V_TURBO) {
#pragma unroll
        for (int i = 0; i < ATTN_DPT; i++) {
            const int d = tid + ATTN_THREADS * i;
            if (d < pad_v) acc_s[d] = acc[i];
        }
        __syncthreads();
        block_rotate_inverse(acc_s, nbv);
        for (int d = tid; d < hdv; d += ATTN_THREADS) o[d] = acc_s[d] * inv;
    } else {
#pragma unroll
        for (int i = 0; i < ATTN_DPT; i++) {
            const int d = tid + ATTN_THREADS * i;
            if (d < hdv) o[d] = acc[i] * inv;
        }
    }
}

// Combines the splits of one (row, head): grid (n_head, rows), 128 threads, pad_v + n_splits
// floats of dynamic shared memory. Each split's weight exp(m_s − max) is computed once (not once
// per output dim), and each thread's sum over the splits runs four independent chains, so the
// workspace loads overlap (at depth 32768 a decode has 128 splits per head).
extern "C" __global__ void __launch_bounds__(ATTN_THREADS)
    attn_merge(const float* __restrict__ ws, float* __restrict__ out, int n_head, int hdv,
               int pad_v, int n_splits) {
    extern __shared__ float smem[];
    __shared__ float red[ATTN_WARPS];
    float* acc = smem;
    float* wt = smem + pad_v;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.x, r = blockIdx.y;
    const i64 stride = pad_v + 2;
    const float* w = ws + ((i64)r * n_head + h) * n_splits * stride;
    float mx = NEG_INF;
    for (int s = tid; s < n_splits; s += ATTN_THREADS) mx = fmaxf(mx, w[s * stride]);
    mx = warp_max(mx);
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = red[0];
#pragma unroll
    for (int i = 1; i < ATTN_WARPS; i++) mx = fmaxf(mx, red[i]);
    __syncthreads();
    // Every split block writes (m, l, acc), an empty one (NEG_INF, 0, zeros): its weight is 0.
    float tot = 0.0f;
    for (int s = tid; s < n_splits; s += ATTN_THREADS) {
        const float ms = w[s * stride];
        const float e = ms > NEG_INF ? expf(ms - mx) : 0.0f;
        wt[s] = e;
        tot += e * w[s * stride + 1];
    }
    tot = warp_sum(tot);
    if (lane == 0) red[warp] = tot;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < ATTN_WARPS; i++) total += red[i];
    for (int d = tid; d < pad_v; d += ATTN_THREADS) {
        const float* wd = w + 2 + d;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        int s = 0;
        for (; s + 4 <= n_splits; s += 4) {
            a0 += wt[s] * wd[s * stride];
            a1 += wt[s + 1] * wd[(s + 1) * stride];
            a2 += wt[s + 2] * wd[(s + 2) * stride];
            a3 += wt[s + 3] * wd[(s + 3) * stride];
        }
        for (; s < n_splits; s++) a0 += wt[s] * wd[s * stride];
        acc[d] = (a0 + a1) + (a2 + a3);
    }
    __syncthreads();
    if constexpr (V_TURBO) block_rotate_inverse(acc, pad_v / 128);
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    for (int d = threadIdx.x; d < hdv; d += ATTN_THREADS)
        out[((i64)r * n_head + h) * hdv + d] = acc[d] * inv;
}

// ---- tiled prefill (one sequence, consecutive positions) --------------------------------------
// attn_prefill: grid (ceil(rows / PF_Q), n_head), 128 threads. Block (qb, h) takes query rows
// qb·PF_Q .. +PF_Q (positions pos0 + r) of head h and walks the keys of their causal (and
// sliding-window) range in tiles of PF_K: each K tile is decoded once into shared memory for all
// PF_Q queries (turbo K: decoded in the rotated domain, against the rotated queries), scores
// and an online softmax per row, then the V tile (turbo V: rotated domain, R⁻¹ once per output
// row at the end) is decoded into the same buffer and accumulated. Heads padded to ≤ 128 values.
// Thread t owns row t / 4; scores of keys t%4 + 4j; output dims t%4 + 4j.
#define PF_Q 32
#define PF_K 32
#define PF_D 128
extern "C" __global__ void __launch_bounds__(ATTN_THREADS)
    attn_prefill(const float* __restrict__ q, const u8* __restrict__ kbase,
                 const u8* __restrict__ vbase, float* __restrict__ out, int rows, int seq0,
                 int pos0, int n_head, int n_head_kv, int hdk, int hdv, int pad_k, int pad_v,
                 i64 khb, i64 vhb, i64 cells, float scale, int window, float softcap) {
    __shared__ float qs[PF_Q * PF_D];
    __shared__ float kvs[PF_K * (PF_D + 1)];
    __shared__ float ps[PF_Q * (PF_K + 1)];
    __shared__ float cbk[16], cbv[16];
    const int tid = threadIdx.x, qi = tid >> 2, sub = tid & 3;
    if (tid < 16) {
        cbk[tid] = tid < NCK ? centroid<KT>(tid) : 0.0f;
        cbv[tid] = tid < NCV ? centroid<VT>(tid) : 0.0f;
    }
    const int qb = blockIdx.x, h = blockIdx.y;
    const int kvh = h / (n_head / n_head_kv);
    const int r0 = qb * PF_Q;
    const int nq = min(PF_Q, rows - r0);
    for (int i = tid; i < PF_Q * pad_k; i += ATTN_THREADS) {
        int rr = i / pad_k, d = i % pad_k;
        qs[i] = (rr < nq && d < hdk) ? q[((i64)(r0 + rr) * n_head + h) * hdk + d] : 0.0f;
    }
    __syncthreads();
    if constexpr (K_TURBO) block_rotate(qs, PF_Q * pad_k / 128);
    const u8* kh = kbase + ((i64)seq0 * n_head_kv + kvh) * cells * khb;
    const u8* vh = vbase + ((i64)seq0 * n_head_kv + kvh) * cells * vhb;
    const int my_pos = pos0 + r0 + qi;
    const int first_pos = pos0 + r0, last_pos = pos0 + r0 + nq - 1;
    const int lo = window > 0 ? max(0, first_pos + 1 - window) : 0;
    const int hi = last_pos + 1;
    float m = NEG_INF, l = 0.0f;
    float acc[PF_D / 4];
#pragma unroll
    for (int j = 0; j < PF_D / 4; j++) acc[j] = 0.0f;
    for (int tile = lo - lo % PF_K; tile < hi; tile += PF_K) {
        const int nt = min(PF_K, hi - tile);
        __syncthreads();
        for (int i = tid; i < PF_K * pad_k; i += ATTN_THREADS) {
            int kt = i / pad_k, d = i % pad_k;
            kvs[kt * (PF_D + 1) + d] = kt < nt ? deq_cb<KT>(kh + (i64)(tile + kt) * khb, d, cbk) : 0.0f;
        }
        __syncthreads();
        float s[PF_K / 4];
        float mt = NEG_INF;
#pragma unroll
        for (int j = 0; j < PF_K / 4; j++) {
            const int kt = sub + 4 * j, kp = tile + kt;
            float dot = 0.0f;
            for (int d = 0; d < pad_k; d++) dot += qs[qi * pad_k + d] * kvs[kt * (PF_D + 1) + d];
            float x = dot * scale;
            if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
            const bool ok = qi < nq && kt < nt && kp <= my_pos && (window <= 0 || kp > my_pos - window);
            s[j] = ok ? x : NEG_INF;
            mt = fmaxf(mt, s[j]);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
        const float mnew = fmaxf(m, mt);
        const float corr = mnew == NEG_INF ? 1.0f : expf(m - mnew);
        float lsum = 0.0f;
#pragma unroll
        for (int j = 0; j < PF_K / 4; j++) {
            float pj = s[j] == NEG_INF ? 0.0f : expf(s[j] - mnew);
            ps[qi * (PF_K + 1) + sub + 4 * j] = pj;
            lsum += pj;
        }
        lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
        lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
        l = l * corr + lsum;
        m = mnew;
        __syncthreads();
        for (int i = tid; i < PF_K * pad_v; i += ATTN_THREADS) {
            int kt = i / pad_v, d = i % pad_v;
            kvs[kt * (PF_D + 1) + d] = kt < nt ? deq_cb<VT>(vh + (i64)(tile + kt) * vhb, d, cbv) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < PF_D / 4; j++) {
            const int d = sub + 4 * j;
            if (d < pad_v) {
                float a = acc[j] * corr;
                for (int kt = 0; kt < nt; kt++) a += ps[qi * (PF_K + 1) + kt] * kvs[kt * (PF_D + 1) + d];
                acc[j] = a;
            }
        }
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    __syncthreads();
    // Output rows through shared memory (R⁻¹ of turbo V works on whole rows).
#pragma unroll
    for (int j = 0; j < PF_D / 4; j++) {
        const int d = sub + 4 * j;
        if (d < pad_v) qs[qi * pad_v + d] = acc[j] * inv;
    }
    __syncthreads();
    if constexpr (V_TURBO) block_rotate_inverse(qs, PF_Q * pad_v / 128);
    for (int i = tid; i < nq * hdv; i += ATTN_THREADS) {
        int rr = i / hdv, d = i % hdv;
        out[((i64)(r0 + rr) * n_head + h) * hdv + d] = qs[rr * pad_v + d];
    }
}

#endif  // TC_D

// ---- split-K decode, one block per (split, KV head, row) ---------------------------------------
// attn_decode: grid (splits, n_head_kv, rows), 128 threads; the block serves all G = n_head /
// n_head_kv query heads of its KV head (G ≤ DEC_G), so each cached K and V value is read and
// decoded once per split, not once per query head. Heads padded to ≤ 128 values.
// Each half-warp takes a chunk of KC consecutive keys at a time (chunks hw, hw + 8, ... of the
// split): lane l of the half decodes dims l·dk .. l·dk + dk − 1 of each key's K (dk = pad_k / 16;
// the rotated queries of those dims sit in its registers), the 16 lanes sum the KC × G scores by
// shuffles, and every lane updates its half-warp's online softmax (m, l per head) once per chunk
// and accumulates the keys' V dims l·dv .. (turbo V: rotated domain; attn_merge applies R⁻¹).
// Rows are read with wide contiguous loads across the half-warp, and the 8 half-warps keep
// 8 × KC keys in flight. At the end the half-warps' states meet
// (shuffle, then shared memory) and the block writes (m, l, acc) of its split like
// attn_partial.
#define DEC_G 8
#define DEC_HALVES (ATTN_THREADS / 16)

// Values d0 .. d0 + n − 1 (n ≤ 8, d0 a multiple of n, within one 128-group) of a cached row.
template <int T>
__device__ __forceinline__ void deq_run(const u8* row, int d0, int n, const float* cb, float* w) {
    if constexpr (T == TY_F16) {
        if (n == 8) {
            const U4 v = *(const U4*)(row + 2 * d0);
            const u32 a[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                w[2 * j] = h2f((u16)(a[j] & 0xffffu));
                w[2 * j + 1] = h2f((u16)(a[j] >> 16));
            }
            return;
        }
    }
    if constexpr (T == TY_Q8_0) {
        if (n == 8) {
            // The 8 quants in four aligned 16-bit loads (34-byte blocks: qs at an even offset,
            // d0 a multiple of 8); the same products as deq<TY_Q8_0>.
            const u8* blk = row + (i64)(d0 >> 5) * TypeInfo<T>::BB;
            const float dd = ld_h(blk);
            const u8* qb = blk + 2 + (d0 & 31);
            const u32 lo = (u32)ld_u16(qb) | ((u32)ld_u16(qb + 2) << 16);
            const u32 hi = (u32)ld_u16(qb + 4) | ((u32)ld_u16(qb + 6) << 16);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                w[i] = (float)(i8)(lo >> (8 * i)) * dd;
                w[4 + i] = (float)(i8)(hi >> (8 * i)) * dd;
            }
            return;
        }
    }
    if constexpr (is_turbo<T>()) {
        const u8* blk = row + (i64)(d0 >> 7) * TypeInfo<T>::BB;
        const float nrm = ld_h(blk);
        const int j0 = d0 & 127;
        if (n == 8) {
            // The 8 indices' bits in one or two aligned 16-bit loads (blocks and their fields
            // start at even offsets, and j0 is a multiple of 8).
            if constexpr (T == TY_TURBO4) {
                const u32 q = (u32)ld_u16(blk + 2 + (j0 >> 1)) | ((u32)ld_u16(blk + 4 + (j0 >> 1)) << 16);
#pragma unroll
                for (int i = 0; i < 8; i++) w[i] = cb[(q >> (4 * i)) & 15u] * nrm;
            } else if constexpr (T == TY_TURBO3) {
                const u32 lo = ld_u16(blk + 2 + (j0 >> 2));
                const u32 hi = blk[34 + (j0 >> 3)];
#pragma unroll
                for (int i = 0; i < 8; i++)
                    w[i] = cb[((lo >> (2 * i)) & 3u) | (((hi >> i) & 1u) << 2)] * nrm;
            } else {
                const u32 lo = ld_u16(blk + 2 + (j0 >> 2));
#pragma unroll
                for (int i = 0; i < 8; i++) w[i] = cb[(lo >> (2 * i)) & 3u] * nrm;
            }
            return;
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (i < n) w[i] = cb[turbo_index<T>(blk, j0 + i)] * nrm;
        return;
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
        if (i < n) w[i] = deq_row<T>(row, d0 + i);
}

// GM: the most heads per group this instance serves (registers hold GM queries and
// accumulators); the host picks the smallest GM ≥ G.
template <int GM>
__device__ void attn_decode_group(const float* __restrict__ q, const u8* __restrict__ kbase,
                const u8* __restrict__ vbase, float* __restrict__ ws,
                const u32* __restrict__ rowinfo, int seq0, int pos0, int n_head, int n_head_kv,
                int hdk, int hdv, int pad_k, int pad_v, i64 khb, i64 vhb, i64 cells, float scale,
                int window, float softcap, int split_len, int n_splits) {
    __shared__ float qs[GM * 128];
    __shared__ float red[ATTN_WARPS][GM * (128 + 2)];
    __shared__ float cbk[16], cbv[16];
    const int G = n_head / n_head_kv;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int hw = tid >> 4, hl = tid & 15;
    const u32 half_mask = 0xffffu << (lane & 16);
    const int s = blockIdx.x, kvh = blockIdx.y, r = blockIdx.z;
    const i64 seq = rowinfo ? rowinfo[2 * r] : seq0;
    const int pos = rowinfo ? (int)rowinfo[2 * r + 1] : pos0 + r;
    const int lo = window > 0 ? max(0, pos + 1 - window) : 0;
    const int t0 = max(lo, s * split_len);
    const int t1 = min(pos + 1, (s + 1) * split_len);
    const int nk = max(0, t1 - t0);
    if (tid < 16) {
        cbk[tid] = tid < NCK ? centroid<KT>(tid) : 0.0f;
        cbv[tid] = tid < NCV ? centroid<VT>(tid) : 0.0f;
    }
    for (int i = tid; i < G * pad_k; i += ATTN_THREADS) {
        const int g = i / pad_k, d = i % pad_k;
        qs[i] = d < hdk ? q[((i64)r * n_head + kvh * G + g) * hdk + d] : 0.0f;
    }
    __syncthreads();
    if constexpr (K_TURBO) block_rotate(qs, G * pad_k / 128);
    const int dk = pad_k >> 4, dv = pad_v >> 4;
    float qr[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++)
#pragma unroll
        for (int i = 0; i < 8; i++) qr[g][i] = (g < G && i < dk) ? qs[g * pad_k + hl * dk + i] : 0.0f;
    float m[GM], l[GM], acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        m[g] = NEG_INF;
        l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) acc[g][i] = 0.0f;
    }
    const u8* kh = kbase + (seq * n_head_kv + kvh) * cells * khb;
    const u8* vh = vbase + (seq * n_head_kv + kvh) * cells * vhb;
    // Keys in chunks of KC per half-warp: the chunk's scores first (independent loads and
    // shuffle reductions), one max and rescale per chunk, then the values.
    // Chunks pay off where decoding a key costs more than loading it (turbo rows: H100, depth
    // 32768, turbo3 60.5 → 73.9 tokens/s); plain f16/q8_0 rows keep one key per step, unrolled
    // twice (chunks of 4 cost f16 14% there: 92.6 → 79.8, more registers per key in flight).
    constexpr int KC = (K_TURBO || V_TURBO) ? 2 : 1;
#pragma unroll(KC == 1 ? 2 : 1)
    for (int kt0 = hw * KC; kt0 < nk; kt0 += DEC_HALVES * KC) {
        float sc[KC][GM], vv[KC][8];
#pragma unroll
        for (int c = 0; c < KC; c++) {
            const int kt = kt0 + c;
            float kv[8];
            if (kt < nk) {
                const i64 t = t0 + kt;
                deq_run<KT>(kh + t * khb, hl * dk, dk, cbk, kv);
                deq_run<VT>(vh + t * vhb, hl * dv, dv, cbv, vv[c]);
            }
#pragma unroll
            for (int g = 0; g < GM; g++) {
                float sg = 0.0f;
                if (kt < nk) {
#pragma unroll
                    for (int i = 0; i < 8; i++)
                        if (i < dk) sg += qr[g][i] * kv[i];  // kv[dk..] are not loaded
                }
                sc[c][g] = sg;
            }
        }
#pragma unroll
        for (int o = 8; o > 0; o >>= 1)
#pragma unroll
            for (int c = 0; c < KC; c++)
#pragma unroll
                for (int g = 0; g < GM; g++) sc[c][g] += __shfl_xor_sync(half_mask, sc[c][g], o);
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g < G) {
                float mc = NEG_INF;
#pragma unroll
                for (int c = 0; c < KC; c++) {
                    float x = sc[c][g] * scale;
                    if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
                    x = kt0 + c < nk ? x : NEG_INF;
                    sc[c][g] = x;
                    mc = fmaxf(mc, x);
                }
                const float mn = fmaxf(m[g], mc);
                const float corr = expf(m[g] - mn);
                m[g] = mn;
                float lsum = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[g][i] *= corr;
#pragma unroll
                for (int c = 0; c < KC; c++) {
                    if (kt0 + c < nk) {
                        const float p = expf(sc[c][g] - mn);
                        lsum += p;
#pragma unroll
                        for (int i = 0; i < 8; i++)
                            if (i < dv) acc[g][i] += p * vv[c][i];
                    }
                }
                l[g] = l[g] * corr + lsum;
            }
        }
    }
    // The two half-warps of a warp: lanes l and l + 16 hold the same dims.
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g < G) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[g], 16);
            const float lo_ = __shfl_xor_sync(0xffffffffu, l[g], 16);
            const float mn = fmaxf(m[g], mo);
            const float ca = mn == NEG_INF ? 0.0f : expf(m[g] - mn);
            const float cb = mn == NEG_INF ? 0.0f : expf(mo - mn);
            l[g] = l[g] * ca + lo_ * cb;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float ao = __shfl_xor_sync(0xffffffffu, acc[g][i], 16);
                acc[g][i] = acc[g][i] * ca + ao * cb;
            }
            m[g] = mn;
        }
    }
    // The warps, through shared memory: warp w's (m, l) then acc per head.
    if (lane < 16) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g < G) {
                float* rw = red[warp] + g * (128 + 2);
                if (lane == 0) {
                    rw[0] = m[g];
                    rw[1] = l[g];
                }
#pragma unroll
                for (int i = 0; i < 8; i++)
                    if (i < dv) rw[2 + lane * dv + i] = acc[g][i];
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < G * pad_v; i += ATTN_THREADS) {
        const int g = i / pad_v, d = i % pad_v;
        float mx = NEG_INF;
#pragma unroll
        for (int w = 0; w < ATTN_WARPS; w++) mx = fmaxf(mx, red[w][g * (128 + 2)]);
        float a = 0.0f, lsum = 0.0f;
#pragma unroll
        for (int w = 0; w < ATTN_WARPS; w++) {
            const float* rw = red[w] + g * (128 + 2);
            const float c = rw[0] == NEG_INF ? 0.0f : expf(rw[0] - mx);
            a += rw[2 + d] * c;
            lsum += rw[1] * c;
        }
        float* wsp = ws + (((i64)r * n_head + kvh * G + g) * n_splits + s) * (pad_v + 2);
        wsp[2 + d] = a;
        if (d == 0) {
            wsp[0] = mx;
            wsp[1] = lsum;
        }
    }
}

// Resident blocks per SM the decode kernels are built for (registers capped to fit them): the
// loop is bound by latency, so more warps in flight beat more registers per thread (H100,
// Qwen3-8B layer at depth 32768: turbo3 247 → 171 µs, q8_0 237 → 176, f16 unchanged). The
// eight-head kernel keeps two (its scores and accumulators need the registers).
#define DEC_MIN_BLOCKS 4
#define ATTN_DECODE_KERNEL(GM)                                                                   \
    extern "C" __global__ void __launch_bounds__(ATTN_THREADS, GM >= 8 ? 2 : DEC_MIN_BLOCKS) attn_decode_g##GM(\
        const float* q, const u8* kbase, const u8* vbase, float* ws, const u32* rowinfo,         \
        int seq0, int pos0, int n_head, int n_head_kv, int hdk, int hdv, int pad_k, int pad_v,  \
        i64 khb, i64 vhb, i64 cells, float scale, int window, float softcap, int split_len,     \
        int n_splits) {                                                                          \
        attn_decode_group<GM>(q, kbase, vbase, ws, rowinfo, seq0, pos0, n_head, n_head_kv, hdk, \
                              hdv, pad_k, pad_v, khb, vhb, cells, scale, window, softcap,        \
                              split_len, n_splits);                                              \
    }
#ifndef TC_D
ATTN_DECODE_KERNEL(1)
ATTN_DECODE_KERNEL(2)
ATTN_DECODE_KERNEL(4)
ATTN_DECODE_KERNEL(8)
#endif

// ---- tensor-core prefill (one sequence, consecutive positions) --------------------------------
// attn_prefill_tc (module defines TC_D = D): grid (n_head_kv, ceil(rows / RB)), 128 threads
// (4 warps), D ≥ pad_k, pad_v (64, 128 or 256). A block takes TC_M = 64 query rows of one KV head: the G = n_head /
// n_head_kv heads of its GQA group × RB = 64 / G consecutive positions (query row i of the
// block is head i / RB, position i % RB), so every K and V tile it decodes serves the whole
// group. Warp w owns query rows 16w .. 16w + 15.
// - Q: f32 → (turbo K: rotated, as in attn_prefill) → f16 in shared memory, once.
// - Per tile of KEYS keys: K decoded from the packed cache into shared memory as f16 rows
//   ([key][dim]), V decoded transposed ([dim][key]) so both mma B operands are 32-bit loads of
//   two consecutive halves. Only the tile is ever in f16, never the cache.
// - S = Q·Kᵀ with mma.sync m16n8k16 (f16 in, f32 accumulate); scale, softcap, causal and window
//   mask in f32; online softmax in base 2 (f32); P rounded to f16 straight from the score
//   registers into A fragments (the accumulator layout of two adjacent n-tiles is the A layout
//   of one k-step); O += P·V, f32 accumulators in registers.
// - Output rows through shared memory: turbo V applies R⁻¹ there (rotated domain until then).
// mma.sync fragment layouts (PTX ISA, m16n8k16, lane = 4·g + t): A a0 = (row g, cols 2t, 2t+1),
// a1 = (g + 8, 2t..), a2 = (g, 2t + 8..), a3 = (g + 8, 2t + 8..); B b0 = (rows 2t, 2t+1, col g),
// b1 = (rows 2t + 8.., col g); C c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g + 8, same).
#define TC_THREADS 128
#define TC_M 64
#define TC_LOG2E 1.4426950408889634f

template <int D> struct TcShape {
    // Keys per tile: 64, or 32 for 256-wide heads (their 128 output accumulators per thread).
    static constexpr int KEYS = D > 128 ? 32 : 64;
    // Row strides in halves, padded by 8 so rows stay 16-byte aligned and the fragment loads
    // of a warp (8 rows × 4 words) hit 32 different banks.
    static constexpr int QS = D + 8;
    static constexpr int VS = KEYS + 8;
    static constexpr int Q_BYTES = TC_M * QS * 2;
    static constexpr int K_BYTES = KEYS * QS * 2;
    static constexpr int V_BYTES = D * VS * 2;
    static constexpr int SHARED = Q_BYTES + K_BYTES + V_BYTES;
    // Query rows staged (f32, for the rotation) at a time in the K/V area.
    static constexpr int RC = (K_BYTES + V_BYTES) >= TC_M * D * 4 ? TC_M : TC_M / 2;
    static_assert(RC * D * 4 <= K_BYTES + V_BYTES, "query staging exceeds the K/V area");
    static_assert(TC_M * D * 4 <= SHARED, "output staging exceeds shared memory");
};

// Two floats as f16 (round to nearest even), `lo` in the low half. cvt.rn.f16x2.f32 writes a
// 32-bit register (d = {a, b}: a to the upper half), the form CUDA's own half2 conversion uses.
__device__ __forceinline__ u32 pack_h2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ u32 ld_s32(const u16* p) { return *(const u32*)p; }

// c += A · B for one m16n8k16 tile (f16 operands, f32 accumulators).
__device__ __forceinline__ void mma_f16(float* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Values d0 .. d0 + 7 of a cached row (d0 a multiple of 8) as four f16 pairs, low half first.
template <int T>
__device__ __forceinline__ void deq8_h(const u8* row, int d0, const float* cb, u32* h) {
    if constexpr (T == TY_F16) {
        const U4 v = *(const U4*)(row + 2 * d0);
        h[0] = v.x;
        h[1] = v.y;
        h[2] = v.z;
        h[3] = v.w;
    } else {
        float w[8];
        deq_run<T>(row, d0, 8, cb, w);
#pragma unroll
        for (int j = 0; j < 4; j++) h[j] = pack_h2(w[2 * j], w[2 * j + 1]);
    }
}

// Types deq_run decodes 8 values at a time from a few wide loads; the others decode value by
// value, and their loads all in flight at once would spill registers.
template <int T> __device__ __forceinline__ constexpr bool wide_decode() {
    return T == TY_F16 || T == TY_Q8_0 || is_turbo<T>();
}

template <int D>
__device__ void attn_prefill_tc(const float* __restrict__ q, const u8* __restrict__ kbase,
                                const u8* __restrict__ vbase, float* __restrict__ out, int rows,
                                int seq0, int pos0, int n_head, int n_head_kv, int hdk, int hdv,
                                int pad_k, int pad_v, i64 khb, i64 vhb, i64 cells, float scale,
                                int window, float softcap) {
    using S = TcShape<D>;
    constexpr int KEYS = S::KEYS, QS = S::QS, VS = S::VS;
    extern __shared__ U4 tc_smem[];
    u8* sm = (u8*)tc_smem;
    u16* qs = (u16*)sm;
    u16* ks = (u16*)(sm + S::Q_BYTES);
    u16* vt = (u16*)(sm + S::Q_BYTES + S::K_BYTES);
    __shared__ float cbk[16], cbv[16];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gq = lane >> 2, tq = lane & 3;
    const int G = n_head / n_head_kv;
    const int RB = TC_M / G;
    const int kvh = blockIdx.x;
    // Latest positions (most keys) first: blocks launch in order of y.
    const int r0 = (gridDim.y - 1 - blockIdx.y) * RB;
    const int nr = min(RB, rows - r0);
    if (tid < 16) {
        cbk[tid] = tid < NCK ? centroid<KT>(tid) : 0.0f;
        cbv[tid] = tid < NCV ? centroid<VT>(tid) : 0.0f;
    }

    // Q rows, RC at a time through f32 staging in the K/V area.
    float* stage = (float*)(sm + S::Q_BYTES);
    for (int c0 = 0; c0 < TC_M; c0 += S::RC) {
        __syncthreads();
        for (int i = tid; i < S::RC * pad_k; i += TC_THREADS) {
            const int qi = c0 + i / pad_k, d = i % pad_k;
            const int g = qi / RB, r = qi % RB;
            stage[i] = (g < G && r < nr && d < hdk)
                           ? q[((i64)(r0 + r) * n_head + kvh * G + g) * hdk + d]
                           : 0.0f;
        }
        __syncthreads();
        if constexpr (K_TURBO) block_rotate(stage, S::RC * pad_k / 128);
        for (int i = tid; i < S::RC * pad_k / 2; i += TC_THREADS) {
            const int qi = c0 + 2 * i / pad_k, d = 2 * i % pad_k;
            *(u32*)&qs[qi * QS + d] = pack_h2(stage[2 * i], stage[2 * i + 1]);
        }
    }

    // Positions of this thread's two rows (g and g + 8 of its warp); -1 for padding rows.
    int rpos[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int qi = warp * 16 + gq + 8 * h;
        const int g = qi / RB, r = qi % RB;
        rpos[h] = (g < G && r < nr) ? pos0 + r0 + r : -1;
    }
    const int first_pos = pos0 + r0, last_pos = pos0 + r0 + nr - 1;
    const int lo = window > 0 ? max(0, first_pos + 1 - window) : 0;
    const int hi = last_pos + 1;
    const int nks = pad_k >> 4, nvn = pad_v >> 3, kch = pad_k >> 3, vch = pad_v >> 3;
    const u8* kh = kbase + ((i64)seq0 * n_head_kv + kvh) * cells * khb;
    const u8* vh = vbase + ((i64)seq0 * n_head_kv + kvh) * cells * vhb;
    const u16* qw = qs + warp * 16 * QS;

    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};

    for (int tile = lo - lo % KEYS; tile < hi; tile += KEYS) {
        const int nt = min(KEYS, hi - tile);
        __syncthreads();
        // Decode in two phases per operand, every thread's loads first (unrolled, unconditional:
        // keys past the tile's end read the last live key instead, chunks past the padded head
        // the last chunk), then the shared-memory stores, so a tile waits for about two memory
        // latencies rather than one per item. (K and V loads all in flight together measured
        // the same on an H100, q8_0/turbo4 3% slower.) Types decoded value by value (q4_0,
        // iq4_nl, ...) go an item at a time: their loads all in flight would spill registers.
        // Keys past the end may hold anything finite: their scores are masked and P is 0 there
        // (stale cells could hold NaN, and 0 · NaN is not 0).
        constexpr int CH = D / 8;
        constexpr int KIT = KEYS * CH / TC_THREADS, VIT = (KEYS / 2) * CH / TC_THREADS;
        // K items: a row's 8-dim chunks over consecutive threads (coalesced). V items: a thread
        // decodes one 8-dim chunk of two adjacent keys (lanes: consecutive key pairs) and
        // writes 8 words of the transposed tile (key pair per word, conflict-free).
        auto load_k = [&](int it, u32* h) {
            const int i = tid + it * TC_THREADS;
            const int kt = min(i / CH, nt - 1), c = min(i % CH, kch - 1);
            deq8_h<KT>(kh + (i64)(tile + kt) * khb, 8 * c, cbk, h);
        };
        auto store_k = [&](int it, const u32* h) {
            const int i = tid + it * TC_THREADS, kt = i / CH, c = i % CH;
            if (c < kch) *(U4*)&ks[kt * QS + 8 * c] = U4{h[0], h[1], h[2], h[3]};
        };
        auto load_v = [&](int it, u32* a, u32* b) {
            const int i = tid + it * TC_THREADS;
            const int k0 = 2 * (i % (KEYS / 2)), c = min(i / (KEYS / 2), vch - 1);
            deq8_h<VT>(vh + (i64)(tile + min(k0, nt - 1)) * vhb, 8 * c, cbv, a);
            deq8_h<VT>(vh + (i64)(tile + min(k0 + 1, nt - 1)) * vhb, 8 * c, cbv, b);
        };
        auto store_v = [&](int it, const u32* a, const u32* b) {
            const int i = tid + it * TC_THREADS;
            const int k0 = 2 * (i % (KEYS / 2)), c = i / (KEYS / 2);
            if (c < vch) {
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    *(u32*)&vt[(8 * c + 2 * j) * VS + k0] = (a[j] & 0xffffu) | (b[j] << 16);
                    *(u32*)&vt[(8 * c + 2 * j + 1) * VS + k0] = (a[j] >> 16) | (b[j] & 0xffff0000u);
                }
            }
        };
        if constexpr (!wide_decode<KT>() || !wide_decode<VT>()) {
            // Value-by-value decoders: an item at a time (all in flight would spill).
#pragma unroll 1
            for (int it = 0; it < KIT; it++) {
                u32 h[4];
                load_k(it, h);
                store_k(it, h);
            }
#pragma unroll 1
            for (int it = 0; it < VIT; it++) {
                u32 a[4], b[4];
                load_v(it, a, b);
                store_v(it, a, b);
            }
        } else {
            u32 hb[KIT][4], va[VIT][4], vb[VIT][4];
#pragma unroll
            for (int it = 0; it < KIT; it++) load_k(it, hb[it]);
#pragma unroll
            for (int it = 0; it < KIT; it++) store_k(it, hb[it]);
#pragma unroll
            for (int it = 0; it < VIT; it++) load_v(it, va[it], vb[it]);
#pragma unroll
            for (int it = 0; it < VIT; it++) store_v(it, va[it], vb[it]);
        }
        __syncthreads();

        // S = Q · Kᵀ for the warp's 16 rows × KEYS keys.
        float s[KEYS / 8][4];
#pragma unroll
        for (int j = 0; j < KEYS / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            if (kk < nks) {
                const u16* qa = qw + gq * QS + kk * 16 + 2 * tq;
                const u32 a0 = ld_s32(qa), a1 = ld_s32(qa + 8 * QS);
                const u32 a2 = ld_s32(qa + 8), a3 = ld_s32(qa + 8 * QS + 8);
#pragma unroll
                for (int j = 0; j < KEYS / 8; j++) {
                    const u16* kb = ks + (j * 8 + gq) * QS + kk * 16 + 2 * tq;
                    mma_f16(s[j], a0, a1, a2, a3, ld_s32(kb), ld_s32(kb + 8));
                }
            }
        }

        // Scores in base-2 units, masked; the tile's row maxima over the quad (lanes 4g .. 4g+3
        // hold one row's columns).
        float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
        for (int j = 0; j < KEYS / 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int h = e >> 1, p = rpos[h];
                const int kp = tile + 8 * j + 2 * tq + (e & 1);
                float x = s[j][e] * scale;
                if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
                const bool ok = kp <= p && (window <= 0 || kp > p - window);
                s[j][e] = ok ? x * TC_LOG2E : NEG_INF;
                mx[h] = fmaxf(mx[h], s[j][e]);
            }
        }
        float corr[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            const float mn = fmaxf(m[h], mx[h]);
            corr[h] = mn == NEG_INF ? 1.0f : exp2f(m[h] - mn);
            m[h] = mn;
        }
        // P = exp2(s − m) as f16 A fragments: n-tiles 2kk and 2kk + 1 form k-step kk.
        u32 pa[KEYS / 16][4];
        float ls[2] = {0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < KEYS / 8; j++) {
            float pv[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int h = e >> 1;
                pv[e] = s[j][e] == NEG_INF ? 0.0f : exp2f(s[j][e] - m[h]);
                ls[h] += pv[e];
            }
            pa[j >> 1][(j & 1) * 2] = pack_h2(pv[0], pv[1]);
            pa[j >> 1][(j & 1) * 2 + 1] = pack_h2(pv[2], pv[3]);
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 1);
            ls[h] += __shfl_xor_sync(0xffffffffu, ls[h], 2);
            l[h] = l[h] * corr[h] + ls[h];
        }
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            o[n][0] *= corr[0];
            o[n][1] *= corr[0];
            o[n][2] *= corr[1];
            o[n][3] *= corr[1];
        }
        // O += P · V.
#pragma unroll
        for (int kk = 0; kk < KEYS / 16; kk++) {
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                if (n < nvn) {
                    const u16* vb = vt + (n * 8 + gq) * VS + kk * 16 + 2 * tq;
                    mma_f16(o[n], pa[kk][0], pa[kk][1], pa[kk][2], pa[kk][3], ld_s32(vb),
                            ld_s32(vb + 8));
                }
            }
        }
    }

    // Normalized rows to shared memory ([row][pad_v] f32 over the whole area), R⁻¹ for turbo V,
    // then the block's valid rows out.
    __syncthreads();
    float* st = (float*)sm;
    const float inv0 = l[0] > 0.0f ? 1.0f / l[0] : 0.0f;
    const float inv1 = l[1] > 0.0f ? 1.0f / l[1] : 0.0f;
    const int q0 = warp * 16 + gq;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        if (n < nvn) {
            const int d = n * 8 + 2 * tq;
            st[q0 * pad_v + d] = o[n][0] * inv0;
            st[q0 * pad_v + d + 1] = o[n][1] * inv0;
            st[(q0 + 8) * pad_v + d] = o[n][2] * inv1;
            st[(q0 + 8) * pad_v + d + 1] = o[n][3] * inv1;
        }
    }
    __syncthreads();
    if constexpr (V_TURBO) block_rotate_inverse(st, TC_M * pad_v / 128);
    for (int i = tid; i < TC_M * hdv; i += TC_THREADS) {
        const int qi = i / hdv, d = i % hdv;
        const int g = qi / RB, r = qi % RB;
        if (g < G && r < nr) out[((i64)(r0 + r) * n_head + kvh * G + g) * hdv + d] = st[qi * pad_v + d];
    }
}

// The module compiled with TC_D = 64, 128 or 256 holds only this kernel (instances compile
// slowly: fully unrolled fragment loops), so a run compiles just the widths its model uses.
#ifdef TC_D
extern "C" __global__ void __launch_bounds__(TC_THREADS)
    attn_prefill_tc(const float* q, const u8* kbase, const u8* vbase, float* out, int rows,
                    int seq0, int pos0, int n_head, int n_head_kv, int hdk, int hdv, int pad_k,
                    int pad_v, i64 khb, i64 vhb, i64 cells, float scale, int window,
                    float softcap) {
    attn_prefill_tc<TC_D>(q, kbase, vbase, out, rows, seq0, pos0, n_head, n_head_kv, hdk, hdv,
                          pad_k, pad_v, khb, vhb, cells, scale, window, softcap);
}
#endif
