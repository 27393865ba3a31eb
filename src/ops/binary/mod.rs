//! Element-wise functions of two tensors of the same shape type (broadcast first with
//! `broadcast`/`broadcast_like`). The maths of each op is written once, here.

use crate::autograd::{Merge, Tape};
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// An element-wise function of two arguments with its partial derivatives.
pub trait BinaryOp: Clone + Send + Sync + 'static {
    /// The op's name.
    const NAME: &'static str;
    /// `y = f(a, b)`.
    fn f<A: Float>(&self, a: A, b: A) -> A;
    /// `∂y/∂a`, given `y`.
    fn dfa<A: Float>(&self, a: A, b: A, y: A) -> A;
    /// `∂y/∂b`, given `y`.
    fn dfb<A: Float>(&self, a: A, b: A, y: A) -> A;
    /// The op as a value (for graphs).
    const FN: BinaryFn;
}

/// Code generic over the binary op a [`BinaryFn`] names (the export runtime's dispatch).
pub trait BinaryVisitor {
    /// What the visit gives.
    type Out;
    /// Called with the concrete op.
    fn visit<O: BinaryOp>(self, op: O) -> Self::Out;
}

macro_rules! binary_ops {
    ($($(#[$doc:meta])* $name:ident => $label:literal, |$a:ident, $b:ident, $y:ident| $f:expr, $dfa:expr, $dfb:expr;)*) => {
        /// Every binary op as a value.
        ///
        /// ```
        /// use tensile::ops::{Add, BinaryFn, BinaryOp};
        /// assert_eq!(Add::FN, BinaryFn::Add);
        /// assert_eq!(BinaryFn::Mul.name(), "mul");
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BinaryFn {$(
            $(#[$doc])*
            $name,
        )*}
        impl BinaryFn {
            /// Every op, in the order of their codes.
            pub const ALL: &'static [BinaryFn] = &[$(BinaryFn::$name),*];
            /// The op's name.
            pub fn name(self) -> &'static str {
                match self {$(BinaryFn::$name => $label,)*}
            }
            /// Runs `v` with the op this value names.
            pub fn visit<V: BinaryVisitor>(self, v: V) -> V::Out {
                match self {$(BinaryFn::$name => v.visit($name),)*}
            }
        }
        $(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name;
        impl BinaryOp for $name {
            const NAME: &'static str = $label;
            const FN: BinaryFn = BinaryFn::$name;
            #[inline(always)]
            fn f<A: Float>(&self, $a: A, $b: A) -> A { $f }
            #[inline(always)]
            #[allow(unused_variables)]
            fn dfa<A: Float>(&self, $a: A, $b: A, $y: A) -> A { $dfa }
            #[inline(always)]
            #[allow(unused_variables)]
            fn dfb<A: Float>(&self, $a: A, $b: A, $y: A) -> A { $dfb }
        }
    )*};
}

fn half<A: Float>() -> A {
    A::cast_f64(0.5)
}

binary_ops! {
    /// `a + b`
    Add => "add", |a, b, y| a + b, A::one(), A::one();
    /// `a - b`
    Sub => "sub", |a, b, y| a - b, A::one(), -A::one();
    /// `a * b`
    Mul => "mul", |a, b, y| a * b, b, a;
    /// `a / b`
    Div => "div", |a, b, y| a / b, b.recip(), -a / (b * b);
    /// `max(a, b)`; a tie sends half the gradient each way, as PyTorch.
    Maximum => "maximum", |a, b, y| if a.is_nan() || b.is_nan() { A::nan() } else { a.max(b) },
        if a > b { A::one() } else if a == b { half() } else { A::zero() },
        if b > a { A::one() } else if a == b { half() } else { A::zero() };
    /// `min(a, b)`; a tie sends half the gradient each way, as PyTorch.
    Minimum => "minimum", |a, b, y| if a.is_nan() || b.is_nan() { A::nan() } else { a.min(b) },
        if a < b { A::one() } else if a == b { half() } else { A::zero() },
        if b < a { A::one() } else if a == b { half() } else { A::zero() };
    /// `a ^ b`; `∂/∂b` is 0 where `a == 0` and `b >= 0`, as PyTorch.
    Pow => "pow", |a, b, y| a.powf(b),
        if b == A::zero() { A::zero() } else { b * a.powf(b - A::one()) },
        if a == A::zero() && b >= A::zero() { A::zero() } else { y * a.ln() };
}

/// Applies a binary op to two tensors of the same shape type; an `Err` when run-time dims differ.
#[allow(clippy::type_complexity)]
pub(crate) fn try_binary<S, E, D, L, R, O>(
    a: Tensor<S, E, D, L>,
    b: Tensor<S, E, D, R>,
    op: O,
) -> Result<Tensor<S, E, D, <L as Merge<D, R>>::Output>>
where
    S: Shape,
    E: Float,
    D: Device,
    L: Merge<D, R>,
    R: Tape<D>,
    O: BinaryOp,
{
    if a.shape != b.shape {
        return Err(Error::ShapeMismatch { op: O::NAME, lhs: a.dims().to_vec(), rhs: b.dims().to_vec() });
    }
    let (al, bl) = (a.layout(), b.layout());
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let tape = ta.merge(tb);
    if !<<L as Merge<D, R>>::Output as Tape<D>>::TAPED {
        let out = a.device.binary(&op, a.data, &al, b.data, &bl);
        return Ok(Tensor::from_storage(a.device, out, a.shape).put_tape(tape));
    }
    crate::autograd::capture(&tape, &a);
    crate::autograd::capture(&tape, &b);
    let out = a.device.binary(&op, a.data.clone(), &al, b.data.clone(), &bl);
    let out = Tensor::from_storage(a.device.clone(), out, a.shape);
    let (dev, oid, n) = (a.device, out.id, al.numel());
    let (ad, aid, bd, bid) = (a.data, a.id, b.data, b.id);
    let record = crate::autograd::OpRecord::new(O::NAME, vec![aid, bid], oid, al.dims)
        .exports(crate::export::Op::Binary(O::FN), E::DTYPE);
    tape.add_backward_op(record, move |g| {
        g.backward_step_write::<E, 2>(&dev, oid, [(aid, n), (bid, n)], |gy, [ga, gb], acc| {
            dev.binary_backward(&op, &ad, &al, &bd, &bl, gy, Some(ga), Some(gb), acc);
        });
        Ok(())
    });
    Ok(out.put_tape(tape))
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $method:ident, $try_method:ident => $op:expr;)*) => {
        // The inherent methods exist beside the operator traits for their `try_` twins and for
        // method-call chains; the traits call them.
        #[allow(clippy::should_implement_trait)]
        impl<S: Shape, E: Float, D: Device, L: Tape<D>> Tensor<S, E, D, L> {$(
            $(#[$doc])*
            pub fn $try_method<R: Tape<D>>(self, rhs: Tensor<S, E, D, R>) -> Result<Tensor<S, E, D, <L as Merge<D, R>>::Output>>
            where
                L: Merge<D, R>,
            {
                try_binary(self, rhs, $op)
            }
            #[doc = concat!("[`Tensor::", stringify!($try_method), "`], panicking when run-time dims differ.")]
            pub fn $method<R: Tape<D>>(self, rhs: Tensor<S, E, D, R>) -> Tensor<S, E, D, <L as Merge<D, R>>::Output>
            where
                L: Merge<D, R>,
            {
                self.$try_method(rhs).unwrap_or_else(|e| panic!("{e}"))
            }
        )*}
    };
}

binary_methods! {
    /// Element-wise `a + b` (also the `+` operator).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let a = dev.tensor([1.0f32, 2.0]);
    /// assert_eq!(a.clone().add(a).to_vec(), vec![2.0, 4.0]);
    /// ```
    add, try_add => Add;
    /// Element-wise `a - b` (also the `-` operator).
    sub, try_sub => Sub;
    /// Element-wise `a * b` (also the `*` operator).
    mul, try_mul => Mul;
    /// Element-wise `a / b` (also the `/` operator).
    div, try_div => Div;
    /// Element-wise maximum.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let m = dev.tensor([1.0f32, 5.0]).maximum(dev.tensor([3.0f32, 2.0]));
    /// assert_eq!(m.to_vec(), vec![3.0, 5.0]);
    /// ```
    maximum, try_maximum => Maximum;
    /// Element-wise minimum.
    minimum, try_minimum => Minimum;
    /// Element-wise `a ^ b`.
    pow, try_pow => Pow;
}

macro_rules! std_ops {
    ($($trait:ident, $method:ident, $scalar:ident;)*) => {$(
        impl<S: Shape, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>> core::ops::$trait<Tensor<S, E, D, R>> for Tensor<S, E, D, L> {
            type Output = Tensor<S, E, D, <L as Merge<D, R>>::Output>;
            /// Panics when run-time dims differ; the `try_*` method returns an `Err` instead.
            fn $method(self, rhs: Tensor<S, E, D, R>) -> Self::Output {
                Tensor::$method(self, rhs)
            }
        }
        impl<S: Shape, E: Float, D: Device, T: Tape<D>> core::ops::$trait<E> for Tensor<S, E, D, T> {
            type Output = Tensor<S, E, D, T>;
            fn $method(self, rhs: E) -> Self::Output {
                self.$scalar(rhs.as_f64())
            }
        }
    )*};
}

std_ops! {
    Add, add, add_scalar;
    Sub, sub, sub_scalar;
    Mul, mul, mul_scalar;
    Div, div, div_scalar;
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> core::ops::Neg for Tensor<S, E, D, T> {
    type Output = Self;
    fn neg(self) -> Self {
        Tensor::neg(self)
    }
}
