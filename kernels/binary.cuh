// The maths of every binary and comparison op, once for the CUDA kernels (the Rust side is
// `ops/binary/mod.rs` and `ops/compare.rs`). `BINARY_<name>` and `CMP_<name>` codes come from
// the host (`BinaryFn::ALL`, `CmpFn::ALL`).

template <typename A> __device__ __forceinline__ A binary_f(int op, A a, A b) {
    switch (op) {
    case BINARY_add: return a + b;
    case BINARY_sub: return a - b;
    case BINARY_mul: return a * b;
    case BINARY_div: return a / b;
    case BINARY_maximum: return (a != a || b != b) ? (A)NAN : fmax(a, b);
    case BINARY_minimum: return (a != a || b != b) ? (A)NAN : fmin(a, b);
    case BINARY_pow: return pow(a, b);
    default: return (A)NAN;
    }
}

// `∂y/∂a` given `y = f(a, b)`.
template <typename A> __device__ __forceinline__ A binary_dfa(int op, A a, A b, A y) {
    switch (op) {
    case BINARY_add: return (A)1;
    case BINARY_sub: return (A)1;
    case BINARY_mul: return b;
    case BINARY_div: return (A)1 / b;
    case BINARY_maximum: return a > b ? (A)1 : (a == b ? (A)0.5 : (A)0);
    case BINARY_minimum: return a < b ? (A)1 : (a == b ? (A)0.5 : (A)0);
    case BINARY_pow: return b == (A)0 ? (A)0 : b * pow(a, b - (A)1);
    default: return (A)NAN;
    }
}

// `∂y/∂b` given `y = f(a, b)`.
template <typename A> __device__ __forceinline__ A binary_dfb(int op, A a, A b, A y) {
    switch (op) {
    case BINARY_add: return (A)1;
    case BINARY_sub: return (A)-1;
    case BINARY_mul: return a;
    case BINARY_div: return -a / (b * b);
    case BINARY_maximum: return b > a ? (A)1 : (a == b ? (A)0.5 : (A)0);
    case BINARY_minimum: return b < a ? (A)1 : (a == b ? (A)0.5 : (A)0);
    case BINARY_pow: return (a == (A)0 && b >= (A)0) ? (A)0 : y * log(a);
    default: return (A)NAN;
    }
}

template <typename T> __device__ __forceinline__ bool compare_f(int op, T a, T b) {
    switch (op) {
    case CMP_eq: return a == b;
    case CMP_ne: return a != b;
    case CMP_lt: return a < b;
    case CMP_le: return a <= b;
    case CMP_gt: return a > b;
    case CMP_ge: return a >= b;
    default: return false;
    }
}
