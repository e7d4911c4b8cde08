// selftest.cu: kernels that are wrong on purpose, and their correct twin, for the kernel
// emulator's own test (tests/cuda_emu.rs): a check the emulator claims (races, deadlocks,
// unwritten elements) must fail on them. Never built for a GPU.

// out (n,) = in reversed, through static shared memory; n = blockDim.x <= 256.
__global__ void selftest_reverse(float* out, const float* in, int n) {
    __shared__ float tile[256];
    const int i = threadIdx.x;
    tile[i] = in[i];
    __syncthreads();
    out[i] = tile[n - 1 - i];
}

// The same without the barrier: a thread may read its mirror's element before it is written.
__global__ void selftest_reverse_racy(float* out, const float* in, int n) {
    __shared__ float tile[256];
    const int i = threadIdx.x;
    tile[i] = in[i];
    out[i] = tile[n - 1 - i];
}

// Even lanes wait at the block barrier while odd lanes wait at a shuffle: neither can finish.
__global__ void selftest_deadlock(float* out) {
    const int i = threadIdx.x;
    if (i % 2 == 0) {
        __syncthreads();
        out[i] = 0.0f;
    } else {
        out[i] = __shfl_xor_sync(0xffffffffu, (float)i, 1);
    }
}

// Writes only the even elements of out (n,).
__global__ void selftest_half_written(float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && i % 2 == 0) out[i] = 1.0f;
}
