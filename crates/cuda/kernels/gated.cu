// Output gates of the qwen3.5 family: the per-head query/gate split of the gated attention
// projection and x · sigmoid(gate) (attention output gate, shared-expert gate). Grid-stride
// loops over dense f32 rows.

// qg rows of n_head × [q (hd) | gate (hd)] into q and gate (n = rows × n_head × hd).
extern "C" __global__ void split_q_gate(const float* __restrict__ qg, float* __restrict__ q,
                                        float* __restrict__ gate, i64 n, int hd) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        const float* src = qg + (i / hd) * 2 * hd;
        int c = (int)(i % hd);
        q[i] = src[c];
        gate[i] = src[hd + c];
    }
}

// x[r][c] *= sigmoid(gate[r][c]), or sigmoid(gate[r][0]) when gate_width == 1.
extern "C" __global__ void sigmoid_mul(float* __restrict__ x, const float* __restrict__ gate,
                                       i64 n, int width, int gate_width) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        i64 r = i / width;
        int c = gate_width == 1 ? 0 : (int)(i % width);
        x[i] *= 1.0f / (1.0f + expf(-gate[r * gate_width + c]));
    }
}
