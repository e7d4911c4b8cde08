// emu.h: compiles xlt's CUDA kernels (kernels/*.cu) as host C++ for the kernel emulator
// (tests/cuda_emu/emu.cpp), so their logic runs, and is checked against the CPU backend, on a
// machine without a GPU. Force-included (`g++ -include emu.h -DXLT_EMU -fno-strict-aliasing`, as
// kernels type-pun through pointers like all CUDA code) before a kernel file.
//
// Model: one block at a time; its threads are fibers of one OS thread, switched only at
// __syncthreads and at warp-collective operations (shuffles, tensor-core mma, __syncwarp). A
// missing barrier is caught by running every launch twice, threads in ascending and in
// descending order (a race reads different data in the two orders). Exited threads count as
// arrived at barriers. A warp collective that not all live lanes reach is reported as a
// deadlock.
//
// What it cannot check: timing, occupancy, register or shared-memory limits, the hardware's own
// rounding inside mma (emulated as an f32 sum of exact products), cuBLAS.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
// Static shared arrays live in one section, which the launcher fills with 0xff (NaN) before
// every block, as it does dynamic shared memory: a thread that reads an element no thread of
// its block wrote reads NaN, not what an earlier block or run left there.
#define __shared__ static __attribute__((section("xlt_shared")))
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict

namespace xlt_emu {

struct Dim {
    unsigned x = 1, y = 1, z = 1;
};

// The running thread: its index, and its lane and warp in the block.
struct ThreadState {
    Dim thread_idx;
    int lane = 0, warp = 0, linear = 0;
};

extern ThreadState* current;
extern Dim block_idx, block_dim, grid_dim;

// Block-wide barrier (__syncthreads).
void sync_block();
// Bytes per lane of a warp exchange.
constexpr int SLOT = 64;
// Exchanges `bytes` (at most SLOT) bytes per lane across the current warp: every live lane
// writes `mine`; the result points at 32 slots of SLOT bytes (slot l holds lane l's data; an
// exited lane's is stale). Every lane of the warp must call it the same number of times, as
// every lane of a warp reaches a collective on the GPU.
const unsigned char* warp_exchange(const void* mine, int bytes);
// Dynamic shared memory of the running launch (extern __shared__).
unsigned char* dynamic_shared();

}  // namespace xlt_emu

#define threadIdx (xlt_emu::current->thread_idx)
#define blockIdx (xlt_emu::block_idx)
#define blockDim (xlt_emu::block_dim)
#define gridDim (xlt_emu::grid_dim)

inline void __syncthreads() { xlt_emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) {
    int dummy = 0;
    xlt_emu::warp_exchange(&dummy, sizeof dummy);
}

// __shfl_xor_sync, the only shuffle the kernels use: every lane of the warp takes part.
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
    const unsigned char* all = xlt_emu::warp_exchange(&v, sizeof(T));
    T out;
    std::memcpy(&out, all + (size_t)(xlt_emu::current->lane ^ lane_mask) * xlt_emu::SLOT, sizeof(T));
    return out;
}

// Device intrinsics used by the kernels, with their documented meaning.
inline float __int_as_float(int x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
inline int __float_as_int(float f) {
    int x;
    std::memcpy(&x, &f, 4);
    return x;
}
inline unsigned __float_as_uint(float f) {
    unsigned x;
    std::memcpy(&x, &f, 4);
    return x;
}
inline float __uint_as_float(unsigned x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
// The explicitly rounded arithmetic of adamw.cu and global_norm.cu: on the host each operation
// is one IEEE operation in round-to-nearest (ISO C++ mode does not contract into FMAs).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline double __dsqrt_rn(double x) { return std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return std::min(1.0f, std::max(0.0f, x)); }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline unsigned atomicAdd(unsigned* p, unsigned v) {  // fibers never interleave inside a call
    unsigned old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}

// Registration of a kernel under its C name, so the launcher finds it by name and calls it with
// the driver's argument convention (an array of pointers to each argument's value).
// Each registration records the size of every parameter, so a launch whose arguments do not
// match the kernel's signature is an error, not a misread.
namespace xlt_emu {
using Invoke = void (*)(void* fn, void** params);
struct Reg {
    Reg(const char* name, void* fn, Invoke invoke, const int* sizes, int count);
};
template <typename... A> struct Invoker {
    template <size_t... I> static void call_idx(void* fn, void** p, std::index_sequence<I...>) {
        reinterpret_cast<void (*)(A...)>(fn)(*static_cast<std::remove_reference_t<A>*>(p[I])...);
    }
    static void call(void* fn, void** p) { call_idx(fn, p, std::index_sequence_for<A...>{}); }
    static constexpr int count = (int)sizeof...(A);
    static constexpr int sizes[sizeof...(A) + 1] = {(int)sizeof(A)..., 0};
};
template <typename... A> Invoker<A...> deduce(void (*)(A...));
}  // namespace xlt_emu

#define XLT_EMU_REGISTER(name)                                                                                         \
    static xlt_emu::Reg xlt_emu_reg_##name(#name, reinterpret_cast<void*>(&name),                                     \
                                           &decltype(xlt_emu::deduce(&name))::call,                                   \
                                           decltype(xlt_emu::deduce(&name))::sizes,                                   \
                                           decltype(xlt_emu::deduce(&name))::count);
