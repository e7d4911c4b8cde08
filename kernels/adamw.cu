// adamw.cu: one AdamW step over the f32 master parameters, the twin of cpu::ops::adamw_update
// (PyTorch torch.optim.AdamW: decoupled weight decay):
//   p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
//   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + ε).
// The bias corrections come from the host, computed in f64 as on the CPU, as three floats:
// step_size = lr/(1-β1^t), bc2_sqrt = sqrt(1-β2^t), decay = 1 - lr·wd.
//
// Every operation is an explicitly rounded intrinsic (__fmul_rn, __fadd_rn, ...), which nvcc
// never contracts into an FMA, in the CPU's evaluation order: the step is the CPU's sequence of
// f32 roundings, so the two backends agree bit for bit.
//
// One launch covers the whole flat parameter buffer: weight decay applies where bit i of
// decay_bits (N/32 words, bit i % 32 of word i / 32) is set (the layout's flag: weights, not
// biases or LayerNorm parameters), so a step is one pass, not one launch per tensor. A null
// decay_bits decays everywhere. When skip is not null and *skip != 0 (the fp16 overflow count),
// the step is skipped on the device, without the host having to read the flag first.
//
// adamw_update_f32 updates params/m/v in place. adamw_update_copy_<dtype> also writes params_x,
// the activation-dtype copy of the updated parameters that the forward reads (round to
// nearest even), in the same pass.
#include "common.cuh"

template <typename T, bool COPY>
__device__ __forceinline__ void adamw_kernel(float* params, T* params_x, const float* grads, float* m, float* v,
                                             const u32* decay_bits, const u32* skip, float beta1, float beta2,
                                             float eps, float step_size, float bc2_sqrt, float decay, int n) {
    if (skip != nullptr && *skip != 0u) return;
    const float one_minus_b1 = __fsub_rn(1.0f, beta1);
    const float one_minus_b2 = __fsub_rn(1.0f, beta2);
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float g = grads[i];
        const bool decays = decay_bits == nullptr || ((decay_bits[i >> 5] >> (i & 31)) & 1u);
        float p = decays ? __fmul_rn(params[i], decay) : params[i];
        const float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_minus_b1, g));
        const float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        p = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), denom));
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
        if (COPY) params_x[i] = from_f<T>(p);
    }
}

// params, m, v (N) f32 updated in place from grads (N) f32; decay_bits (⌈N/32⌉) u32 or null;
// skip (1) u32 or null.
extern "C" __global__ void adamw_update_f32(float* params, const float* grads, float* m, float* v,
                                            const u32* decay_bits, const u32* skip, float beta1, float beta2,
                                            float eps, float step_size, float bc2_sqrt, float decay, int n) {
    adamw_kernel<float, false>(params, nullptr, grads, m, v, decay_bits, skip, beta1, beta2, eps, step_size,
                               bc2_sqrt, decay, n);
}

// As adamw_update_f32, and params_x (N) = the updated params in the activation dtype.
#define X(sfx, T)                                                                                          \
    extern "C" __global__ void adamw_update_copy_##sfx(                                                        \
        float* params, T* params_x, const float* grads, float* m, float* v, const u32* decay_bits,             \
        const u32* skip, float beta1, float beta2, float eps, float step_size, float bc2_sqrt, float decay,    \
        int n) {                                                                                               \
        adamw_kernel<T, true>(params, params_x, grads, m, v, decay_bits, skip, beta1, beta2, eps, step_size,   \
                              bc2_sqrt, decay, n);                                                             \
    }
XLT_FOR_EACH_FLOAT(X)
#undef X
