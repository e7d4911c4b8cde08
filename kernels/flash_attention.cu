// flash_attention.cu: fused multi-head self-attention with a key-padding mask and attention
// dropout, forward and backward, on tensor cores (bf16 / f16 inputs, f32 accumulation). The twin
// of cpu::ops::attention_forward / attention_backward, and of the unfused path in attention.cu:
// same masking, same dropout decisions (counter-based RNG at the flat index
// (bi·NH + h)·T·T + i·T + j of the (B, NH, T, T) probabilities), but no T×T matrix in memory.
//
// Layouts: qkv (B, T, 3C) with Q, K, V side by side and head h at columns h·HS; out, dout
// (B, T, C); mask (B, T) f32 (0 = padding key); lse, dsum (B, NH, T) f32.
//
//   flash_attention_forward_hs<HS>   out = dropout(softmax(Q K^T·scale, masked)) V per head, and
//                                    lse = the log-sum-exp of each row's scaled scores (+inf when
//                                    every key is masked: that row is all zeros, as on the CPU).
//                                    One block per 64 queries of one head; 4 warps of 16 queries;
//                                    online softmax over tiles of 64 keys.
//   flash_attention_backward_rowdot  dsum = Σ_d dout ⊙ out per (row, head) (FlashAttention-2's D).
//   flash_attention_backward_dkdv    dK, dV of 64 keys per block, looping over all queries.
//   flash_attention_backward_dq      dQ of 64 queries per block, looping over all keys.
//
// The backward recomputes P = exp(S·scale − lse) and splits dK/dV from dQ so every gradient is
// written by one block: no atomics, bit-identical reruns. dqkv is overwritten. Each HS (16, 32,
// 64, 128) is its own instantiation; HS must divide into 16-element steps and C into 8 (128-bit
// loads), which src/cuda/ops/flash.rs checks before choosing this path.
#include "mma.cuh"

#define FA_THREADS 128  // 4 warps
#define FA_ROWS 64      // queries per forward / dq block, keys per dkdv block: 16 per warp
#define FA_PAD 8        // row padding of shared tiles in elements: conflict-free fragment loads
#define XLT_POS_INF __int_as_float(0x7f800000)

// dst (ROWS, HS + FA_PAD) = rows [r0, r0 + ROWS) of one head's columns [off, off + HS) of src
// (B, T, width) for batch row bi, in 16-byte chunks; rows at or past T are zero.
template <typename T, int HS, int ROWS>
__device__ __forceinline__ void fa_load_rows(T (*dst)[HS + FA_PAD], const T* src, int bi, int r0, int t, int width,
                                             int off) {
    constexpr int CH = HS / 8;
    for (int idx = threadIdx.x; idx < ROWS * CH; idx += blockDim.x) {
        const int r = idx / CH, ch = idx - r * CH;
        Pack128 v = {{0u, 0u, 0u, 0u}};
        if (r0 + r < t) v = *reinterpret_cast<const Pack128*>(src + ((u64)bi * t + r0 + r) * width + off + ch * 8);
        *reinterpret_cast<Pack128*>(&dst[r][ch * 8]) = v;
    }
}

// As fa_load_rows, transposed: dst (HS, ROWS + FA_PAD) [d][r].
template <typename T, int HS, int ROWS>
__device__ __forceinline__ void fa_load_rows_t(T (*dst)[ROWS + FA_PAD], const T* src, int bi, int r0, int t, int width,
                                               int off) {
    constexpr int CH = HS / 8;
    for (int idx = threadIdx.x; idx < ROWS * CH; idx += blockDim.x) {
        const int r = idx % ROWS, ch = idx / ROWS;
        Pack128 v = {{0u, 0u, 0u, 0u}};
        if (r0 + r < t) v = *reinterpret_cast<const Pack128*>(src + ((u64)bi * t + r0 + r) * width + off + ch * 8);
        const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
        for (int k = 0; k < 8; ++k) dst[ch * 8 + k][r] = e[k];
    }
}

