// Row normalisation (layer norm; RMS norm without centring) with an optional per-column affine,
// and its gradients; as `device/cpu/norm.rs`. One block per row for the statistics and the
// input gradient; one thread per column for the parameter gradients.
#include "common.cuh"
#include "block.cuh"

#define NORM_KERNELS(T, N)                                                                               \
    /* y = (x - mean) * rstd * w + b; stats[r] = mean, stats[rows + r] = rstd. w, b may be null. */      \
    extern "C" __global__ void norm_rows_##N(const T* x, i64 row, i64 rows, double eps, int center,      \
                                             const T* w, const T* b, T* y, double* stats) {              \
        typedef typename Acc<T>::t A;                                                                    \
        i64 base = (i64)blockIdx.x * row;                                                                \
        A n = (A)row;                                                                                    \
        A s = (A)0;                                                                                      \
        if (center) {                                                                                    \
            for (i64 j = threadIdx.x; j < row; j += BLOCK) s += Acc<T>::load(x[base + j]);               \
        }                                                                                                \
        A mean = center ? block_sum(s) / n : (A)0;                                                       \
        A q = (A)0;                                                                                      \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A d = Acc<T>::load(x[base + j]) - mean;                                                      \
            q += d * d;                                                                                  \
        }                                                                                                \
        A rstd = (A)1 / sqrt(block_sum(q) / n + (A)eps);                                                 \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A v = (Acc<T>::load(x[base + j]) - mean) * rstd;                                             \
            if (w) v *= Acc<T>::load(w[j]);                                                              \
            if (b) v += Acc<T>::load(b[j]);                                                              \
            y[base + j] = Acc<T>::store(v);                                                              \
        }                                                                                                \
        if (threadIdx.x == 0) {                                                                          \
            stats[blockIdx.x] = (double)mean;                                                            \
            stats[rows + blockIdx.x] = (double)rstd;                                                     \
        }                                                                                                \
    }                                                                                                    \
    /* gx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * w (no mean(g) term without        */ \
    /* centring); `=` instead of `+=` when `!acc`.                                                    */ \
    extern "C" __global__ void norm_rows_bwd_##N(const T* x, i64 row, i64 rows, int center,              \
                                                 const double* stats, const T* w, const T* gy, T* gx,    \
                                                 int acc) {                                              \
        typedef typename Acc<T>::t A;                                                                    \
        i64 base = (i64)blockIdx.x * row;                                                                \
        A mean = (A)stats[blockIdx.x], rstd = (A)stats[rows + blockIdx.x], n = (A)row;                   \
        A sg = (A)0, sgx = (A)0;                                                                         \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A g = Acc<T>::load(gy[base + j]);                                                            \
            if (w) g *= Acc<T>::load(w[j]);                                                              \
            sg += g;                                                                                     \
            sgx += g * (Acc<T>::load(x[base + j]) - mean);                                               \
        }                                                                                                \
        A mean_g = center ? block_sum(sg) / n : (A)0;                                                    \
        A mean_gx = block_sum(sgx) * rstd / n;                                                           \
        for (i64 j = threadIdx.x; j < row; j += BLOCK) {                                                 \
            A g = Acc<T>::load(gy[base + j]);                                                            \
            if (w) g *= Acc<T>::load(w[j]);                                                              \
            A xhat = (Acc<T>::load(x[base + j]) - mean) * rstd;                                          \
            store_grad(&gx[base + j], rstd * (g - mean_g - xhat * mean_gx), acc);                        \
        }                                                                                                \
    }                                                                                                    \
    /* gw[c] += Σ_r gy[r, c] * xhat[r, c], gb[c] += Σ_r gy[r, c]; one thread per column (adjacent     */ \
    /* threads read adjacent columns). gw, gb may be null; `acc_w`, `acc_b`: add, else write.         */ \
    extern "C" __global__ void norm_params_bwd_##N(const T* x, i64 row, i64 rows, const double* stats,   \
                                                   const T* gy, T* gw, T* gb, int acc_w, int acc_b) {    \
        typedef typename Acc<T>::t A;                                                                    \
        FOR_EACH(c, row) {                                                                               \
            A aw = (A)0, ab = (A)0;                                                                      \
            for (i64 r = 0; r < rows; ++r) {                                                             \
                A g = Acc<T>::load(gy[r * row + c]);                                                     \
                aw += g * (Acc<T>::load(x[r * row + c]) - (A)stats[r]) * (A)stats[rows + r];             \
                ab += g;                                                                                 \
            }                                                                                            \
            if (gw) store_grad(&gw[c], aw, acc_w);                                                       \
            if (gb) store_grad(&gb[c], ab, acc_b);                                                       \
        }                                                                                                \
    }
FOR_EACH_FLOAT(NORM_KERNELS)
