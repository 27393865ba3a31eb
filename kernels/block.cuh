// Block-wide reductions for kernels that give one block of BLOCK threads to a row. Every
// thread gets the result; each call synchronises the block twice, so calls can follow each
// other (each template instance has its own shared scratch).

#define BLOCK 256

template <typename A> __device__ A block_max(A v) {
    __shared__ A partial[BLOCK / 32];
    for (int s = 16; s > 0; s >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, s));
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = partial[0];
    for (int w = 1; w < BLOCK / 32; ++w) v = fmax(v, partial[w]);
    __syncthreads();
    return v;
}
template <typename A> __device__ A block_sum(A v) {
    __shared__ A partial[BLOCK / 32];
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = partial[0];
    for (int w = 1; w < BLOCK / 32; ++w) v += partial[w];
    __syncthreads();
    return v;
}

