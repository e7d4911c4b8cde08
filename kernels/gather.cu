// gather.cu: moving whole rows between a (N, C) tensor and a compact (M, C) one, for the heads
// that read a subset of positions: the first token of each sequence (classification) and the
// masked positions (MLM). rows (M) holds the row index in the (N, C) tensor of each compact row.
#include "common.cuh"

// out (M, C) = inp[rows] (N, C). One thread per element of out.
template <typename T>
__device__ void gather_rows(T* out, const T* inp, const u32* rows, int m, int c) {
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < (i64)m * c; idx += (i64)gridDim.x * blockDim.x) {
        const i64 r = idx / c, j = idx % c;
        out[idx] = inp[(i64)rows[r] * c + j];
    }
}

// out[rows] (N, C) = inp (M, C): the gather's backward. Rows not listed are left as they are
// (the caller zeroes out first); listed rows must be distinct.
template <typename T>
__device__ void scatter_rows(T* out, const T* inp, const u32* rows, int m, int c) {
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < (i64)m * c; idx += (i64)gridDim.x * blockDim.x) {
        const i64 r = idx / c, j = idx % c;
        out[(i64)rows[r] * c + j] = inp[idx];
    }
}

#define XLT_GATHER(S, T)                                                                                 \
    extern "C" __global__ void gather_rows_##S(T* out, const T* inp, const u32* rows, int m, int c) {   \
        gather_rows<T>(out, inp, rows, m, c);                                                            \
    }                                                                                                    \
    extern "C" __global__ void scatter_rows_##S(T* out, const T* inp, const u32* rows, int m, int c) {  \
        scatter_rows<T>(out, inp, rows, m, c);                                                           \
    }
XLT_FOR_EACH_FLOAT(XLT_GATHER)
