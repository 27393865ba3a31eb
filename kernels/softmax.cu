// Softmax and log-softmax along contiguous rows, and their gradients. One block per row; the
// row's maximum and sum are block reductions, so a row of any length takes three passes.
#include "common.cuh"
#include "block.cuh"

#define SOFTMAX_KERNELS(T, N)                                                                            \
    /* Launched with BLOCK threads and one block per row. */                                             \
    extern "C" __global__ void softmax_rows_##N(const T* x, T* y, i64 row, int log_) {                   \
        typedef typename Acc<T>::t A;                                                                    \
        const T* xr = x + (i64)blockIdx.x * row;                                                         \
        T* yr = y + (i64)blockIdx.x * row;                                                               \
        A m, s;                                                                                          \
        row_shift_and_sum(xr, row, m, s);                                                                \
        A ls = log(s);                                                                                   \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A v = Acc<T>::load(xr[j]) - m;                                                               \
            yr[j] = Acc<T>::store(log_ ? v - ls : exp(v) / s);                                           \
        }                                                                                                \
    }                                                                                                    \
    /* softmax: gx += y (gy - Σ gy y); log-softmax: gx += gy - e^y Σ gy (`=` when `!acc`). */            \
    extern "C" __global__ void softmax_rows_bwd_##N(const T* y, const T* gy, T* gx, i64 row, int log_,   \
                                                    int acc) {                                           \
        typedef typename Acc<T>::t A;                                                                    \
        i64 base = (i64)blockIdx.x * row;                                                                \
        A s = (A)0;                                                                                      \
        for (i64 j = threadIdx.x; j < row; j += BLOCK)                                                   \
            s += log_ ? Acc<T>::load(gy[base + j]) : Acc<T>::load(gy[base + j]) * Acc<T>::load(y[base + j]); \
        s = block_sum(s);                                                                                \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A yv = Acc<T>::load(y[base + j]), g = Acc<T>::load(gy[base + j]);                            \
            A d = log_ ? g - exp(yv) * s : yv * (g - s);                                                 \
            store_grad(&gx[base + j], d, acc);                                                           \
        }                                                                                                \
    }
FOR_EACH_FLOAT(SOFTMAX_KERNELS)
