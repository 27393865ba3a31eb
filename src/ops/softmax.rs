//! Softmax and log-softmax over typed axes, with the maximum subtracted first (as PyTorch
//! computes them), so large logits neither overflow nor lose precision.
//!
//! Over the last axis (classifiers, attention) one fused kernel does each pass; over other axes
//! the ops are composed from primitives.

use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::{Axes, ReduceShape, ReduceShapeTo, Shape};
use crate::tensor::Tensor;

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T>
where
    Self: Sized,
{
    /// The fused kernel along the last axis, with its own backward.
    fn softmax_last_axis(self, log: bool) -> Self {
        let x = self.contiguous();
        let l = x.layout();
        let (x, tape) = x.split_tape();
        let y = alloc::sync::Arc::new(x.device.softmax_rows(&x.data, &l, log));
        let out = Tensor::from_arc(x.device.clone(), y.clone(), x.shape);
        if T::TAPED {
            crate::autograd::capture(&tape, &x);
            let (dev, xid, oid, n) = (x.device, x.id, out.id, l.numel());
            let row = l.dims.as_slice().last().copied().unwrap_or(1);
            let name = if log { "log_softmax" } else { "softmax" };
            let record = crate::autograd::OpRecord::new(name, vec![xid], oid, l.dims)
                .exports(crate::export::Op::SoftmaxRows { log }, E::DTYPE);
            tape.add_backward_op(record, move |g| {
                g.backward_step_write::<E, 1>(&dev, oid, [(xid, n)], |gy, [gx], [acc]| {
                    dev.softmax_rows_backward(&y, gy, gx, row, log, acc);
                });
                Ok(())
            });
        }
        out.put_tape(tape)
    }

    /// Softmax over the last axis, whatever the rank (PyTorch's `softmax(dim=-1)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank3<2, 3, 4>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert!(t.softmax_last().to_vec().iter().all(|&p| p == 0.25));
    /// ```
    pub fn softmax_last(self) -> Self {
        const { assert!(S::RANK > 0, "softmax_last: a scalar has no last axis") };
        self.softmax_last_axis(false)
    }

    /// Log-softmax over the last axis, whatever the rank (PyTorch's `log_softmax(dim=-1)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank2<1, 2>, f64, Cpu> = Cpu::seeded(0).zeros();
    /// assert_eq!(t.log_softmax_last().to_vec(), vec![-(2f64.ln()); 2]);
    /// ```
    pub fn log_softmax_last(self) -> Self {
        const { assert!(S::RANK > 0, "log_softmax_last: a scalar has no last axis") };
        self.softmax_last_axis(true)
    }

    fn is_last_axis<Ax: Axes>() -> bool {
        Ax::LIST.len() == 1 && S::RANK > 0 && Ax::LIST[0] == S::RANK - 1
    }

    /// `x - max` over `Ax`, with the maximum held constant (softmax does not depend on it).
    fn shifted_by_max<Ax: Axes>(self) -> Self
    where
        S: ReduceShape<Ax> + ReduceShapeTo<<S as ReduceShape<Ax>>::Reduced, Ax>,
    {
        let shape = self.shape;
        let max = self.detach().max::<S::Reduced, Ax>();
        let max = super::unary::unary(max, super::unary::FiniteOrZero);
        self - max.broadcast_like::<S, Ax>(&shape)
    }

    /// `x - logsumexp(x)` over the axes `Ax` (numerically stable).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f64, 2.0, 3.0]]);
    /// let p: Vec<f64> = t.log_softmax::<Axis<1>>().exp().to_vec();
    /// assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    /// ```
    pub fn log_softmax<Ax: Axes>(self) -> Self
    where
        S: ReduceShape<Ax> + ReduceShapeTo<<S as ReduceShape<Ax>>::Reduced, Ax>,
    {
        if Self::is_last_axis::<Ax>() {
            return self.softmax_last_axis(true);
        }
        let shape = self.shape;
        let z = self.shifted_by_max::<Ax>();
        let log_norm = z.clone().exp().sum::<S::Reduced, Ax>().ln();
        z - log_norm.broadcast_like::<S, Ax>(&shape)
    }

    /// `e^x / Σ e^x` over the axes `Ax` (numerically stable).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1000.0f32, 1000.0]]);
    /// assert_eq!(t.softmax::<Axis<1>>().to_vec(), vec![0.5, 0.5]);
    /// ```
    pub fn softmax<Ax: Axes>(self) -> Self
    where
        S: ReduceShape<Ax> + ReduceShapeTo<<S as ReduceShape<Ax>>::Reduced, Ax>,
    {
        if Self::is_last_axis::<Ax>() {
            return self.softmax_last_axis(false);
        }
        let shape = self.shape;
        let e = self.shifted_by_max::<Ax>().exp();
        let norm = e.clone().sum::<S::Reduced, Ax>();
        e / norm.broadcast_like::<S, Ax>(&shape)
    }
}
