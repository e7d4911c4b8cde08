// bias.cu: the bias of the linear layers. Forward: out (N, OC) += bias (OC), run after the cuBLAS
// product (src/cuda/gemm.rs, the bias rows of cpu::ops::matmul_forward). Backward: dbias (OC)
// f32 += column sums of dout (N, OC), deterministic in two passes (cpu::ops::bias_backward):
//   1. bias_backward_partial: partial[blk][c] = Σ dout[r][c] over the rows of fixed block blk,
//      rows in order, one thread per column;
//   2. bias_backward_reduce: dbias[c] += Σ_blk partial[blk][c], blocks in order.
// With the CPU's block of 64 rows this is the CPU's exact sequence of f32 additions.
#include "common.cuh"

// out (N, OC) += bias (OC). Grid: x over blocks of blockDim.x columns, y strides over rows; each
// thread keeps its column's bias in a register.
template <typename T>
__device__ __forceinline__ void bias_forward_kernel(T* out, const T* bias, int N, int OC) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    const float b = to_f(bias[c]);
    for (int r = blockIdx.y; r < N; r += gridDim.y) {
        T* o = out + (i64)r * OC + c;
        *o = from_f<T>(to_f(*o) + b);
    }
}

// partial (blocks, OC) f32: partial[blk][c] = Σ_{r in [blk*R, min(N, (blk+1)*R))} dout[r][c],
// summed from 0 in row order. Grid: x = row block, y over blocks of blockDim.x columns.
template <typename T>
__device__ __forceinline__ void bias_backward_partial_kernel(float* partial, const T* dout, int N, int OC, int R) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    const i64 r0 = (i64)blockIdx.x * R;
    const i64 r1 = r0 + R < (i64)N ? r0 + R : (i64)N;
    float acc = 0.0f;
    // Unrolling only batches the loads; the additions stay in row order.
#pragma unroll 8
    for (i64 r = r0; r < r1; r++) acc += to_f(dout[r * OC + c]);
    partial[(i64)blockIdx.x * OC + c] = acc;
}

#define X(sfx, T)                                                                                           \
    extern "C" __global__ void bias_forward_##sfx(T* out, const T* bias, int N, int OC) {                   \
        bias_forward_kernel<T>(out, bias, N, OC);                                                           \
    }                                                                                                       \
    extern "C" __global__ void bias_backward_partial_##sfx(float* partial, const T* dout, int N, int OC,    \
                                                           int R) {                                         \
        bias_backward_partial_kernel<T>(partial, dout, N, OC, R);                                           \
    }
XLT_FOR_EACH_FLOAT(X)
#undef X

// dbias (OC) f32 += Σ_blk partial[blk][c] for blk = 0..blocks in order. One thread per column.
extern "C" __global__ void bias_backward_reduce_f32(float* dbias, const float* partial, int blocks, int OC) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float s = 0.0f;
#pragma unroll 8
    for (int b = 0; b < blocks; b++) s += partial[(i64)b * OC + c];
    dbias[c] += s;
}
