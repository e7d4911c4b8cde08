// attention.cu: the hand-written kernels of multi-head self-attention with a key-padding mask
// (the twin of cpu::ops::attention_forward / attention_backward). The matrix products are
// batched cuBLAS GEMMs issued by src/cuda/ops/attention.rs; these kernels do the rest:
//
//   attention_permute           (B, T, P*C)      -> (P, B, NH, T, HS)   qkv -> q, k, v; dout -> dy
//   attention_unpermute         (P, B, NH, T, HS) -> (B, T, P*C)        y -> out; dq, dk, dv -> dqkv
//   attention_softmax_forward   scores -> probabilities in place (+ the dropped copy)
//   attention_dropout           probabilities -> dropped copy (backward, regenerated mask)
//   attention_softmax_backward  dP -> dS in place (dropout mask, softmax Jacobian, 1/sqrt(HS))
//
// Dropout on the probabilities uses the counter-based RNG with index = the flat index into
// att (B, NH, T, T), i.e. (bi*NH + h)*T*T + i*T + j, exactly as the CPU, so masks are equal.
// Flat indices into (B, NH, T, T) can pass 2^31, so they are computed in 64 bits.
#include "common.cuh"

// Rows (warps) per block of the row kernels: one warp per row of T scores.
#define ATT_ROWS_PER_BLOCK 8

// ---------------------------------------------------------------------------------------------
// layout changes

// dst (P, B, NH, T, HS) [p][bi][h][ti][d] = src (B, T, P*C) [bi][ti][p*C + h*HS + d].
// P = 3 splits qkv into q, k, v; P = 1 turns dout (B, T, C) into dy (B, NH, T, HS).
// Blocks stride over the B*T rows of src, threads over a row's P*C columns (coalesced reads;
// writes are runs of HS contiguous elements).
template <typename T>
__device__ void attention_permute(T* dst, const T* src, int b, int t, int c, int nh, int parts) {
    const int hs = c / nh, width = parts * c;
    for (int row = blockIdx.x; row < b * t; row += gridDim.x) {
        const int bi = row / t, ti = row % t;
        const T* s = src + (u64)row * width;
        for (int j = threadIdx.x; j < width; j += blockDim.x) {
            const int p = j / c, cc = j - p * c, h = cc / hs, d = cc - h * hs;
            dst[((((u64)p * b + bi) * nh + h) * t + ti) * hs + d] = s[j];
        }
    }
}

// dst (B, T, P*C) [bi][ti][p*C + h*HS + d] = src (P, B, NH, T, HS) [p][bi][h][ti][d]; the
// inverse of attention_permute (dst is overwritten), with the same loop so writes coalesce.
template <typename T>
__device__ void attention_unpermute(T* dst, const T* src, int b, int t, int c, int nh, int parts) {
    const int hs = c / nh, width = parts * c;
    for (int row = blockIdx.x; row < b * t; row += gridDim.x) {
        const int bi = row / t, ti = row % t;
        T* o = dst + (u64)row * width;
        for (int j = threadIdx.x; j < width; j += blockDim.x) {
            const int p = j / c, cc = j - p * c, h = cc / hs, d = cc - h * hs;
            o[j] = src[((((u64)p * b + bi) * nh + h) * t + ti) * hs + d];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// softmax

// att (B, NH, T, T): scores in, probabilities out (in place). Row (bi, h, i) becomes the
// softmax of scores * scale over the keys j with mask[bi, j] != 0; masked keys get 0, and a row
// whose keys are all masked is all zeros (cpu softmax_masked_row). When dropped is not null it
// also gets the probabilities times the dropout factor of their flat index (p_drop, seed).
// One warp per row: an online (max, sum) pass, then a write pass.
template <typename T>
__device__ void attention_softmax_forward(T* att, T* dropped, const float* mask, int b, int nh, int t, float scale,
                                          float p_drop, u64 seed) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= (long long)b * nh * t) return;  // whole warp: no block-level sync below
    const int bi = (int)(row / ((long long)nh * t));
    T* x = att + (u64)row * t;
    const float* m = mask + (u64)bi * t;

    float mx = XLT_NEG_INF, s = 0.0f;
    for (int j = lane; j < t; j += 32) {
        if (m[j] == 0.0f) continue;
        const float v = to_f(x[j]) * scale;
        if (v > mx) {
            s = s * expf(mx - v) + 1.0f;  // mx = -inf on the first key: expf(-inf) = 0
            mx = v;
        } else {
            s += expf(v - mx);
        }
    }
    const float row_max = warp_max(mx);
    T* out_d = dropped ? dropped + (u64)row * t : nullptr;
    if (row_max == XLT_NEG_INF) {  // every key masked
        for (int j = lane; j < t; j += 32) {
            x[j] = from_f<T>(0.0f);
            if (out_d) out_d[j] = from_f<T>(0.0f);
        }
        return;
    }
    s = mx == XLT_NEG_INF ? 0.0f : s * expf(mx - row_max);  // a lane may have seen no key
    const float inv = 1.0f / warp_sum(s);
    const u64 base = (u64)row * (u64)t;
    for (int j = lane; j < t; j += 32) {
        const float pr = m[j] != 0.0f ? expf(to_f(x[j]) * scale - row_max) * inv : 0.0f;
        x[j] = from_f<T>(pr);
        if (out_d) out_d[j] = from_f<T>(pr * xlt_dropout_scale(seed, base + (u64)j, p_drop));
    }
}

// out (B, NH, T, T) = att * dropout factor of the flat index (p, seed): the dropped
// probabilities the forward used, regenerated in the backward.
template <typename T>
__device__ void attention_dropout(T* out, const T* att, int b, int nh, int t, float p, u64 seed) {
    const u64 n = (u64)b * nh * t * t;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (u64)gridDim.x * blockDim.x) {
        out[idx] = from_f<T>(to_f(att[idx]) * xlt_dropout_scale(seed, (u64)idx, p));
    }
}

