// gelu.cu: the element-wise activations, forward and backward: exact (erf) GELU for the
// encoder's feed-forward layers and tanh for the classification head's pooler (the twins of
// cpu::ops::gelu_forward/_backward and tanh_forward/_backward). Grid-stride loops.
#include "common.cuh"

#define XLT_INV_SQRT_2 0.70710678118654752f
// 1 / sqrt(2π)
#define XLT_INV_SQRT_2PI 0.39894228040143268f

// out (N) = 0.5 x (1 + erf(x / sqrt 2)): exact GELU as HF `hidden_act: gelu`.
template <typename T>
__device__ __forceinline__ void gelu_forward(T* out, const T* inp, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const float x = to_f(inp[i]);
        out[i] = from_f<T>(0.5f * x * (1.0f + erff(x * XLT_INV_SQRT_2)));
    }
}

// dinp (N) = dout · GELU'(inp) (overwritten). Differentiates `out = 0.5 x (1 + erf(x/√2))`:
// GELU'(x) = Φ(x) + x φ(x).
template <typename T>
__device__ __forceinline__ void gelu_backward(T* dinp, const T* inp, const T* dout, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const float x = to_f(inp[i]);
        const float cdf = 0.5f * (1.0f + erff(x * XLT_INV_SQRT_2));
        const float pdf = expf(-0.5f * x * x) * XLT_INV_SQRT_2PI;
        dinp[i] = from_f<T>(to_f(dout[i]) * (cdf + x * pdf));
    }
}

// out (N) = tanh(inp).
template <typename T>
__device__ __forceinline__ void tanh_forward(T* out, const T* inp, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        out[i] = from_f<T>(tanhf(to_f(inp[i])));
    }
}

// dinp (N) = dout · (1 - out²) (overwritten). Differentiates `out = tanh(inp)`.
template <typename T>
__device__ __forceinline__ void tanh_backward(T* dinp, const T* out, const T* dout, int n) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
        const float o = to_f(out[i]);
        dinp[i] = from_f<T>(to_f(dout[i]) * (1.0f - o * o));
    }
}

#define XLT_ACTIVATIONS(suffix, T)                                                                        \
    extern "C" __global__ void gelu_forward_##suffix(T* out, const T* inp, int n) {                         \
        gelu_forward<T>(out, inp, n);                                                                       \
    }                                                                                                       \
    extern "C" __global__ void gelu_backward_##suffix(T* dinp, const T* inp, const T* dout, int n) {        \
        gelu_backward<T>(dinp, inp, dout, n);                                                               \
    }                                                                                                       \
    extern "C" __global__ void tanh_forward_##suffix(T* out, const T* inp, int n) {                         \
        tanh_forward<T>(out, inp, n);                                                                       \
    }                                                                                                       \
    extern "C" __global__ void tanh_backward_##suffix(T* dinp, const T* out, const T* dout, int n) {        \
        tanh_backward<T>(dinp, out, dout, n);                                                               \
    }
XLT_FOR_EACH_FLOAT(XLT_ACTIVATIONS)
