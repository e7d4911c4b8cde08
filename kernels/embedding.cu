// embedding.cu: the input embeddings, out = wte[ids] + wpe[pos] + wtt[types], and their
// deterministic scatter-add backward (the twins of cpu::ops::embedding_forward/_backward).
//
// The backward uses no atomics: the host groups the rows of dout by the table row they feed
// (unique rows in increasing order, each with its dout rows in increasing order), and one
// block owns one table row and a slice of its channels, adding the dout rows in order straight
// onto the f32 gradient row. That is the CPU's summation order exactly, so f32 results are
// bit-identical to the CPU's and a rerun is bit-identical to the last.
#include "common.cuh"

// out (N, C) = wte[ids] + wpe[pos] + wtt[types]; tables (V, C), (P, C), (TT, C). An id outside
// its table (the wrapper cannot check device ids) reads nothing and writes NaN, so the bug
// shows up in the loss instead of as a silent wild read.
template <typename T>
__device__ __forceinline__ void embedding_forward(T* out, const u32* ids, const u32* pos, const u32* types, const T* wte,
                                  const T* wpe, const T* wtt, int n, int c, int v, int p, int tt) {
    const i64 total = (i64)n * c;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (i64)gridDim.x * blockDim.x) {
        const i64 i = idx / c;
        const int j = (int)(idx - i * c);
        const u32 w = ids[i], q = pos[i], t = types[i];
        float o;
        if (w < (u32)v && q < (u32)p && t < (u32)tt) {
            o = to_f(wte[(i64)w * c + j]) + to_f(wpe[(i64)q * c + j]) + to_f(wtt[(i64)t * c + j]);
        } else {
            o = __int_as_float(0x7fc00000);  // NaN
        }
        out[idx] = from_f<T>(o);
    }
}

// Scatter-add of dout (N, C) into one gradient table (R, C) f32 (+=), as grouped on the host:
// `rows` (U) the distinct table rows touched, `offsets` (U + 1) where each row's list starts in
// `members`, `members` the dout rows feeding it, increasing. Grid (U, ceil(C / blockDim.x)):
// block (b, y) adds into table row rows[b], channels y * blockDim.x + threadIdx.x.
// Differentiates `o = wte[w] + wpe[p] + wtt[tt]` for one of the three tables.
template <typename T>
__device__ __forceinline__ void embedding_backward(float* dtable, const T* dout, const u32* rows, const u32* offsets,
                                   const u32* members, int u, int c) {
    const int b = blockIdx.x;
    const int j = blockIdx.y * blockDim.x + threadIdx.x;
    if (b >= u || j >= c) return;
    float* g = dtable + (i64)rows[b] * c + j;
    float acc = *g;
    const u32 end = offsets[b + 1];
    for (u32 k = offsets[b]; k < end; k++) acc += to_f(dout[(i64)members[k] * c + j]);
    *g = acc;
}

#define XLT_EMBEDDING(suffix, T)                                                                           \
    extern "C" __global__ void embedding_forward_##suffix(T* out, const u32* ids, const u32* pos,            \
                                                          const u32* types, const T* wte, const T* wpe,      \
                                                          const T* wtt, int n, int c, int v, int p, int tt) { \
        embedding_forward<T>(out, ids, pos, types, wte, wpe, wtt, n, c, v, p, tt);                           \
    }                                                                                                        \
    extern "C" __global__ void embedding_backward_##suffix(float* dtable, const T* dout, const u32* rows,   \
                                                           const u32* offsets, const u32* members, int u,   \
                                                           int c) {                                         \
        embedding_backward<T>(dtable, dout, rows, offsets, members, u, c);                                   \
    }
XLT_FOR_EACH_FLOAT(XLT_EMBEDDING)
