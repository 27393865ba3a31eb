// The maths of every unary op, once for the CUDA kernels (the Rust side is `ops/unary/mod.rs`).
// `UNARY_<name>` codes are defined by the host from `UnaryFn::NAMES` before this file, so an op
// added in Rust without a case here fails the kernel-source test, not silently at run time.
// `p0`, `p1` are the op's fields in declaration order (`UnaryFn::params`).

template <typename A> __device__ __forceinline__ A sigmoid_(A x) {
    if (x >= (A)0) return (A)1 / ((A)1 + exp(-x));
    A e = exp(x);
    return e / ((A)1 + e);
}

template <typename A> __device__ __forceinline__ A unary_f(int op, double p0, double p1, A x) {
    const A half = (A)0.5;
    switch (op) {
    case UNARY_neg: return -x;
    case UNARY_abs: return fabs(x);
    case UNARY_exp: return exp(x);
    case UNARY_log: return log(x);
    case UNARY_sqrt: return sqrt(x);
    case UNARY_square: return x * x;
    case UNARY_pow_int: {
        // Repeated squaring, as Rust's `powi` (exact for small exponents).
        int n = (int)p0;
        unsigned m = n < 0 ? (unsigned)(-(long long)n) : (unsigned)n;
        A r = (A)1, b = x;
        while (m) { if (m & 1u) r *= b; b *= b; m >>= 1; }
        return n < 0 ? (A)1 / r : r;
    }
    case UNARY_pow_scalar: return pow(x, (A)p0);
    case UNARY_reciprocal: return (A)1 / x;
    case UNARY_sin: return sin(x);
    case UNARY_cos: return cos(x);
    case UNARY_tanh: return tanh(x);
    case UNARY_sigmoid: return sigmoid_(x);
    case UNARY_relu: return x > (A)0 ? x : (A)0;
    case UNARY_leaky_relu: return x > (A)0 ? x : (A)p0 * x;
    case UNARY_gelu: return half * x * ((A)1 + erf(x * (A)0.70710678118654752440));
    case UNARY_gelu_tanh: {
        A u = (A)0.7978845608028654 * (x + (A)0.044715 * x * x * x);
        return half * x * ((A)1 + tanh(u));
    }
    case UNARY_erf: return erf(x);
    case UNARY_silu: return x * sigmoid_(x);
    case UNARY_softplus: {
        A bx = x * (A)p0;
        return bx > (A)p1 ? x : log((A)1 + exp(bx)) / (A)p0;
    }
    case UNARY_clamp: return fmin(fmax(x, (A)p0), (A)p1);
    case UNARY_add_scalar: return x + (A)p0;
    case UNARY_mul_scalar: return x * (A)p0;
    case UNARY_div_scalar: return x / (A)p0;
    case UNARY_rsub_scalar: return (A)p0 - x;
    case UNARY_finite_or_zero: return isfinite(x) ? x : (A)0;
    default: return (A)NAN;
    }
}

// `dy/dx` given `x` and `y = f(x)`.
template <typename A> __device__ __forceinline__ A unary_df(int op, double p0, double p1, A x, A y) {
    const A half = (A)0.5;
    switch (op) {
    case UNARY_neg: return (A)-1;
    case UNARY_abs: return x > (A)0 ? (A)1 : (x < (A)0 ? (A)-1 : (A)0);
    case UNARY_exp: return y;
    case UNARY_log: return (A)1 / x;
    case UNARY_sqrt: return half / y;
    case UNARY_square: return (A)2 * x;
    case UNARY_pow_int: {
        int n = (int)p0;
        return n == 0 ? (A)0 : (A)n * unary_f(UNARY_pow_int, (double)(n - 1), 0.0, x);
    }
    case UNARY_pow_scalar: return p0 == 0.0 ? (A)0 : (A)p0 * pow(x, (A)(p0 - 1.0));
    case UNARY_reciprocal: return -(y * y);
    case UNARY_sin: return cos(x);
    case UNARY_cos: return -sin(x);
    case UNARY_tanh: return (A)1 - y * y;
    case UNARY_sigmoid: return y * ((A)1 - y);
    case UNARY_relu: return x > (A)0 ? (A)1 : (A)0;
    case UNARY_leaky_relu: return x > (A)0 ? (A)1 : (A)p0;
    case UNARY_gelu: {
        A cdf = half * ((A)1 + erf(x * (A)0.70710678118654752440));
        A pdf = exp(-(x * x) * half) * (A)0.3989422804014327;
        return cdf + x * pdf;
    }
    case UNARY_gelu_tanh: {
        A u = (A)0.7978845608028654 * (x + (A)0.044715 * x * x * x);
        A t = tanh(u);
        A du = (A)0.7978845608028654 * ((A)1 + (A)(3.0 * 0.044715) * x * x);
        return half * ((A)1 + t) + half * x * ((A)1 - t * t) * du;
    }
    case UNARY_erf: return exp(-(x * x)) * (A)1.12837916709551257390;
    case UNARY_silu: {
        A s = sigmoid_(x);
        return s + x * s * ((A)1 - s);
    }
    case UNARY_softplus: {
        A bx = x * (A)p0;
        return bx > (A)p1 ? (A)1 : sigmoid_(bx);
    }
    case UNARY_clamp: return (x >= (A)p0 && x <= (A)p1) ? (A)1 : (A)0;
    case UNARY_add_scalar: return (A)1;
    case UNARY_mul_scalar: return (A)p0;
    case UNARY_div_scalar: return (A)1 / (A)p0;
    case UNARY_rsub_scalar: return (A)-1;
    case UNARY_finite_or_zero: return (A)0;
    default: return (A)NAN;
    }
}
