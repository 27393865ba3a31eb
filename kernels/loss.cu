// Cross-entropy of logit rows against class indices, and its gradient; as
// `device/cpu/cross_entropy.rs`. One block per row. The targets were checked on the host
// (`0 <= t < row`) before these run.
#include "common.cuh"
#include "block.cuh"

// Index dtypes as i64.
__device__ __forceinline__ i64 index_of(i64 v) { return v; }
__device__ __forceinline__ i64 index_of(int v) { return v; }
__device__ __forceinline__ i64 index_of(u8 v) { return v; }

#define CE_KERNELS(T, N, I, NI)                                                                          \
    /* loss[r] = lse(x_r) - x_r[t_r]; lse[r] = the row's log-sum-exp. */                                 \
    extern "C" __global__ void cross_entropy_##N##_##NI(const T* x, i64 row, const I* target, T* loss,   \
                                                        double* lse) {                                   \
        typedef typename Acc<T>::t A;                                                                    \
        const T* xr = x + (i64)blockIdx.x * row;                                                         \
        A m, s;                                                                                          \
        row_shift_and_sum(xr, row, m, s);                                                                \
        A l = m + log(s);                                                                                \
        if (threadIdx.x == 0) {                                                                          \
            loss[blockIdx.x] = Acc<T>::store(l - Acc<T>::load(xr[index_of(target[blockIdx.x])]));        \
            lse[blockIdx.x] = (double)l;                                                                 \
        }                                                                                                \
    }                                                                                                    \
    /* gx_r += gy[r] * (softmax(x_r) - onehot(t_r)) (`=` when `!acc`) */                                 \
    extern "C" __global__ void cross_entropy_bwd_##N##_##NI(const T* x, i64 row, const I* target,        \
                                                            const double* lse, const T* gy, T* gx,       \
                                                            int acc) {                                   \
        typedef typename Acc<T>::t A;                                                                    \
        i64 base = (i64)blockIdx.x * row;                                                                \
        A l = (A)lse[blockIdx.x], g = Acc<T>::load(gy[blockIdx.x]);                                      \
        i64 t = index_of(target[blockIdx.x]);                                                            \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A p = exp(Acc<T>::load(x[base + j]) - l) - (j == t ? (A)1 : (A)0);                           \
            store_grad(&gx[base + j], g * p, acc);                                                       \
        }                                                                                                \
    }
#define CE_FOR_INDEX(T, N) CE_KERNELS(T, N, i64, i64) CE_KERNELS(T, N, int, i32) CE_KERNELS(T, N, u8, u8)
FOR_EACH_FLOAT(CE_FOR_INDEX)
