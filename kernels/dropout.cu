// dropout.cu: dropout with counter-based masks and the residual addition (the twins of
// cpu::ops::dropout_forward/_backward and residual_forward). Element i of a call is kept or
// dropped by xlt_dropout_scale(seed, i, p), i the index within the call's view as on the CPU,
// so the GPU's masks equal the CPU's and the backward regenerates the forward's mask from
// (seed, i) instead of storing it. Grid-stride loops.
#include "common.cuh"

// x (N) *= dropout mask (in place): 0 with probability p, else 1/(1-p). The wrapper skips the
// launch when p <= 0. The backward is the same call on dx (it differentiates `x = x * mask`).
template <typename T>
__device__ __forceinline__ void dropout_forward(T* x, float p, u64 seed, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        x[i] = from_f<T>(to_f(x[i]) * xlt_dropout_scale(seed, (u64)i, p));
    }
}

// out (N) += inp (N): the residual connection, and the accumulation of residual-stream
// gradients in the backward.
template <typename T>
__device__ __forceinline__ void residual_forward(T* out, const T* inp, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        out[i] = from_f<T>(to_f(out[i]) + to_f(inp[i]));
    }
}

#define XLT_DROPOUT(suffix, T)                                                                   \
    extern "C" __global__ void dropout_forward_##suffix(T* x, float p, u64 seed, int n) {         \
        dropout_forward<T>(x, p, seed, n);                                                        \
    }                                                                                             \
    extern "C" __global__ void residual_forward_##suffix(T* out, const T* inp, int n) {           \
        residual_forward<T>(out, inp, n);                                                         \
    }
XLT_FOR_EACH_FLOAT(XLT_DROPOUT)
