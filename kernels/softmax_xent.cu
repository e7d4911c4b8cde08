// softmax_xent.cu: softmax cross-entropy over K classes, from 2 labels up to a 250k-token
// vocabulary (the twin of cpu::ops::crossentropy_forward / crossentropy_backward).
//
// One block per row, looping over K: an online (max, sum of exp) pass, then (backward) a write
// pass. Probabilities are never stored, so no second (N, K) buffer exists; the backward may
// overwrite the logits in place (dlogits == logits): the row's statistics are complete (block
// reductions synchronise) before any write, and each element is read and then written by the
// same thread.
//
// Targets are i64, -100 = ignored (loss 0, gradient 0). The model validates labels before the
// loss, so a target outside [0, K) is a bug upstream: it is never used as an index (no
// out-of-bounds read); the forward writes NaN for that row so the loss shows it, and the backward
// writes dloss * softmax (no one-hot term).
#include "common.cuh"

#define XENT_IGNORE_INDEX (-100LL)

// The row's max and ln Σ exp(x - max) over x = row[0..k), on every thread of the block.
// `shared` holds 32 floats.
template <typename T>
__device__ __forceinline__ void xent_row_stats(const T* row, int k, float* shared, float* max_out, float* lse_out) {
    float mx = XLT_NEG_INF, s = 0.0f;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const float v = to_f(row[j]);
        if (v > mx) {
            s = s * expf(mx - v) + 1.0f;  // mx = -inf on the first element: expf(-inf) = 0
            mx = v;
        } else if (v != XLT_NEG_INF) {    // exp(-inf) adds nothing (and -inf - -inf is NaN)
            s += expf(v - mx);
        }
    }
    const float row_max = block_max(mx, shared);
    s = mx == XLT_NEG_INF ? 0.0f : s * expf(mx - row_max);  // a thread may have seen no element
    const float sum = block_sum(s, shared);
    *max_out = row_max;
    *lse_out = logf(sum);
}

// losses (N) f32 = max + ln Σ exp(logits - max) - logits[target] per row; 0 where ignored.
template <typename T>
__device__ void crossentropy_forward(float* losses, const T* logits, const i64* targets, int n, int k) {
    __shared__ float shared[32];
    const int i = blockIdx.x;
    if (i >= n) return;  // whole block
    const i64 target = targets[i];
    if (target == XENT_IGNORE_INDEX) {
        if (threadIdx.x == 0) losses[i] = 0.0f;
        return;
    }
    const T* row = logits + (u64)i * k;
    float row_max, lse;
    xent_row_stats(row, k, shared, &row_max, &lse);
    if (threadIdx.x == 0) {
        const bool valid = target >= 0 && target < (i64)k;
        losses[i] = valid ? row_max + lse - to_f(row[target]) : __int_as_float(0x7fc00000);  // NaN
    }
}

// dlogits (N, K) = dloss * (softmax(logits) - onehot(target)), overwritten; 0 on ignored rows.
// dlogits may be logits itself (in place).
template <typename T>
__device__ void crossentropy_backward(T* dlogits, const T* logits, const i64* targets, float dloss, int n, int k) {
    __shared__ float shared[32];
    const int i = blockIdx.x;
    if (i >= n) return;  // whole block
    const i64 target = targets[i];
    T* d = dlogits + (u64)i * k;
    if (target == XENT_IGNORE_INDEX) {
        for (int j = threadIdx.x; j < k; j += blockDim.x) d[j] = from_f<T>(0.0f);
        return;
    }
    const T* row = logits + (u64)i * k;
    float row_max, lse;
    xent_row_stats(row, k, shared, &row_max, &lse);  // ends in a block reduction: all reads done
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const float p = expf(to_f(row[j]) - row_max - lse);
        d[j] = from_f<T>(dloss * (p - ((i64)j == target ? 1.0f : 0.0f)));
    }
}

#define XLT_XENT(suffix, T)                                                                                            \
    extern "C" __global__ void crossentropy_forward_##suffix(float* losses, const T* logits, const i64* targets,      \
                                                             int n, int k) {                                          \
        crossentropy_forward<T>(losses, logits, targets, n, k);                                                       \
    }                                                                                                                  \
    extern "C" __global__ void crossentropy_backward_##suffix(T* dlogits, const T* logits, const i64* targets,        \
                                                              float dloss, int n, int k) {                            \
        crossentropy_backward<T>(dlogits, logits, targets, dloss, n, k);                                              \
    }

XLT_FOR_EACH_FLOAT(XLT_XENT)
