// mma.cuh: tensor-core fragments for kernels that multiply tiles in registers (flash attention).
//
// One warp computes D (16×8, f32) += A (16×16) · B (16×8) with `mma.sync.m16n8k16.row.col` on
// bf16 or f16 inputs. The fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//
//   A: four .b32 registers of two elements each (the lower-indexed column in the low half):
//      a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, +9]   a[3] = A[g+8][2t+8, +9]
//   B: two registers:  b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C/D: four floats:  d[0], d[1] = D[g][2t, 2t+1]   d[2], d[3] = D[g+8][2t, 2t+1]
//
// So the accumulators of two adjacent 16×8 tiles are, packed to the narrow type, exactly the A
// fragment of their 16×16 product with the next matrix (flash attention's P·V).
#pragma once

#include "common.cuh"

// A 16-byte chunk, for 128-bit loads and stores.
struct alignas(16) Pack128 {
    u32 w[4];
};

// The 16 bits of a bf16 / f16 value, and back to float.
__device__ __forceinline__ unsigned short bits_of(__nv_bfloat16 x) { return *reinterpret_cast<unsigned short*>(&x); }
__device__ __forceinline__ unsigned short bits_of(__half x) { return *reinterpret_cast<unsigned short*>(&x); }

template <typename T> __device__ __forceinline__ float float_of_bits(unsigned short b);
template <> __device__ __forceinline__ float float_of_bits<__nv_bfloat16>(unsigned short b) {
    return __uint_as_float((u32)b << 16);
}
template <> __device__ __forceinline__ float float_of_bits<__half>(unsigned short b) {
    __half h;
    *reinterpret_cast<unsigned short*>(&h) = b;
    return __half2float(h);
}

// Two floats rounded to T and packed into one register (lo in the low half).
template <typename T> __device__ __forceinline__ u32 pack2(float lo, float hi) {
    return (u32)bits_of(from_f<T>(lo)) | ((u32)bits_of(from_f<T>(hi)) << 16);
}

// Two adjacent elements p[0], p[1] as one register (p 4-byte aligned).
template <typename T> __device__ __forceinline__ u32 ld_pair(const T* p) { return *reinterpret_cast<const u32*>(p); }

// Two elements of different rows, *p0 (low half) and *p1, as one register.
template <typename T> __device__ __forceinline__ u32 ld_pair_rows(const T* p0, const T* p1) {
    return (u32)bits_of(*p0) | ((u32)bits_of(*p1) << 16);
}

#ifndef XLT_EMU
__device__ __forceinline__ void mma_16816_asm(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2], __nv_bfloat16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16816_asm(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2], __half) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// d += a · b for one warp (see the layouts above).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
#ifdef XLT_EMU
    struct Frag {
        u32 a[4], b[2];
    } mine = {{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
    const unsigned char* all = xlt_emu::warp_exchange(&mine, sizeof mine);
    auto frag = [&](int lane) { return reinterpret_cast<const Frag*>(all + (size_t)lane * xlt_emu::SLOT); };
    auto part = [](u32 r, int hi) { return (unsigned short)(hi ? r >> 16 : r & 0xffffu); };
    // A[r][k] lives in lane (r % 8) * 4 + (k % 8) / 2, register (r >= 8) + 2 (k >= 8), half k % 2;
    // B[k][n] in lane n * 4 + (k % 8) / 2, register (k >= 8), half k % 2.
    auto a_at = [&](int r, int k) {
        return float_of_bits<T>(part(frag((r % 8) * 4 + (k % 8) / 2)->a[(r >= 8) + 2 * (k >= 8)], k % 2));
    };
    auto b_at = [&](int k, int n) { return float_of_bits<T>(part(frag(n * 4 + (k % 8) / 2)->b[k >= 8], k % 2)); };
    const int lane = xlt_emu::current->lane, g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
        const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
        float s = 0.0f;
        for (int k = 0; k < 16; ++k) s += a_at(r, k) * b_at(k, n);
        d[i] += s;
    }
#else
    mma_16816_asm(d, a, b, T());
#endif
}
