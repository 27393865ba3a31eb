// Reductions over axes, and their gradients. The host permutes the input view so that the kept
// axes come first and the reduced ones last: output `o` reduces logical elements
// `o * len .. (o + 1) * len` of that view. One block per output row.
#include "common.cuh"

#define REDUCE_SUM 0
#define REDUCE_MAX 1
#define REDUCE_MIN 2
#define BLOCK 256

template <typename A> __device__ __forceinline__ A reduce_identity(int kind) {
    return kind == REDUCE_SUM ? (A)0 : (kind == REDUCE_MAX ? (A)-INFINITY : (A)INFINITY);
}
// Max and min propagate NaN, as PyTorch's amax/amin.
template <typename A> __device__ __forceinline__ A reduce_combine(int kind, A acc, A v) {
    if (kind == REDUCE_SUM) return acc + v;
    if (acc != acc || v != v) return (A)NAN;
    return kind == REDUCE_MAX ? fmax(acc, v) : fmin(acc, v);
}

template <typename A> __device__ A block_reduce(int kind, A v) {
    __shared__ A partial[BLOCK / 32];
    for (int s = 16; s > 0; s >>= 1) v = reduce_combine(kind, v, __shfl_down_sync(0xffffffffu, v, s));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = threadIdx.x < BLOCK / 32 ? partial[threadIdx.x] : reduce_identity<A>(kind);
    if (warp == 0)
        for (int s = 16; s > 0; s >>= 1) v = reduce_combine(kind, v, __shfl_down_sync(0xffffffffu, v, s));
    return v;
}

#define REDUCE_KERNELS(T, N)                                                                             \
    /* Launched with BLOCK threads and one block per output. */                                          \
    extern "C" __global__ void reduce_##N(int kind, const T* x, Strided xl, i64 len, T* y) {             \
        typedef typename Acc<T>::t A;                                                                    \
        A acc = reduce_identity<A>(kind);                                                                \
        i64 base = (i64)blockIdx.x * len;                                                                \
        for (i64 r = threadIdx.x; r < len; r += BLOCK)                                                   \
            acc = reduce_combine(kind, acc, Acc<T>::load(x[offset_of(xl, base + r)]));                   \
        acc = block_reduce(kind, acc);                                                                   \
        if (threadIdx.x == 0) y[blockIdx.x] = Acc<T>::store(acc);                                        \
    }                                                                                                    \
    /* mask = (x == y) as 1 or 0, with y broadcast to x's dims (`yl`). */                                \
    extern "C" __global__ void extremum_mask_##N(const T* x, Strided xl, const T* y, Strided yl, T* mask, \
                                                  i64 n) {                                               \
        FOR_EACH(i, n) {                                                                                 \
            bool hit = Acc<T>::load(x[offset_of(xl, i)]) == Acc<T>::load(y[offset_of(yl, i)]);           \
            mask[i] = Acc<T>::store(hit ? 1 : 0);                                                        \
        }                                                                                                \
    }                                                                                                    \
    /* gx += mask * gy / count (`=` when `!acc`), the amax/amin gradient shared evenly between ties;  */ \
    /* `gy` and `count` are broadcast to x's dims through `yl`.                                       */ \
    extern "C" __global__ void extremum_grad_##N(const T* mask, const T* gy, const T* count, Strided yl, \
                                                  T* gx, int acc, i64 n) {                               \
        FOR_EACH(i, n) {                                                                                 \
            i64 o = offset_of(yl, i);                                                                    \
            store_grad(&gx[i], Acc<T>::load(mask[i]) * Acc<T>::load(gy[o]) / Acc<T>::load(count[o]), acc); \
        }                                                                                                \
    }
FOR_EACH_FLOAT(REDUCE_KERNELS)
