//! Comparisons giving bool tensors, and `where` (choose element-wise between two tensors).

use crate::autograd::{Merge, Tape};
use crate::compat::prelude::*;
use crate::device::{Device, Layout};
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// An element-wise comparison.
pub trait CmpOp: Clone + Send + Sync + 'static {
    /// The op's name.
    const NAME: &'static str;
    /// The comparison.
    fn cmp<E: Dtype>(&self, a: E, b: E) -> bool;
    /// The op as a value (for graphs).
    const FN: CmpFn;
}

/// Code generic over the comparison a [`CmpFn`] names.
pub trait CmpVisitor {
    /// What the visit gives.
    type Out;
    /// Called with the concrete op.
    fn visit<O: CmpOp>(self, op: O) -> Self::Out;
}

macro_rules! cmp_ops {
    ($($(#[$doc:meta])* $name:ident, $method:ident, $try_method:ident, $scalar:ident => $label:literal, |$a:ident, $b:ident| $f:expr;)*) => {
        /// Every comparison as a value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum CmpFn {$(
            $(#[$doc])*
            $name,
        )*}
        impl CmpFn {
            /// Every op, in the order of their codes.
            pub const ALL: &'static [CmpFn] = &[$(CmpFn::$name),*];
            /// The op's name.
            pub fn name(self) -> &'static str {
                match self {$(CmpFn::$name => $label,)*}
            }
            /// Runs `v` with the op this value names.
            pub fn visit<V: CmpVisitor>(self, v: V) -> V::Out {
                match self {$(CmpFn::$name => v.visit($name),)*}
            }
        }
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, Default)]
            pub struct $name;
            impl CmpOp for $name {
                const NAME: &'static str = $label;
                const FN: CmpFn = CmpFn::$name;
                #[inline(always)]
                fn cmp<E: Dtype>(&self, $a: E, $b: E) -> bool { $f }
            }
        )*
        impl<S: Shape, E: Dtype, D: Device, T: Tape<D>> Tensor<S, E, D, T> {$(
            #[doc = concat!("Element-wise `", $label, "`; an `Err` when run-time dims differ.")]
            pub fn $try_method<T2: Tape<D>>(&self, rhs: &Tensor<S, E, D, T2>) -> Result<Tensor<S, bool, D>> {
                compare(self, rhs, $name)
            }
            #[doc = concat!("Element-wise `", $label, "`, panicking when run-time dims differ.")]
            pub fn $method<T2: Tape<D>>(&self, rhs: &Tensor<S, E, D, T2>) -> Tensor<S, bool, D> {
                self.$try_method(rhs).unwrap_or_else(|e| panic!("{e}"))
            }
            #[doc = concat!("Element-wise `", $label, "` against a scalar.")]
            pub fn $scalar(&self, rhs: E) -> Tensor<S, bool, D> {
                let scalar = Tensor {
                    id: crate::autograd::UniqueId::next(),
                    data: alloc::sync::Arc::new(self.device.upload(vec![rhs])),
                    shape: self.shape,
                    strides: Layout::repeated_element(self.layout().dims).strides,
                    offset: 0,
                    device: self.device.clone(),
                    tape: crate::autograd::NoTape,
                };
                compare(self, &scalar, $name).expect("the same shape")
            }
        )*}
    };
}

cmp_ops! {
    /// `a == b`
    EqOp, eq, try_eq, eq_scalar => "eq", |a, b| a == b;
    /// `a != b`
    NeOp, ne, try_ne, ne_scalar => "ne", |a, b| a != b;
    /// `a < b`
    LtOp, lt, try_lt, lt_scalar => "lt", |a, b| a < b;
    /// `a <= b`
    LeOp, le, try_le, le_scalar => "le", |a, b| a <= b;
    /// `a > b`
    GtOp, gt, try_gt, gt_scalar => "gt", |a, b| a > b;
    /// `a >= b`
    GeOp, ge, try_ge, ge_scalar => "ge", |a, b| a >= b;
}

