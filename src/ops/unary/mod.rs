//! Element-wise functions of one tensor. Each op's maths (value and derivative) is written once,
//! here, generic over the float type it computes in; the kernels only apply it.

use crate::autograd::Tape;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::Shape;
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// An element-wise function with its derivative.
///
/// Half-precision tensors compute in f32 (`Float::Acc`) and round once, as PyTorch does.
pub trait UnaryOp: Clone + Send + Sync + 'static {
    /// The op's name (error messages, tape records, export).
    const NAME: &'static str;
    /// `y = f(x)`.
    fn f<A: Float>(&self, x: A) -> A;
    /// `dy/dx`, given `x` and `y = f(x)`.
    fn df<A: Float>(&self, x: A, y: A) -> A;
    /// The op as a value (for graphs: [`UnaryFn::visit`] turns it back into this type).
    fn to_fn(&self) -> UnaryFn;
}

/// Code generic over the unary op a [`UnaryFn`] names (the export runtime's dispatch).
pub trait UnaryVisitor {
    /// What the visit gives.
    type Out;
    /// Called with the concrete op.
    fn visit<O: UnaryOp>(self, op: O) -> Self::Out;
}

/// A field type of a unary op, stored in files as an f64.
trait Param: Sized {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Option<Self>;
}
impl Param for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
}
impl Param for i32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Option<Self> {
        (math::fract(v) == 0.0 && v >= i32::MIN as f64 && v <= i32::MAX as f64).then_some(v as i32)
    }
}

#[inline(always)]
fn c<A: Float>(v: f64) -> A {
    A::cast_f64(v)
}

macro_rules! op_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name;
    };
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $(#[allow(missing_docs)] pub $field: $ty),*
        }
    };
}

macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident $({ $($field:ident: $ty:ty),* })? => $label:literal, |$s:ident, $x:ident| $f:expr, |$s2:ident, $x2:ident, $y:ident| $df:expr;)*) => {
        /// Every unary op as a value: one variant per op type, with the same fields.
        ///
        /// ```
        /// use tensile::ops::UnaryFn;
        /// assert_eq!(UnaryFn::Exp.name(), "exp");
        /// assert_eq!(UnaryFn::LeakyRelu { slope: 0.1 }.name(), "leaky_relu");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum UnaryFn {$(
            $(#[$doc])*
            $name $({ $(#[allow(missing_docs)] $field: $ty),* })?,
        )*}

        impl UnaryFn {
            /// Every op's name, in declaration order (the codes device kernels use).
            ///
            /// ```
            /// use tensile::ops::UnaryFn;
            /// assert_eq!(UnaryFn::NAMES[0], "neg");
            /// ```
            pub const NAMES: &'static [&'static str] = &[$($label),*];
            /// The op's name ([`UnaryOp::NAME`]).
            pub fn name(&self) -> &'static str {
                match self {$(UnaryFn::$name { .. } => $label,)*}
            }
            /// Runs `v` with the op this value names.
            pub fn visit<V: UnaryVisitor>(self, v: V) -> V::Out {
                match self {$(
                    UnaryFn::$name $({ $($field),* })? => v.visit($name $({ $($field),* })?),
                )*}
            }
            /// The op's fields as numbers, in declaration order (for files).
            pub fn params(&self) -> Vec<f64> {
                match self {$(
                    #[allow(unused_variables)]
                    UnaryFn::$name $({ $($field),* })? => vec![$($(Param::to_f64(*$field)),*)?],
                )*}
            }
            /// The op named `name` with fields `params` ([`UnaryFn::params`]); `None` when the
            /// name is unknown or the fields do not fit.
            pub fn from_parts(name: &str, params: &[f64]) -> Option<Self> {
                $(
                    if name == $label {
                        #[allow(unused_mut, unused_variables)]
                        let mut it = params.iter().copied();
                        let op = UnaryFn::$name $({ $($field: Param::from_f64(it.next()?)?),* })?;
                        return if it.next().is_none() { Some(op) } else { None };
                    }
                )*
                None
            }
        }
        $(unary_op_impl!($(#[$doc])* $name $({ $($field: $ty),* })? => $label, |$s, $x| $f, |$s2, $x2, $y| $df);)*
    };
}

macro_rules! unary_op_impl {
    ($(#[$doc:meta])* $name:ident $({ $($field:ident: $ty:ty),* })? => $label:literal, |$s:ident, $x:ident| $f:expr, |$s2:ident, $x2:ident, $y:ident| $df:expr) => {
        op_struct!($(#[$doc])* $name $({ $($field: $ty),* })?);
        impl UnaryOp for $name {
            const NAME: &'static str = $label;
            fn to_fn(&self) -> UnaryFn {
                UnaryFn::$name $({ $($field: self.$field),* })?
            }
            #[inline(always)]
            #[allow(unused_variables)]
            fn f<A: Float>(&self, $x: A) -> A { let $s = self; $f }
            #[inline(always)]
            #[allow(unused_variables)]
            fn df<A: Float>(&self, $x2: A, $y: A) -> A { let $s2 = self; $df }
        }
    };
}

fn sigmoid<A: Float>(x: A) -> A {
    if x >= A::zero() {
        A::one() / (A::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (A::one() + e)
    }
}

fn erf<A: Float>(x: A) -> A {
    A::cast_f64(libm::erf(x.as_f64()))
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

unary_ops! {
    /// `-x`
    Neg => "neg", |s, x| -x, |s, x, y| -A::one();
    /// `|x|` (derivative `sign(x)`, 0 at 0)
    Abs => "abs", |s, x| x.abs(), |s, x, y| if x > A::zero() { A::one() } else if x < A::zero() { -A::one() } else { A::zero() };
    /// `e^x` (f32 through a vectorised polynomial of about 2 ulp, as PyTorch's own vectorised
    /// `exp`; below -87 it returns 0 rather than a denormal)
    Exp => "exp", |s, x| crate::device::cpu::fast_math::exp_acc(x), |s, x, y| y;
    /// natural logarithm
    Ln => "log", |s, x| x.ln(), |s, x, y| x.recip();
    /// square root
    Sqrt => "sqrt", |s, x| x.sqrt(), |s, x, y| c::<A>(0.5) / y;
    /// `x²`
    Square => "square", |s, x| x * x, |s, x, y| c::<A>(2.0) * x;
    /// `x^n` for an integer `n`
    Powi { n: i32 } => "pow_int", |s, x| x.powi(s.n), |s, x, y| if s.n == 0 { A::zero() } else { c::<A>(s.n as f64) * x.powi(s.n - 1) };
    /// `x^p` for a float `p`
    Powf { p: f64 } => "pow_scalar", |s, x| x.powf(c(s.p)), |s, x, y| if s.p == 0.0 { A::zero() } else { c::<A>(s.p) * x.powf(c(s.p - 1.0)) };
    /// `1/x`
    Recip => "reciprocal", |s, x| x.recip(), |s, x, y| -(y * y);
    /// sine
    Sin => "sin", |s, x| x.sin(), |s, x, y| x.cos();
    /// cosine
    Cos => "cos", |s, x| x.cos(), |s, x, y| -x.sin();
    /// hyperbolic tangent
    Tanh => "tanh", |s, x| x.tanh(), |s, x, y| A::one() - y * y;
    /// logistic sigmoid
    Sigmoid => "sigmoid", |s, x| sigmoid(x), |s, x, y| y * (A::one() - y);
    /// `max(x, 0)` (derivative 0 at 0, as PyTorch)
    Relu => "relu", |s, x| if x > A::zero() { x } else { A::zero() }, |s, x, y| if x > A::zero() { A::one() } else { A::zero() };
    /// `x` if `x > 0`, else `slope * x`
    LeakyRelu { slope: f64 } => "leaky_relu", |s, x| if x > A::zero() { x } else { c::<A>(s.slope) * x }, |s, x, y| if x > A::zero() { A::one() } else { c(s.slope) };
    /// GELU with the exact Gaussian CDF: `x Φ(x)`
    GeluExact => "gelu", |s, x| c::<A>(0.5) * x * (A::one() + erf(x * c(core::f64::consts::FRAC_1_SQRT_2))),
        |s, x, y| {
            let cdf = c::<A>(0.5) * (A::one() + erf(x * c(core::f64::consts::FRAC_1_SQRT_2)));
            let pdf = (-(x * x) * c(0.5)).exp() * c(0.398_942_280_401_432_7);
            cdf + x * pdf
        };
    /// GELU with PyTorch's `approximate="tanh"` formula
    GeluTanh => "gelu_tanh", |s, x| {
            let u = c::<A>(SQRT_2_OVER_PI) * (x + c::<A>(GELU_CUBIC) * x * x * x);
            c::<A>(0.5) * x * (A::one() + u.tanh())
        },
        |s, x, y| {
            let u = c::<A>(SQRT_2_OVER_PI) * (x + c::<A>(GELU_CUBIC) * x * x * x);
            let t = u.tanh();
            let du = c::<A>(SQRT_2_OVER_PI) * (A::one() + c::<A>(3.0 * GELU_CUBIC) * x * x);
            c::<A>(0.5) * (A::one() + t) + c::<A>(0.5) * x * (A::one() - t * t) * du
        };
    /// the error function
    Erf => "erf", |s, x| erf(x), |s, x, y| (-(x * x)).exp() * c(core::f64::consts::FRAC_2_SQRT_PI);
    /// `x σ(x)` (also called swish)
    Silu => "silu", |s, x| x * sigmoid(x), |s, x, y| { let sg = sigmoid(x); sg + x * sg * (A::one() - sg) };
    /// `ln(1 + e^(βx)) / β`, linear above `threshold` (PyTorch's defaults: β = 1, threshold = 20)
    Softplus { beta: f64, threshold: f64 } => "softplus",
        |s, x| { let bx = x * c(s.beta); if bx > c(s.threshold) { x } else { (A::one() + bx.exp()).ln() / c(s.beta) } },
        |s, x, y| { let bx = x * c(s.beta); if bx > c(s.threshold) { A::one() } else { sigmoid(bx) } };
    /// `min(max(x, lo), hi)` (gradient 1 inside `[lo, hi]`, as PyTorch)
    Clamp { lo: f64, hi: f64 } => "clamp", |s, x| x.max(c(s.lo)).min(c(s.hi)),
        |s, x, y| if x >= c(s.lo) && x <= c(s.hi) { A::one() } else { A::zero() };
    /// `x + c`
    AddScalar { c: f64 } => "add_scalar", |s, x| x + c(s.c), |s, x, y| A::one();
    /// `x * c`
    MulScalar { c: f64 } => "mul_scalar", |s, x| x * c(s.c), |s, x, y| c(s.c);
    /// `x / c`
    DivScalar { c: f64 } => "div_scalar", |s, x| x / c(s.c), |s, x, y| A::one() / c(s.c);
    /// `c - x`
    RsubScalar { c: f64 } => "rsub_scalar", |s, x| c::<A>(s.c) - x, |s, x, y| -A::one();
    /// `x` where finite, else 0 (the shift `logsumexp` uses when a row is all `-inf`; no gradient)
    FiniteOrZero => "finite_or_zero", |s, x| if x.is_finite() { x } else { A::zero() }, |s, x, y| A::zero();
}

/// Applies a unary op and records its backward.
pub(crate) fn unary<S: Shape, E: Float, D: Device, T: Tape<D>, O: UnaryOp>(
    x: Tensor<S, E, D, T>,
    op: O,
) -> Tensor<S, E, D, T> {
    let layout = x.layout();
    let (x, tape) = x.split_tape();
    if !T::TAPED {
        let out = x.device.unary(&op, x.data, &layout);
        return Tensor::from_storage(x.device, out, x.shape).put_tape(tape);
    }
    let y = Arc::new(x.device.unary(&op, x.data.clone(), &layout));
    let out = Tensor::from_arc(x.device.clone(), y.clone(), x.shape);
    crate::autograd::capture(&tape, &x);
    let record = crate::autograd::OpRecord::new(O::NAME, vec![x.id], out.id, layout.dims)
        .exports(crate::export::Op::Unary(op.to_fn()), E::DTYPE);
    let (dev, xd, xid, oid, n) = (x.device, x.data, x.id, out.id, layout.numel());
    tape.add_backward_op(record, move |g| {
        g.backward_step_write::<E, 1>(&dev, oid, [(xid, n)], |gy, [gx], [acc]| {
            dev.unary_backward(&op, &xd, &layout, &y, gy, gx, acc);
        });
        Ok(())
    });
    out.put_tape(tape)
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $method:ident($($arg:ident: $ty:ty),*) => $op:expr;)*) => {
        #[allow(clippy::should_implement_trait)]
        impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {$(
            $(#[$doc])*
            pub fn $method(self $(, $arg: $ty)*) -> Self {
                unary(self, $op)
            }
        )*}
    };
}

unary_methods! {
    /// Element-wise `-x`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1.0f32, -2.0]);
    /// assert_eq!(t.neg().to_vec(), vec![-1.0, 2.0]);
    /// ```
    neg() => Neg;
    /// Element-wise `|x|`.
    abs() => Abs;
    /// Element-wise `e^x`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([0.0f64, 1.0]);
    /// assert_eq!(t.exp().to_vec(), vec![1.0, core::f64::consts::E]);
    /// ```
    exp() => Exp;
    /// Element-wise natural logarithm.
    ln() => Ln;
    /// Element-wise square root.
    sqrt() => Sqrt;
    /// Element-wise `x²`.
    square() => Square;
    /// Element-wise `x^n`, integer `n`.
    powi(n: i32) => Powi { n };
    /// Element-wise `x^p`, float `p`.
    powf(p: f64) => Powf { p };
    /// Element-wise `1/x`.
    recip() => Recip;
    /// Element-wise sine.
    sin() => Sin;
    /// Element-wise cosine.
    cos() => Cos;
    /// Element-wise hyperbolic tangent.
    tanh() => Tanh;
    /// Element-wise logistic sigmoid.
    sigmoid() => Sigmoid;
    /// Element-wise `max(x, 0)`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([-1.0f32, 2.0]);
    /// assert_eq!(t.relu().to_vec(), vec![0.0, 2.0]);
    /// ```
    relu() => Relu;
    /// Element-wise leaky ReLU with negative slope `slope` (PyTorch's default is 0.01).
    leaky_relu(slope: f64) => LeakyRelu { slope };
    /// Element-wise GELU, exact form (PyTorch's `approximate="none"`).
    gelu() => GeluExact;
    /// Element-wise GELU, tanh approximation (PyTorch's `approximate="tanh"`).
    gelu_tanh() => GeluTanh;
    /// Element-wise error function `erf(x) = 2/√π ∫₀ˣ e^(-t²) dt`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([0.0f64, 1.0]);
    /// assert!((t.erf().to_vec()[1] - 0.842_700_792_949_715).abs() < 1e-12);
    /// ```
    erf() => Erf;
    /// Element-wise SiLU `x σ(x)`.
    silu() => Silu;
    /// Element-wise softplus with β = 1 and threshold 20, as PyTorch's defaults.
    softplus() => Softplus { beta: 1.0, threshold: 20.0 };
    /// Element-wise softplus with a given β and threshold.
    softplus_with(beta: f64, threshold: f64) => Softplus { beta, threshold };
    /// Element-wise clamp into `[lo, hi]`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([-2.0f32, 0.5, 3.0]);
    /// assert_eq!(t.clamp(-1.0, 1.0).to_vec(), vec![-1.0, 0.5, 1.0]);
    /// ```
    clamp(lo: f64, hi: f64) => Clamp { lo, hi };
    /// `x + c` for a scalar `c`.
    add_scalar(c: f64) => AddScalar { c };
    /// `x - c` for a scalar `c`.
    sub_scalar(c: f64) => AddScalar { c: -c };
    /// `x * c` for a scalar `c`.
    mul_scalar(c: f64) => MulScalar { c };
    /// `x / c` for a scalar `c`.
    div_scalar(c: f64) => DivScalar { c };
    /// `c - x` for a scalar `c`.
    rsub_scalar(c: f64) => RsubScalar { c };
}
