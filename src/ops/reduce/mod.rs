//! Reductions over typed axes. The output shape is computed by the type system: name either the
//! result (`sum::<Rank1<2>, _>()`) or the axes (`sum::<_, Axis<1>>()`).
//!
//! `sum`, `max` and `min` are primitives (one kernel each); `mean`, `var`, `std` and `logsumexp`
//! are built from them, so their gradients come for free.

use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::{Axes, ReduceShapeTo, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// The primitive reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Sum.
    Sum,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
}

impl ReduceKind {
    fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "sum",
            ReduceKind::Max => "amax",
            ReduceKind::Min => "amin",
        }
    }
}

fn reduce<S, E, D, T, Dst, Ax>(x: Tensor<S, E, D, T>, kind: ReduceKind) -> Tensor<Dst, E, D, T>
where
    S: ReduceShapeTo<Dst, Ax>,
    Dst: Shape,
    Ax: Axes,
    E: Float,
    D: Device,
    T: Tape<D>,
{
    let l = x.layout();
    let dst = x.shape.reduced_to();
    let (x, tape) = x.split_tape();
    let y = Arc::new(x.device.reduce(kind, &x.data, &l, Ax::LIST));
    let out = Tensor::from_arc(x.device.clone(), y.clone(), dst);
    if T::TAPED {
        crate::autograd::capture(&tape, &x);
        let op = crate::export::Op::Reduce { kind, axes: Ax::LIST.to_vec() };
        let record =
            crate::autograd::OpRecord::new(kind.name(), vec![x.id], out.id, out.shape.dims()).exports(op, E::DTYPE);
        let (dev, xd, xid, oid) = (x.device, x.data, x.id, out.id);
        tape.add_backward_op(record, move |g| {
            g.backward_step_write::<E, 1>(&dev, oid, [(xid, l.numel())], |gy, [gx], [acc]| {
                dev.reduce_backward(kind, &xd, &l, Ax::LIST, &y, gy, gx, acc);
            });
            Ok(())
        });
    }
    out.put_tape(tape)
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Sum over the axes `Ax`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(t.clone().sum::<_, Axis<1>>().to_vec(), vec![6.0, 15.0]);
    /// assert_eq!(t.clone().sum::<Rank1<3>, _>().to_vec(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(t.sum::<Rank0, _>().to_vec(), vec![21.0]);
    /// ```
    pub fn sum<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        reduce(self, ReduceKind::Sum)
    }

    /// Maximum over the axes `Ax` (the gradient is shared between ties, as `torch.amax`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 7.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(t.max::<_, Axis<1>>().to_vec(), vec![7.0, 6.0]);
    /// ```
    pub fn max<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        reduce(self, ReduceKind::Max)
    }

    /// Minimum over the axes `Ax` (the gradient is shared between ties, as `torch.amin`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 7.0], [4.0, -5.0]]);
    /// assert_eq!(t.min::<_, Axis<1>>().to_vec(), vec![1.0, -5.0]);
    /// ```
    pub fn min<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        reduce(self, ReduceKind::Min)
    }

    /// Mean over the axes `Ax`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(t.mean::<_, Axis<0>>().to_vec(), vec![2.5, 3.5, 4.5]);
    /// ```
    pub fn mean<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        let n = reduced_count::<S, Dst, Ax>(&self.shape);
        self.sum::<Dst, Ax>().mul_scalar(1.0 / n as f64)
    }

    /// Variance over the axes `Ax` with Bessel's correction (`torch.var`'s default, `correction=1`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1.0f64, 2.0, 3.0, 4.0]);
    /// assert!((t.var::<Rank0, _>().to_vec()[0] - 5.0 / 3.0).abs() < 1e-12);
    /// ```
    pub fn var<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        self.var_with_correction::<Dst, Ax>(1)
    }

    /// Variance over `Ax` dividing by `n - correction` (0 gives the population variance).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1.0f64, 3.0]);
    /// assert_eq!(t.var_with_correction::<Rank0, _>(0).to_vec(), vec![1.0]);
    /// ```
    pub fn var_with_correction<Dst: Shape, Ax: Axes>(self, correction: usize) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        let shape = self.shape;
        let n = reduced_count::<S, Dst, Ax>(&shape);
        let mean = self.clone().mean::<Dst, Ax>().broadcast_like::<S, Ax>(&shape);
        let centered = self - mean;
        centered.square().sum::<Dst, Ax>().mul_scalar(1.0 / (n as f64 - correction as f64))
    }

    /// Standard deviation over `Ax` with Bessel's correction (`torch.std`'s default).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1.0f64, 3.0]);
    /// assert!((t.std::<Rank0, _>().to_vec()[0] - 2f64.sqrt()).abs() < 1e-12);
    /// ```
    pub fn std<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        self.var::<Dst, Ax>().sqrt()
    }

    /// `ln Σ e^x` over `Ax`, computed stably (shifted by the maximum).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1000.0f64, 1000.0]);
    /// let v = t.logsumexp::<Rank0, _>().to_vec()[0];
    /// assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9);
    /// ```
    pub fn logsumexp<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: ReduceShapeTo<Dst, Ax>,
    {
        let shape = self.shape;
        // The shift is a constant: the gradient of `ln Σ e^(x - m) + m` does not depend on it.
        let shift = super::unary::unary(self.detach().max::<Dst, Ax>(), super::unary::FiniteOrZero);
        let shifted = self - shift.clone().broadcast_like::<S, Ax>(&shape);
        shifted.exp().sum::<Dst, Ax>().ln() + shift
    }
}

/// How many elements each output of a reduction from `S` to `Dst` combines.
fn reduced_count<S: ReduceShapeTo<Dst, Ax>, Dst: Shape, Ax: Axes>(shape: &S) -> usize {
    Ax::LIST.iter().map(|&a| shape.dims()[a]).product()
}
