// Element-wise kernels over dense f32 vectors: grid-stride loops, any n.

#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                               i += (i64)gridDim.x * blockDim.x)

extern "C" __global__ void add(float* x, const float* y, i64 n) {
    GRID_STRIDE(i, n) x[i] += y[i];
}

extern "C" __global__ void scale(float* x, i64 n, float s) {
    GRID_STRIDE(i, n) x[i] *= s;
}

// x[r][j] += b[j] for rows of `width`.
extern "C" __global__ void add_bias(float* x, const float* b, i64 n, int width) {
    GRID_STRIDE(i, n) x[i] += b[i % width];
}

extern "C" __global__ void softcap(float* x, i64 n, float cap) {
    GRID_STRIDE(i, n) x[i] = cap * tanhf(x[i] / cap);
}

// gate = silu(gate) * up
extern "C" __global__ void glu_silu(float* gate, const float* up, i64 n) {
    GRID_STRIDE(i, n) gate[i] = silu(gate[i]) * up[i];
}

// gate = gelu_tanh(gate) * up
extern "C" __global__ void glu_gelu_tanh(float* gate, const float* up, i64 n) {
    GRID_STRIDE(i, n) gate[i] = gelu_tanh(gate[i]) * up[i];
}
