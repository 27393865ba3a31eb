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


// A row's shift and exp-sum, shared by softmax and cross-entropy: `m` is the row's maximum (0
// when that is not finite, so a row of -inf gives NaN as in PyTorch instead of inf - inf
// inside the exponentials) and `s = Σ exp(x - m)`; the log-sum-exp is `m + log(s)`.
template <typename T>
__device__ void row_shift_and_sum(const T* xr, i64 row, typename Acc<T>::t& m, typename Acc<T>::t& s) {
    typedef typename Acc<T>::t A;
    m = (A)-INFINITY;
    for (i64 j = threadIdx.x; j < row; j += BLOCK) m = fmax(m, Acc<T>::load(xr[j]));
    m = block_max(m);
    if (!isfinite(m)) m = (A)0;
    s = (A)0;
    for (i64 j = threadIdx.x; j < row; j += BLOCK) s += exp(Acc<T>::load(xr[j]) - m);
    s = block_sum(s);
}
