// Shared by every tensile kernel: element types, strided views and launch helpers.
//
// No CUDA headers are included, so NVRTC needs no include path: f16 and bf16 are 16-bit
// structs converted with PTX `cvt` (sm_80 and newer), and the maths functions are NVRTC's
// built-ins. Every kernel computes in `acc_t<T>` (f32 for f32/f16/bf16, f64 for f64), as the
// CPU kernels do.

typedef long long i64;
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
typedef unsigned char u8;

struct __align__(2) f16 { unsigned short bits; };
struct __align__(2) bf16 { unsigned short bits; };

__device__ __forceinline__ float f16_to_f32(f16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
}
__device__ __forceinline__ f16 f32_to_f16(float f) {
    f16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf16_to_f32(bf16 b) { return __uint_as_float(((unsigned)b.bits) << 16); }
__device__ __forceinline__ bf16 f32_to_bf16(float f) {
    bf16 b;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b.bits) : "f"(f));
    return b;
}

// The compute type of a float element type, with loads and stores through it.
template <typename T> struct Acc;
template <> struct Acc<float> {
    typedef float t;
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float v) { return v; }
};
template <> struct Acc<double> {
    typedef double t;
    static __device__ __forceinline__ double load(double v) { return v; }
    static __device__ __forceinline__ double store(double v) { return v; }
};
template <> struct Acc<f16> {
    typedef float t;
    static __device__ __forceinline__ float load(f16 v) { return f16_to_f32(v); }
    static __device__ __forceinline__ f16 store(float v) { return f32_to_f16(v); }
};
template <> struct Acc<bf16> {
    typedef float t;
    static __device__ __forceinline__ float load(bf16 v) { return bf16_to_f32(v); }
    static __device__ __forceinline__ bf16 store(float v) { return f32_to_bf16(v); }
};

// A gradient kernel's store: `*g += v` when `accumulate`, else `*g = v` (the buffer is new and its
// old contents are never read).
template <typename T> __device__ __forceinline__ void store_grad(T* g, typename Acc<T>::t v, int accumulate) {
    *g = Acc<T>::store(accumulate ? Acc<T>::load(*g) + v : v);
}

// Any element type to and from f64, with the CPU's `Dtype::as_f64` / `Dtype::cast_f64` rules:
// integers truncate and saturate (NaN gives 0), bool is `v != 0`.
template <typename T> struct Cast;
template <> struct Cast<float> {
    static __device__ __forceinline__ double to(float v) { return v; }
    static __device__ __forceinline__ float from(double v) { return (float)v; }
};
template <> struct Cast<double> {
    static __device__ __forceinline__ double to(double v) { return v; }
    static __device__ __forceinline__ double from(double v) { return v; }
};
template <> struct Cast<f16> {
    static __device__ __forceinline__ double to(f16 v) { return f16_to_f32(v); }
    // Rounding through f32 first can round twice; the CPU's `half::f16::from_f64` rounds once.
    static __device__ __forceinline__ f16 from(double v) {
        f16 h;
        asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h.bits) : "d"(v));
        return h;
    }
};
template <> struct Cast<bf16> {
    static __device__ __forceinline__ double to(bf16 v) { return bf16_to_f32(v); }
    static __device__ __forceinline__ bf16 from(double v) { return f32_to_bf16((float)v); }
};
template <typename I> __device__ __forceinline__ I saturate(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (I)lo;
    if (v >= hi) return (I)hi;
    return (I)v;
}
template <> struct Cast<i64> {
    static __device__ __forceinline__ double to(i64 v) { return (double)v; }
    static __device__ __forceinline__ i64 from(double v) {
        if (v != v) return 0;
        if (v >= 9223372036854775807.0) return 9223372036854775807LL;
        if (v <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
        return (i64)v;
    }
};
template <> struct Cast<int> {
    static __device__ __forceinline__ double to(int v) { return (double)v; }
    static __device__ __forceinline__ int from(double v) { return saturate<int>(v, -2147483648.0, 2147483647.0); }
};
template <> struct Cast<u8> {
    static __device__ __forceinline__ double to(u8 v) { return (double)v; }
    static __device__ __forceinline__ u8 from(double v) { return saturate<u8>(v, 0.0, 255.0); }
};
template <> struct Cast<bool> {
    static __device__ __forceinline__ double to(bool v) { return v ? 1.0 : 0.0; }
    static __device__ __forceinline__ bool from(double v) { return v != 0.0; }
};

// A view: sizes, strides (in elements) and the offset of element zero, as tensile's `Layout`.
#define MAX_RANK 6
struct Strided {
    int rank;
    int pad;
    i64 offset;
    i64 dims[MAX_RANK];
    i64 strides[MAX_RANK];
};

// The storage offset of the `i`-th logical element (row-major order) of a view.
__device__ __forceinline__ i64 offset_of(const Strided& l, i64 i) {
    i64 off = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        i64 q = i / l.dims[d];
        off += (i - q * l.dims[d]) * l.strides[d];
        i = q;
    }
    return off;
}

// A grid-stride loop over `n` logical elements.
#define FOR_EACH(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// The float element types every float kernel is instantiated for, with their name suffixes.
#define FOR_EACH_FLOAT(M) M(float, f32) M(double, f64) M(f16, f16) M(bf16, bf16)
// Every element type.
#define FOR_EACH_DTYPE(M) FOR_EACH_FLOAT(M) M(i64, i64) M(int, i32) M(u8, u8) M(bool, bool)
