// common.cuh: helpers shared by every xlt CUDA kernel.
//
// Shape names follow the CPU backend (src/cpu/ops.rs): B batch, T time, C channels, NH heads,
// HS head size, N = B*T rows, V vocabulary, OC output channels.
//
// Every kernel file defines its kernels once as templates over the activation type
// (float, __nv_bfloat16, __half) and instantiates them with XLT_FOR_EACH_FLOAT under the
// C names `<op>_<dtype>` (`layernorm_forward_bf16`), which the Rust wrappers in
// src/cuda/ops/ load by name. Arguments are in the CPU twin's order: outputs, inputs, sizes.
// Arithmetic is always in float; only loads and stores touch the narrow types.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define XLT_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
// -inf without <math.h> (NVRTC has no INFINITY macro).
#define XLT_NEG_INF __int_as_float(0xff800000)

typedef unsigned long long u64;
typedef unsigned int u32;
typedef long long i64;

// A kernel's dynamic shared memory (the launch's `shared` bytes) as an array `name` of T. The
// host kernel emulator (tests/cuda_emu/emu.h) hands out its own buffer instead.
#ifdef XLT_EMU
#define XLT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(xlt_emu::dynamic_shared())
#else
#define XLT_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// ---------------------------------------------------------------------------------------------
// dtype conversions: everything computes in float.

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

// Instantiates X(suffix, type) for every activation type.
#define XLT_FOR_EACH_FLOAT(X) X(f32, float) X(bf16, __nv_bfloat16) X(f16, __half)

// ---------------------------------------------------------------------------------------------
// counter-based random numbers, bit-identical to src/rng.rs: the same (seed, index) gives the
// same dropout decision on the CPU and the GPU, so masks are regenerated, never stored.

// SplitMix64 finaliser (rng::mix64).
__device__ __forceinline__ u64 xlt_mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 bits (rng::uniform).
__device__ __forceinline__ float xlt_uniform(u64 seed, u64 index) {
    u64 h = xlt_mix64(seed + (index + 1ULL) * 0x9e3779b97f4a7c15ULL);
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

// The factor dropout applies to element `index`: 0 with probability p, else 1/(1-p)
// (cpu::ops::dropout_scale).
__device__ __forceinline__ float xlt_dropout_scale(u64 seed, u64 index, float p) {
    return xlt_uniform(seed, index) < p ? 0.0f : 1.0f / (1.0f - p);
}

// ---------------------------------------------------------------------------------------------
// reductions

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. `shared` holds 32 floats. Safe to call repeatedly: it synchronises before reuse.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0f;
    return warp_sum(v);
}

// Max over the whole block, as block_sum.
__device__ __forceinline__ float block_max(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : XLT_NEG_INF;
    return warp_max(v);
}
