// global_norm.cu: the global L2 norm of the f32 gradient buffer, the in-place scaling of
// gradient averaging, and clipping by the norm where it lies, on the device
// (cpu::ops::grad_norm, scale_inplace, clip_grad_norm): a training step never waits for the
// host to read the norm.
//
// The norm accumulates squares in double, as the CPU does, in two deterministic passes:
//   1. global_norm_partial: each block sums x² over its grid-stride elements in double and
//      writes one double partial (the grid size depends only on n, never on the device);
//   2. global_norm_reduce: one block adds the partials in a fixed order and writes the f32 norm
//      sqrt(Σ) (rounded from double, as the CPU's `as f32`).
// A float squared is exact in double, so only the order of the additions differs from the CPU.
#include "common.cuh"

__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Double sum over the whole block (blockDim.x a multiple of 32); every thread gets the result.
__device__ __forceinline__ double block_sum_d(double v, double* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0;
    return warp_sum_d(v);
}

// partial (gridDim.x) f64: partial[b] = Σ grads[i]² over block b's grid-stride elements.
extern "C" __global__ void global_norm_partial_f32(double* partial, const float* grads, int n) {
    __shared__ double shared[32];
    double acc = 0.0;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double x = (double)grads[i];
        acc += x * x;
    }
    acc = block_sum_d(acc, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// norm (1) f32 = sqrt(Σ_b partial[b]), b = 0..blocks. Launched as one block.
extern "C" __global__ void global_norm_reduce_f32(float* norm, const double* partial, int blocks) {
    __shared__ double shared[32];
    double acc = 0.0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) acc += partial[b];
    acc = block_sum_d(acc, shared);
    if (threadIdx.x == 0) norm[0] = (float)__dsqrt_rn(acc);
}

// grads (N) f32 *= scale.
extern "C" __global__ void scale_inplace_f32(float* grads, float scale, int n) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) grads[i] = __fmul_rn(grads[i], scale);
}

// Clipping (cpu::ops::clip_grad_norm, PyTorch's clip_grad_norm_): grads (N) f32 *= max_norm /
// (norm + 1e-6) when that coefficient is below 1; norm (1) f32 is global_norm_reduce's output.
extern "C" __global__ void clip_by_norm_f32(float* grads, const float* norm, float max_norm, int n) {
    const float coef = __fdiv_rn(max_norm, __fadd_rn(norm[0], 1e-6f));
    if (!(coef < 1.0f)) return;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) grads[i] = __fmul_rn(grads[i], coef);
}