// The A fragment of rows [r, r + 16) and columns [k, k + 16) of a shared tile (see mma.cuh);
// `r` and `k` already include this lane's g and 2t.
template <typename T, int W>
__device__ __forceinline__ void fa_a_frag(u32 (&a)[4], const T (*s)[W], int r, int k) {
    a[0] = ld_pair(&s[r][k]);
    a[1] = ld_pair(&s[r + 8][k]);
    a[2] = ld_pair(&s[r][k + 8]);
    a[3] = ld_pair(&s[r + 8][k + 8]);
}

// The A fragment of a 16×16 block held as the accumulators of two 16×8 tiles (lo, hi).
template <typename T>
__device__ __forceinline__ void fa_a_from_acc(u32 (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
    a[0] = pack2<T>(lo[0], lo[1]);
    a[1] = pack2<T>(lo[2], lo[3]);
    a[2] = pack2<T>(hi[0], hi[1]);
    a[3] = pack2<T>(hi[2], hi[3]);
}

// The dropout factor of probability (row i, key j) of head bh, or 1 without dropout.
__device__ __forceinline__ float fa_keep(bool drop, u64 seed, float p, u64 bh, int t, int i, int j) {
    return drop && i < t && j < t ? xlt_dropout_scale(seed, (bh * t + i) * t + j, p) : 1.0f;
}

// ---------------------------------------------------------------------------------------------
// forward

template <typename T, int HS>
__device__ void flash_attention_forward(T* out, float* lse, const T* qkv, const float* mask, int b, int t, int c,
                                        int nh, float scale, float p_drop, u64 seed) {
    alignas(16) __shared__ T ks[FA_ROWS][HS + FA_PAD];  // (64, HS): this block's Q first, then each K tile
    alignas(16) __shared__ T vt[HS][FA_ROWS + FA_PAD];  // (HS, 64): the V tile, transposed
    __shared__ float kvalid[FA_ROWS];                   // (64,): 1 for a real key of the tile
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int q0 = blockIdx.x * FA_ROWS, h = blockIdx.y, bi = blockIdx.z, width = 3 * c, wr = warp * 16 + g;
    const u64 bh = (u64)bi * nh + h;
    const bool drop = p_drop > 0.0f;
    const int rows[2] = {q0 + wr, q0 + wr + 8};

    fa_load_rows<T, HS, FA_ROWS>(ks, qkv, bi, q0, t, width, h * HS);
    __syncthreads();
    u32 qf[HS / 16][4];  // this warp's 16 query rows as A fragments, for every key tile
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk) fa_a_frag<T, HS + FA_PAD>(qf[kk], ks, wr, kk * 16 + 2 * tq);

    float o[HS / 8][4];  // (16, HS) output accumulators, unnormalised
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    float m[2] = {XLT_NEG_INF, XLT_NEG_INF}, l[2] = {0.0f, 0.0f};  // running max and sum of rows g, g + 8

    for (int k0 = 0; k0 < t; k0 += FA_ROWS) {
        __syncthreads();  // every warp is done with the previous tile (and with Q in ks)
        fa_load_rows<T, HS, FA_ROWS>(ks, qkv, bi, k0, t, width, c + h * HS);
        fa_load_rows_t<T, HS, FA_ROWS>(vt, qkv, bi, k0, t, width, 2 * c + h * HS);
        for (int j = threadIdx.x; j < FA_ROWS; j += blockDim.x)
            kvalid[j] = k0 + j < t && mask[(u64)bi * t + k0 + j] != 0.0f ? 1.0f : 0.0f;
        __syncthreads();

        // s (16, 64) = Q K^T · scale; masked keys -inf
        float s[FA_ROWS / 8][4];
#pragma unroll
        for (int n = 0; n < FA_ROWS / 8; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < HS / 16; ++kk) {
                const u32 kb[2] = {ld_pair(&ks[n * 8 + g][kk * 16 + 2 * tq]), ld_pair(&ks[n * 8 + g][kk * 16 + 2 * tq + 8])};
                mma_16816<T>(s[n], qf[kk], kb);
            }
        }
        float mx[2] = {XLT_NEG_INF, XLT_NEG_INF};
#pragma unroll
        for (int n = 0; n < FA_ROWS / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                s[n][i] = kvalid[n * 8 + 2 * tq + (i & 1)] != 0.0f ? s[n][i] * scale : XLT_NEG_INF;
                mx[i / 2] = fmaxf(mx[i / 2], s[n][i]);
            }
        float base[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {  // the four lanes of a row hold its 64 scores between them
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            const float mn = fmaxf(m[r], mx[r]);
            const float corr = m[r] == XLT_NEG_INF ? 0.0f : expf(m[r] - mn);
            m[r] = mn;
            base[r] = mn == XLT_NEG_INF ? 0.0f : mn;  // no real key yet: every p is 0
            l[r] *= corr;
#pragma unroll
            for (int nd = 0; nd < HS / 8; ++nd) {
                o[nd][2 * r] *= corr;
                o[nd][2 * r + 1] *= corr;
            }
        }
        // p = exp(s − max); l sums p before dropout; s becomes p after dropout
#pragma unroll
        for (int n = 0; n < FA_ROWS / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const float p = expf(s[n][i] - base[i / 2]);
                l[i / 2] += p;
                s[n][i] = p * fa_keep(drop, seed, p_drop, bh, t, rows[i / 2], k0 + n * 8 + 2 * tq + (i & 1));
            }
        // o (16, HS) += p (16, 64) · V (64, HS)
#pragma unroll
        for (int kk = 0; kk < FA_ROWS / 16; ++kk) {
            u32 pa[4];
            fa_a_from_acc<T>(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int nd = 0; nd < HS / 8; ++nd) {
                const u32 vb[2] = {ld_pair(&vt[nd * 8 + g][kk * 16 + 2 * tq]), ld_pair(&vt[nd * 8 + g][kk * 16 + 2 * tq + 8])};
                mma_16816<T>(o[nd], pa, vb);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (rows[r] >= t) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        T* dst = out + ((u64)bi * t + rows[r]) * c + h * HS + 2 * tq;
#pragma unroll
        for (int nd = 0; nd < HS / 8; ++nd)
            *reinterpret_cast<u32*>(dst + nd * 8) = pack2<T>(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
        if (tq == 0) lse[bh * t + rows[r]] = l[r] > 0.0f ? m[r] + logf(l[r]) : XLT_POS_INF;
    }
}

// ---------------------------------------------------------------------------------------------
// backward

// dsum (B, NH, T) = Σ_d dout ⊙ out over each head's HS columns; one warp per (bi, h, i).
template <typename T>
__device__ void flash_attention_backward_rowdot(float* dsum, const T* dout, const T* out, int b, int t, int c, int nh) {
    const u64 w = (u64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (w >= (u64)b * nh * t) return;  // whole warp
    const int lane = threadIdx.x % 32, hs = c / nh, i = (int)(w % t);
    const u64 bh = w / t;
    const int h = (int)(bh % nh), bi = (int)(bh / nh);
    const u64 off = ((u64)bi * t + i) * c + (u64)h * hs;
    float s = 0.0f;
    for (int d = lane; d < hs; d += 32) s += to_f(dout[off + d]) * to_f(out[off + d]);
    s = warp_sum(s);
    if (lane == 0) dsum[w] = s;
}

// dK, dV (into dqkv's K and V columns) of the 64 keys of this block; queries in tiles of BQ.
// Per warp (16 keys): S^T = K Q^T, P^T = exp(S^T·scale − lse), dPd^T = V dO^T,
// dV += Pd^T dO, dS^T = P^T ⊙ (dPd^T ⊙ keep − dsum)·scale, dK += dS^T Q.
template <typename T, int HS, int BQ>
__device__ void flash_attention_backward_dkdv(T* dqkv, const T* dout, const T* qkv, const float* lse,
                                              const float* dsum, const float* mask, int b, int t, int c, int nh,
                                              float scale, float p_drop, u64 seed) {
    alignas(16) __shared__ T ks[FA_ROWS][HS + FA_PAD];  // (64, HS) this block's keys
    alignas(16) __shared__ T vs[FA_ROWS][HS + FA_PAD];  // (64, HS) their values
    alignas(16) __shared__ T qs[BQ][HS + FA_PAD];       // (BQ, HS) the query tile
    alignas(16) __shared__ T dos[BQ][HS + FA_PAD];      // (BQ, HS) its output gradient
    __shared__ float lse_s[BQ], dsum_s[BQ];             // (BQ,) its lse and dsum
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int k0 = blockIdx.x * FA_ROWS, h = blockIdx.y, bi = blockIdx.z, width = 3 * c, wr = warp * 16 + g;
    const u64 bh = (u64)bi * nh + h;
    const bool drop = p_drop > 0.0f;
    const int keys[2] = {k0 + wr, k0 + wr + 8};
    bool kval[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) kval[r] = keys[r] < t && mask[(u64)bi * t + keys[r]] != 0.0f;

    fa_load_rows<T, HS, FA_ROWS>(ks, qkv, bi, k0, t, width, c + h * HS);
    fa_load_rows<T, HS, FA_ROWS>(vs, qkv, bi, k0, t, width, 2 * c + h * HS);
    float dk[HS / 8][4], dv[HS / 8][4];  // (16, HS) each
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd)
#pragma unroll
        for (int i = 0; i < 4; ++i) dk[nd][i] = dv[nd][i] = 0.0f;

    for (int q0 = 0; q0 < t; q0 += BQ) {
        __syncthreads();  // K, V are in; every warp is done with the previous query tile
        fa_load_rows<T, HS, BQ>(qs, qkv, bi, q0, t, width, h * HS);
        fa_load_rows<T, HS, BQ>(dos, dout, bi, q0, t, c, h * HS);
        for (int j = threadIdx.x; j < BQ; j += blockDim.x) {
            lse_s[j] = q0 + j < t ? lse[bh * t + q0 + j] : XLT_POS_INF;
            dsum_s[j] = q0 + j < t ? dsum[bh * t + q0 + j] : 0.0f;
        }
        __syncthreads();

        float s[BQ / 8][4], dp[BQ / 8][4];  // (16 keys, BQ queries): S^T, then Pd^T; dPd^T, then dS^T
#pragma unroll
        for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) s[n][i] = dp[n][i] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HS / 16; ++kk) {
            const int k = kk * 16 + 2 * tq;
            u32 ka[4], va[4];
            fa_a_frag<T, HS + FA_PAD>(ka, ks, wr, k);
            fa_a_frag<T, HS + FA_PAD>(va, vs, wr, k);
#pragma unroll
            for (int n = 0; n < BQ / 8; ++n) {
                const u32 qb[2] = {ld_pair(&qs[n * 8 + g][k]), ld_pair(&qs[n * 8 + g][k + 8])};
                mma_16816<T>(s[n], ka, qb);
                const u32 ob[2] = {ld_pair(&dos[n * 8 + g][k]), ld_pair(&dos[n * 8 + g][k + 8])};
                mma_16816<T>(dp[n], va, ob);
            }
        }
#pragma unroll
        for (int n = 0; n < BQ / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int ql = n * 8 + 2 * tq + (i & 1), r = i / 2;
                const float p = kval[r] ? expf(s[n][i] * scale - lse_s[ql]) : 0.0f;
                const float keep = fa_keep(drop, seed, p_drop, bh, t, q0 + ql, keys[r]);
                s[n][i] = p * keep;
                dp[n][i] = p * (dp[n][i] * keep - dsum_s[ql]) * scale;
            }
#pragma unroll
        for (int kq = 0; kq < BQ / 16; ++kq) {
            u32 pa[4], sa[4];
            fa_a_from_acc<T>(pa, s[2 * kq], s[2 * kq + 1]);
            fa_a_from_acc<T>(sa, dp[2 * kq], dp[2 * kq + 1]);
            const int q = kq * 16 + 2 * tq;
#pragma unroll
            for (int nd = 0; nd < HS / 8; ++nd) {
                const int d = nd * 8 + g;
                const u32 ob[2] = {ld_pair_rows(&dos[q][d], &dos[q + 1][d]), ld_pair_rows(&dos[q + 8][d], &dos[q + 9][d])};
                mma_16816<T>(dv[nd], pa, ob);
                const u32 qb[2] = {ld_pair_rows(&qs[q][d], &qs[q + 1][d]), ld_pair_rows(&qs[q + 8][d], &qs[q + 9][d])};
                mma_16816<T>(dk[nd], sa, qb);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (keys[r] >= t) continue;
        T* base = dqkv + ((u64)bi * t + keys[r]) * width + h * HS + 2 * tq;
#pragma unroll
        for (int nd = 0; nd < HS / 8; ++nd) {
            *reinterpret_cast<u32*>(base + c + nd * 8) = pack2<T>(dk[nd][2 * r], dk[nd][2 * r + 1]);
            *reinterpret_cast<u32*>(base + 2 * c + nd * 8) = pack2<T>(dv[nd][2 * r], dv[nd][2 * r + 1]);
        }
    }
}

// dQ (into dqkv's Q columns) of the 64 queries of this block; keys in tiles of BK.
// Per warp (16 queries): S = Q K^T, P = exp(S·scale − lse), dPd = dO V^T,
// dS = P ⊙ (dPd ⊙ keep − dsum)·scale, dQ += dS K.
template <typename T, int HS, int BK>
__device__ void flash_attention_backward_dq(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dsum,
                                            const float* mask, int b, int t, int c, int nh, float scale, float p_drop,
                                            u64 seed) {
    alignas(16) __shared__ T qs[FA_ROWS][HS + FA_PAD];   // (64, HS) this block's queries
    alignas(16) __shared__ T dos[FA_ROWS][HS + FA_PAD];  // (64, HS) their output gradient
    alignas(16) __shared__ T ks[BK][HS + FA_PAD];        // (BK, HS) the key tile
    alignas(16) __shared__ T vs[BK][HS + FA_PAD];        // (BK, HS) its values
    __shared__ float kvalid[BK];                          // (BK,) 1 for a real key
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tq = lane % 4;
    const int q0 = blockIdx.x * FA_ROWS, h = blockIdx.y, bi = blockIdx.z, width = 3 * c, wr = warp * 16 + g;
    const u64 bh = (u64)bi * nh + h;
    const bool drop = p_drop > 0.0f;
    const int rows[2] = {q0 + wr, q0 + wr + 8};
    float lse_r[2], dsum_r[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        lse_r[r] = rows[r] < t ? lse[bh * t + rows[r]] : XLT_POS_INF;
        dsum_r[r] = rows[r] < t ? dsum[bh * t + rows[r]] : 0.0f;
    }

    fa_load_rows<T, HS, FA_ROWS>(qs, qkv, bi, q0, t, width, h * HS);
    fa_load_rows<T, HS, FA_ROWS>(dos, dout, bi, q0, t, c, h * HS);
    float dq[HS / 8][4];  // (16, HS)
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;

    for (int k0 = 0; k0 < t; k0 += BK) {
        __syncthreads();  // Q, dO are in; every warp is done with the previous key tile
        fa_load_rows<T, HS, BK>(ks, qkv, bi, k0, t, width, c + h * HS);
        fa_load_rows<T, HS, BK>(vs, qkv, bi, k0, t, width, 2 * c + h * HS);
        for (int j = threadIdx.x; j < BK; j += blockDim.x)
            kvalid[j] = k0 + j < t && mask[(u64)bi * t + k0 + j] != 0.0f ? 1.0f : 0.0f;
        __syncthreads();

        float s[BK / 8][4], dp[BK / 8][4];  // (16 queries, BK keys): S, then dS; dPd
#pragma unroll
        for (int n = 0; n < BK / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) s[n][i] = dp[n][i] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HS / 16; ++kk) {
            const int k = kk * 16 + 2 * tq;
            u32 qa[4], oa[4];
            fa_a_frag<T, HS + FA_PAD>(qa, qs, wr, k);
            fa_a_frag<T, HS + FA_PAD>(oa, dos, wr, k);
#pragma unroll
            for (int n = 0; n < BK / 8; ++n) {
                const u32 kb[2] = {ld_pair(&ks[n * 8 + g][k]), ld_pair(&ks[n * 8 + g][k + 8])};
                mma_16816<T>(s[n], qa, kb);
                const u32 vb[2] = {ld_pair(&vs[n * 8 + g][k]), ld_pair(&vs[n * 8 + g][k + 8])};
                mma_16816<T>(dp[n], oa, vb);
            }
        }
#pragma unroll
        for (int n = 0; n < BK / 8; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int jl = n * 8 + 2 * tq + (i & 1), r = i / 2;
                const float p = kvalid[jl] != 0.0f ? expf(s[n][i] * scale - lse_r[r]) : 0.0f;
                const float keep = fa_keep(drop, seed, p_drop, bh, t, rows[r], k0 + jl);
                s[n][i] = p * (dp[n][i] * keep - dsum_r[r]) * scale;
            }
#pragma unroll
        for (int kq = 0; kq < BK / 16; ++kq) {
            u32 sa[4];
            fa_a_from_acc<T>(sa, s[2 * kq], s[2 * kq + 1]);
            const int k = kq * 16 + 2 * tq;
#pragma unroll
            for (int nd = 0; nd < HS / 8; ++nd) {
                const int d = nd * 8 + g;
                const u32 kb[2] = {ld_pair_rows(&ks[k][d], &ks[k + 1][d]), ld_pair_rows(&ks[k + 8][d], &ks[k + 9][d])};
                mma_16816<T>(dq[nd], sa, kb);
            }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (rows[r] >= t) continue;
        T* base = dqkv + ((u64)bi * t + rows[r]) * width + h * HS + 2 * tq;
#pragma unroll
        for (int nd = 0; nd < HS / 8; ++nd)
            *reinterpret_cast<u32*>(base + nd * 8) = pack2<T>(dq[nd][2 * r], dq[nd][2 * r + 1]);
    }
}

// ---------------------------------------------------------------------------------------------
// instantiations: <op>_hs<HS>_<dtype>; BT is the query tile of dkdv and the key tile of dq (16
// at HS = 128 keeps the shared tiles within 48 KiB).

#define XLT_FLASH(suffix, T, HS, BT)                                                                                   \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_forward_hs##HS##_##suffix(               \
        T* out, float* lse, const T* qkv, const float* mask, int b, int t, int c, int nh, float scale, float p_drop,  \
        u64 seed) {                                                                                                    \
        flash_attention_forward<T, HS>(out, lse, qkv, mask, b, t, c, nh, scale, p_drop, seed);                        \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_backward_dkdv_hs##HS##_##suffix(         \
        T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dsum, const float* mask, int b, int t,   \
        int c, int nh, float scale, float p_drop, u64 seed) {                                                         \
        flash_attention_backward_dkdv<T, HS, BT>(dqkv, dout, qkv, lse, dsum, mask, b, t, c, nh, scale, p_drop, seed); \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_backward_dq_hs##HS##_##suffix(           \
        T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dsum, const float* mask, int b, int t,   \
        int c, int nh, float scale, float p_drop, u64 seed) {                                                         \
        flash_attention_backward_dq<T, HS, BT>(dqkv, dout, qkv, lse, dsum, mask, b, t, c, nh, scale, p_drop, seed);   \
    }

#define XLT_FLASH_NARROW(HS, BT) XLT_FLASH(bf16, __nv_bfloat16, HS, BT) XLT_FLASH(f16, __half, HS, BT)
XLT_FLASH_NARROW(16, 32)
XLT_FLASH_NARROW(32, 32)
XLT_FLASH_NARROW(64, 32)
XLT_FLASH_NARROW(128, 16)

#define XLT_FLASH_ROWDOT(suffix, T)                                                                                    \
    extern "C" __global__ void flash_attention_backward_rowdot_##suffix(float* dsum, const T* dout, const T* out,     \
                                                                        int b, int t, int c, int nh) {                \
        flash_attention_backward_rowdot<T>(dsum, dout, out, b, t, c, nh);                                             \
    }
XLT_FLASH_ROWDOT(bf16, __nv_bfloat16)
XLT_FLASH_ROWDOT(f16, __half)
