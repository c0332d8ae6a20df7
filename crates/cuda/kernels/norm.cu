// RMS norm: out[r] = x[r] / sqrt(mean(x[r]²) + eps) · w, one block per row. The mean is summed
// in double like the CPU reference (ggml sums in f64 too). `out` may alias `x` (in place):
// every thread reads its elements for the sum before the barrier and writes them after.

#define NORM_THREADS 256

extern "C" __global__ void __launch_bounds__(NORM_THREADS)
    rms_norm(const float* x, const float* w, float* out, int n, float eps) {
    __shared__ double partial[NORM_THREADS / 32];
    const float* xr = x + (i64)blockIdx.x * n;
    float* yr = out + (i64)blockIdx.x * n;
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += NORM_THREADS) {
        float v = xr[i];
        s += (double)(v * v);
    }
    const float scale = block_rms_scale(s, n, eps, partial);
    for (int i = threadIdx.x; i < n; i += NORM_THREADS) yr[i] = xr[i] * scale * w[i];
}

// The residual add and the next RMS norm in one pass, one block per row: x[r] += y[r], then
// y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w (the same f32 sum and double mean as add followed by
// rms_norm). Each thread reads and writes only its own elements, so y may be overwritten.
extern "C" __global__ void __launch_bounds__(NORM_THREADS)
    add_rms_norm(float* __restrict__ x, float* __restrict__ y, const float* __restrict__ w, int n,
                 float eps) {
    __shared__ double partial[NORM_THREADS / 32];
    float* xr = x + (i64)blockIdx.x * n;
    float* yr = y + (i64)blockIdx.x * n;
    double s = 0.0;
    // x and y never alias (restrict), so the loads of later iterations need not wait for the
    // stores of earlier ones.
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += NORM_THREADS) {
        float v = xr[i] + yr[i];
        xr[i] = v;
        s += (double)(v * v);
    }
    const float scale = block_rms_scale(s, n, eps, partial);
    for (int i = threadIdx.x; i < n; i += NORM_THREADS) yr[i] = xr[i] * scale * w[i];
}
