// Element-wise kernels: unary and binary ops with their gradients, comparisons, `where`, and
// strided copies and casts. Inputs are strided views (`Strided`); outputs are contiguous.
#include "common.cuh"
#include "unary.cuh"
#include "binary.cuh"

// Comparisons and `where` on every dtype: f16/bf16 compare through f32.
template <typename T> struct Plain {
    typedef T t;
    static __device__ __forceinline__ T load(T v) { return v; }
};
template <> struct Plain<f16> {
    typedef float t;
    static __device__ __forceinline__ float load(f16 v) { return f16_to_f32(v); }
};
template <> struct Plain<bf16> {
    typedef float t;
    static __device__ __forceinline__ float load(bf16 v) { return bf16_to_f32(v); }
};

#define FLOAT_KERNELS(T, N)                                                                              \
    extern "C" __global__ void unary_fwd_##N(int op, double p0, double p1, const T* x, Strided xl, T* y, \
                                             i64 n) {                                                    \
        FOR_EACH(i, n) {                                                                                 \
            y[i] = Acc<T>::store(unary_f(op, p0, p1, Acc<T>::load(x[offset_of(xl, i)])));                \
        }                                                                                                \
    }                                                                                                    \
    extern "C" __global__ void unary_bwd_##N(int op, double p0, double p1, const T* x, Strided xl,       \
                                             const T* y, const T* gy, T* gx, int acc, i64 n) {           \
        FOR_EACH(i, n) {                                                                                 \
            typename Acc<T>::t xv = Acc<T>::load(x[offset_of(xl, i)]);                                   \
            typename Acc<T>::t d = unary_df(op, p0, p1, xv, Acc<T>::load(y[i]));                         \
            store_grad(&gx[i], Acc<T>::load(gy[i]) * d, acc);                                            \
        }                                                                                                \
    }                                                                                                    \
    extern "C" __global__ void binary_fwd_##N(int op, const T* a, Strided al, const T* b, Strided bl,    \
                                              T* y, i64 n) {                                             \
        FOR_EACH(i, n) {                                                                                 \
            y[i] = Acc<T>::store(                                                                        \
                binary_f(op, Acc<T>::load(a[offset_of(al, i)]), Acc<T>::load(b[offset_of(bl, i)])));     \
        }                                                                                                \
    }                                                                                                    \
    /* `ga`, `gb` may be null (that gradient is not wanted); `acc_a`, `acc_b`: add, else write. */       \
    extern "C" __global__ void binary_bwd_##N(int op, const T* a, Strided al, const T* b, Strided bl,    \
                                              const T* gy, T* ga, T* gb, int acc_a, int acc_b, i64 n) {  \
        FOR_EACH(i, n) {                                                                                 \
            typename Acc<T>::t av = Acc<T>::load(a[offset_of(al, i)]);                                   \
            typename Acc<T>::t bv = Acc<T>::load(b[offset_of(bl, i)]);                                   \
            typename Acc<T>::t yv = binary_f(op, av, bv);                                                \
            typename Acc<T>::t g = Acc<T>::load(gy[i]);                                                  \
            if (ga) store_grad(&ga[i], g * binary_dfa(op, av, bv, yv), acc_a);                           \
            if (gb) store_grad(&gb[i], g * binary_dfb(op, av, bv, yv), acc_b);                           \
        }                                                                                                \
    }                                                                                                    \
    /* dst[view] += src[view] */                                                                         \
    extern "C" __global__ void strided_add_##N(const T* src, Strided sl, T* dst, Strided dl, i64 n) {    \
        FOR_EACH(i, n) {                                                                                 \
            i64 o = offset_of(dl, i);                                                                    \
            dst[o] = Acc<T>::store(Acc<T>::load(dst[o]) + Acc<T>::load(src[offset_of(sl, i)]));          \
        }                                                                                                \
    }
FOR_EACH_FLOAT(FLOAT_KERNELS)

#define ANY_KERNELS(T, N)                                                                                \
    extern "C" __global__ void compare_##N(int op, const T* a, Strided al, const T* b, Strided bl,       \
                                           bool* y, i64 n) {                                             \
        FOR_EACH(i, n) {                                                                                 \
            y[i] = compare_f(op, Plain<T>::load(a[offset_of(al, i)]), Plain<T>::load(b[offset_of(bl, i)])); \
        }                                                                                                \
    }                                                                                                    \
    extern "C" __global__ void where_##N(const bool* c, Strided cl, const T* a, Strided al, const T* b,  \
                                         Strided bl, T* y, i64 n) {                                      \
        FOR_EACH(i, n) { y[i] = c[offset_of(cl, i)] ? a[offset_of(al, i)] : b[offset_of(bl, i)]; }       \
    }                                                                                                    \
    /* dst[view] = src[view] */                                                                          \
    extern "C" __global__ void strided_copy_##N(const T* src, Strided sl, T* dst, Strided dl, i64 n) {   \
        FOR_EACH(i, n) { dst[offset_of(dl, i)] = src[offset_of(sl, i)]; }                                \
    }
FOR_EACH_DTYPE(ANY_KERNELS)

// Casts between every pair of dtypes, through f64 as the CPU's `to_dtype` (`cast_A_B`).
#define CAST_TO(A, NA, B, NB)                                                                            \
    extern "C" __global__ void cast_##NA##_##NB(const A* src, Strided sl, B* dst, i64 n) {               \
        FOR_EACH(i, n) { dst[i] = Cast<B>::from(Cast<A>::to(src[offset_of(sl, i)])); }                   \
    }
#define CAST_FROM(A, NA)                                                                                 \
    CAST_TO(A, NA, float, f32) CAST_TO(A, NA, double, f64) CAST_TO(A, NA, f16, f16)                      \
    CAST_TO(A, NA, bf16, bf16) CAST_TO(A, NA, i64, i64) CAST_TO(A, NA, int, i32) CAST_TO(A, NA, u8, u8)  \
    CAST_TO(A, NA, bool, bool)
FOR_EACH_DTYPE(CAST_FROM)
