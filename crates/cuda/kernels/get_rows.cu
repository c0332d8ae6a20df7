// Embedding lookup: out[i] = dequantize(table row ids[i]), one block per id. Ids were checked
// against the table's row count on the host.

// get_rows: out[i] = dequantize(table row ids[i]); one block per id.
template <int T>
__device__ void get_rows(const u8* __restrict__ table, const u32* __restrict__ ids,
                         float* __restrict__ out, int n, i64 row_bytes) {
    const u8* row = table + (i64)ids[blockIdx.x] * row_bytes;
    float* dst = out + (i64)blockIdx.x * n;
    for (int e = threadIdx.x; e < n; e += blockDim.x) dst[e] = deq_row<T>(row, e);
}

#define GET_ROWS(NAME, T)                                                                        \
    extern "C" __global__ void get_rows_##NAME(const u8* table, const u32* ids, float* out,     \
                                               int n, i64 row_bytes) {                          \
        get_rows<T>(table, ids, out, n, row_bytes);                                              \
    }

GET_ROWS(f32, TY_F32)
GET_ROWS(f16, TY_F16)
GET_ROWS(bf16, TY_BF16)
GET_ROWS(q4_0, TY_Q4_0)
GET_ROWS(q4_1, TY_Q4_1)
GET_ROWS(q5_0, TY_Q5_0)
GET_ROWS(q5_1, TY_Q5_1)
GET_ROWS(q8_0, TY_Q8_0)
GET_ROWS(iq4_nl, TY_IQ4_NL)
GET_ROWS(q4_K, TY_Q4_K)
GET_ROWS(q5_K, TY_Q5_K)
GET_ROWS(q6_K, TY_Q6_K)
