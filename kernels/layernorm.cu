// layernorm.cu: LayerNorm over the channels of each row, forward and backward (the twins of
// cpu::ops::layernorm_forward/_backward).
//
// Forward: one warp per row, two passes like the CPU (the mean, then the variance of the
// centred values) for accuracy; mean and rstd are saved in f32.
// Backward: one block per fixed chunk of rows writes dinp for its rows and its partial sums of
// dw and db (kept per channel in shared memory, each channel owned by one thread) to the
// scratch area; a second kernel adds the partials in block order to dw and db. No atomics, so
// a rerun is bit-identical.
#include "common.cuh"

// out (N, C) = (inp - mean) * rstd * w + b; mean (N), rstd (N) f32. One warp per row.
template <typename T>
__device__ __forceinline__ void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* w,
                                                  const T* b, int n, int c, float eps) {
    const int lane = threadIdx.x % 32;
    const i64 row = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= n) return;  // the whole warp leaves together; no block-wide sync follows
    const T* x = inp + row * c;
    float s = 0.0f;
    for (int j = lane; j < c; j += 32) s += to_f(x[j]);
    const float mu = warp_sum(s) / (float)c;
    float v = 0.0f;
    for (int j = lane; j < c; j += 32) {
        const float d = to_f(x[j]) - mu;
        v += d * d;
    }
    const float var = warp_sum(v) / (float)c;
    const float r = 1.0f / sqrtf(var + eps);
    T* o = out + row * c;
    for (int j = lane; j < c; j += 32) o[j] = from_f<T>((to_f(x[j]) - mu) * r * to_f(w[j]) + to_f(b[j]));
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// Sums two values over the whole block at once (blockDim.x a multiple of 32); every thread gets
// both results. `shared` holds 32 float2. Synchronises before reusing `shared`.
__device__ __forceinline__ float2 block_sum2(float a, float b, float2* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    a = warp_sum(a);
    b = warp_sum(b);
    __syncthreads();
    if (lane == 0) shared[warp] = make_float2(a, b);
    __syncthreads();
    const float2 p = lane < warps ? shared[lane] : make_float2(0.0f, 0.0f);
    return make_float2(warp_sum(p.x), warp_sum(p.y));
}

// dinp (N, C) overwritten; partial (blocks, 2, C) f32: block k's sums of dout * norm (dw) and
// dout (db) over rows [k * rows_per_block, (k + 1) * rows_per_block). Dynamic shared memory:
// 2 * C floats. Differentiates `out = (inp - mean) * rstd * w + b`:
// dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w.
template <typename T>
__device__ __forceinline__ void layernorm_backward(T* dinp, float* partial, const T* dout, const T* inp,
                                                   const float* mean, const float* rstd, const T* w, int n, int c,
                                                   int rows_per_block) {
    XLT_DYNAMIC_SHARED(float, acc);  // dw (C) then db (C): channel j belongs to thread j % blockDim.x
    __shared__ float2 red[32];
    float* gw = acc;
    float* gb = acc + c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        gw[j] = 0.0f;
        gb[j] = 0.0f;
    }
    const i64 first = (i64)blockIdx.x * rows_per_block;
    const i64 last = first + rows_per_block < n ? first + rows_per_block : (i64)n;
    for (i64 i = first; i < last; i++) {
        const T* x = inp + i * c;
        const T* d = dout + i * c;
        const float mu = mean[i], s = rstd[i];
        float sum_d = 0.0f, sum_dn = 0.0f;
        for (int j = threadIdx.x; j < c; j += blockDim.x) {
            const float dj = to_f(d[j]);
            const float norm = (to_f(x[j]) - mu) * s;
            const float dn = dj * to_f(w[j]);
            sum_d += dn;
            sum_dn += dn * norm;
            gw[j] += dj * norm;
            gb[j] += dj;
        }
        const float2 tot = block_sum2(sum_d, sum_dn, red);
        const float md = tot.x / (float)c, mdn = tot.y / (float)c;
        T* di = dinp + i * c;
        for (int j = threadIdx.x; j < c; j += blockDim.x) {
            const float norm = (to_f(x[j]) - mu) * s;
            di[j] = from_f<T>(s * (to_f(d[j]) * to_f(w[j]) - md - norm * mdn));
        }
    }
    float* out = partial + (i64)blockIdx.x * 2 * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        out[j] = gw[j];
        out[c + j] = gb[j];
    }
}

#define XLT_LAYERNORM(suffix, T)                                                                               \
    extern "C" __global__ void layernorm_forward_##suffix(T* out, float* mean, float* rstd, const T* inp,       \
                                                          const T* w, const T* b, int n, int c, float eps) {    \
        layernorm_forward<T>(out, mean, rstd, inp, w, b, n, c, eps);                                             \
    }                                                                                                            \
    extern "C" __global__ void layernorm_backward_##suffix(T* dinp, float* partial, const T* dout, const T* inp, \
                                                           const float* mean, const float* rstd, const T* w,    \
                                                           int n, int c, int rows_per_block) {                  \
        layernorm_backward<T>(dinp, partial, dout, inp, mean, rstd, w, n, c, rows_per_block);                    \
    }
XLT_FOR_EACH_FLOAT(XLT_LAYERNORM)

// dw (C) += Σ_k partial[k, 0, :], db (C) += Σ_k partial[k, 1, :], the blocks added in order k =
// 0, 1, ... One thread per element of [dw | db].
extern "C" __global__ void layernorm_backward_reduce_f32(float* dw, float* db, const float* partial, int blocks,
                                                         int c) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= 2 * c) return;
    float s = 0.0f;
    for (int k = 0; k < blocks; k++) s += partial[(i64)k * 2 * c + j];
    if (j < c) {
        dw[j] += s;
    } else {
        db[j - c] += s;
    }
}