/// A comparison. Its result has no tape (nothing to differentiate), but on a tracing tape the
/// comparison is still recorded, so a mask computed from a traced input stays in the graph.
fn compare<S: Shape, E: Dtype, D: Device, T1: Tape<D>, T2: Tape<D>, O: CmpOp>(
    a: &Tensor<S, E, D, T1>,
    b: &Tensor<S, E, D, T2>,
    op: O,
) -> Result<Tensor<S, bool, D>> {
    if a.shape != b.shape {
        return Err(Error::ShapeMismatch { op: O::NAME, lhs: a.dims().to_vec(), rhs: b.dims().to_vec() });
    }
    let out = a.device.compare(&op, &a.data, &a.layout(), &b.data, &b.layout());
    let out = Tensor::from_storage(a.device.clone(), out, a.shape);
    let record = || {
        crate::autograd::OpRecord::new(O::NAME, vec![a.id, b.id], out.id, out.dims())
            .exports(crate::export::Op::Compare(O::FN), crate::dtypes::DType::Bool)
    };
    if T1::TRACING {
        crate::autograd::capture(&a.tape, a);
        crate::autograd::capture(&a.tape, b);
        a.tape.add_backward_op(record(), |_| Ok(()));
    } else if T2::TRACING {
        crate::autograd::capture(&b.tape, a);
        crate::autograd::capture(&b.tape, b);
        b.tape.add_backward_op(record(), |_| Ok(()));
    }
    Ok(out)
}

impl<S: Shape, D: Device, T> Tensor<S, bool, D, T> {
    /// `self ? on_true : on_false` element-wise (`torch.where`); the gradient flows to the
    /// branch that was taken. An `Err` when run-time dims differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([-1.0f32, 2.0, -3.0]);
    /// let mask = x.gt_scalar(0.0);
    /// let y = mask.try_choose(x.clone(), x.clone().neg()).unwrap();
    /// assert_eq!(y.to_vec(), vec![1.0, 2.0, 3.0]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn try_choose<E: Float, L: Tape<D> + Merge<D, R>, R: Tape<D>>(
        &self,
        on_true: Tensor<S, E, D, L>,
        on_false: Tensor<S, E, D, R>,
    ) -> Result<Tensor<S, E, D, <L as Merge<D, R>>::Output>> {
        for other in [on_true.dims(), on_false.dims()] {
            if other != self.dims() {
                return Err(Error::ShapeMismatch { op: "where", lhs: self.dims().to_vec(), rhs: other.to_vec() });
            }
        }
        let (cl, al, bl) = (self.layout(), on_true.layout(), on_false.layout());
        let (a, ta) = on_true.split_tape();
        let (b, tb) = on_false.split_tape();
        let tape = ta.merge(tb);
        let dev = a.device.clone();
        let out = dev.select_where(&self.data, &cl, &a.data, &al, &b.data, &bl);
        let out = Tensor::from_storage(dev.clone(), out, self.shape);
        if <<L as Merge<D, R>>::Output as Tape<D>>::TAPED {
            crate::autograd::capture(&tape, self);
            crate::autograd::capture(&tape, &a);
            crate::autograd::capture(&tape, &b);
            let (cond, aid, bid, oid, n) = (self.data.clone(), a.id, b.id, out.id, cl.numel());
            // The condition is an input of the graph node, not of the gradient.
            let record = crate::autograd::OpRecord::new("where", vec![self.id, aid, bid], oid, cl.dims)
                .exports(crate::export::Op::Where, E::DTYPE);
            tape.add_backward_op(record, move |g| {
                g.backward_step_write::<E, 2>(&dev, oid, [(aid, n), (bid, n)], |gy, bufs, acc| {
                    let zero = dev.alloc_zeros::<E>(1);
                    let c = Layout::contiguous(cl.dims);
                    let zl = Layout::repeated_element(cl.dims);
                    for ((on_true, buf), acc) in [true, false].into_iter().zip(bufs).zip(acc) {
                        let part = if on_true {
                            dev.select_where(&cond, &cl, gy, &c, &zero, &zl)
                        } else {
                            dev.select_where(&cond, &cl, &zero, &zl, gy, &c)
                        };
                        if acc {
                            dev.copy_into(&part, &c, buf, &c, true);
                        } else {
                            *buf = part;
                        }
                    }
                });
                Ok(())
            });
        }
        Ok(out.put_tape(tape))
    }

    /// [`Tensor::try_choose`], panicking when run-time dims differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([1.0f32, -1.0]);
    /// let y = x.gt_scalar(0.0).choose(x.clone(), x.clone() * 0.1);
    /// assert_eq!(y.to_vec(), vec![1.0, -0.1]);
    /// ```
    pub fn choose<E: Float, L: Tape<D> + Merge<D, R>, R: Tape<D>>(
        &self,
        on_true: Tensor<S, E, D, L>,
        on_false: Tensor<S, E, D, R>,
    ) -> Tensor<S, E, D, <L as Merge<D, R>>::Output> {
        self.try_choose(on_true, on_false).unwrap_or_else(|e| panic!("{e}"))
    }
}