// datt (B, NH, T, T): dP (the gradient of the dropped probabilities) in, dS (the gradient of the
// raw scores) out, in place. Differentiates `P = softmax(S * scale)`, `Pd = P * keep`:
//   dP' = dP * keep;  dS = P * (dP' - Σ_j dP' P) * scale,
// with P = att (before dropout) and keep regenerated from (p_drop, seed) when p_drop > 0.
// One warp per row; every element is read and written by the same lane.
template <typename T>
__device__ void attention_softmax_backward(T* datt, const T* att, int b, int nh, int t, float scale, float p_drop,
                                           u64 seed) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= (long long)b * nh * t) return;  // whole warp
    T* d = datt + (u64)row * t;
    const T* pr = att + (u64)row * t;
    const u64 base = (u64)row * (u64)t;
    const bool drop = p_drop > 0.0f;

    float dot = 0.0f;
    for (int j = lane; j < t; j += 32) {
        float g = to_f(d[j]);
        if (drop) g *= xlt_dropout_scale(seed, base + (u64)j, p_drop);
        dot += g * to_f(pr[j]);
    }
    dot = warp_sum(dot);
    for (int j = lane; j < t; j += 32) {
        float g = to_f(d[j]);
        if (drop) g *= xlt_dropout_scale(seed, base + (u64)j, p_drop);
        d[j] = from_f<T>(to_f(pr[j]) * (g - dot) * scale);
    }
}

// ---------------------------------------------------------------------------------------------
// instantiations

#define XLT_ATTENTION(suffix, T)                                                                                       \
    extern "C" __global__ void attention_permute_##suffix(T* dst, const T* src, int b, int t, int c, int nh,          \
                                                          int parts) {                                                \
        attention_permute<T>(dst, src, b, t, c, nh, parts);                                                           \
    }                                                                                                                  \
    extern "C" __global__ void attention_unpermute_##suffix(T* dst, const T* src, int b, int t, int c, int nh,        \
                                                            int parts) {                                              \
        attention_unpermute<T>(dst, src, b, t, c, nh, parts);                                                         \
    }                                                                                                                  \
    extern "C" __global__ void attention_softmax_forward_##suffix(T* att, T* dropped, const float* mask, int b,       \
                                                                  int nh, int t, float scale, float p_drop,           \
                                                                  u64 seed) {                                         \
        attention_softmax_forward<T>(att, dropped, mask, b, nh, t, scale, p_drop, seed);                              \
    }                                                                                                                  \
    extern "C" __global__ void attention_dropout_##suffix(T* out, const T* att, int b, int nh, int t, float p,        \
                                                          u64 seed) {                                                 \
        attention_dropout<T>(out, att, b, nh, t, p, seed);                                                            \
    }                                                                                                                  \
    extern "C" __global__ void attention_softmax_backward_##suffix(T* datt, const T* att, int b, int nh, int t,       \
                                                                   float scale, float p_drop, u64 seed) {             \
        attention_softmax_backward<T>(datt, att, b, nh, t, scale, p_drop, seed);                                      \
    }

XLT_FOR_EACH_FLOAT(XLT_ATTENTION)
