// cast.cu: mixed-precision conversions between the f32 master copies and the activation dtype,
// and the overflow check of fp16 dynamic loss scaling.
//   cast_from_f32_<dtype>: out (N) dtype = inp (N) f32, rounded to nearest even (as half's
//                          bf16::from_f32 / f16::from_f32; only NaN payloads may differ);
//   cast_to_f32_<dtype>:   out (N) f32 = inp (N) dtype (exact);
//   count_nonfinite_f32:   count (1) u32 += how many of x (N) f32 are NaN or ±inf. The block
//                          counts are added with an integer atomic, which is exact and
//                          order-independent: deterministic. The caller zeroes `count` first.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void cast_from_f32_kernel(T* out, const float* inp, int n) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = from_f<T>(inp[i]);
}

template <typename T>
__device__ __forceinline__ void cast_to_f32_kernel(float* out, const T* inp, int n) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = to_f(inp[i]);
}

#define X(sfx, T)                                                                                           \
    extern "C" __global__ void cast_from_f32_##sfx(T* out, const float* inp, int n) {                       \
        cast_from_f32_kernel<T>(out, inp, n);                                                               \
    }                                                                                                       \
    extern "C" __global__ void cast_to_f32_##sfx(float* out, const T* inp, int n) {                         \
        cast_to_f32_kernel<T>(out, inp, n);                                                                 \
    }
XLT_FOR_EACH_FLOAT(X)
#undef X

__device__ __forceinline__ u32 warp_sum_u32(u32 v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// count (1) += the number of NaN/±inf in x (N): all exponent bits set (no <math.h> isfinite).
extern "C" __global__ void count_nonfinite_f32(u32* count, const float* x, int n) {
    __shared__ u32 shared[32];
    u32 k = 0;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        k += (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u ? 1u : 0u;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    k = warp_sum_u32(k);
    if (lane == 0) shared[warp] = k;
    __syncthreads();
    if (warp == 0) {
        k = warp_sum_u32(lane < warps ? shared[lane] : 0u);
        if (lane == 0 && k > 0) atomicAdd(count, k);
    }
}
