//! Softmax and log-softmax over typed axes, built from primitives with the maximum subtracted
//! first (as PyTorch computes them), so large logits neither overflow nor lose precision.

use crate::autograd::Tape;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::{Axes, ReduceShape, ReduceShapeTo, Shape};
use crate::tensor::Tensor;

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T>
where
    Self: Sized,
{
    /// `x - max` over `Ax`, with the maximum held constant (softmax does not depend on it).
    fn shifted_by_max<Ax: Axes>(self) -> Self
    where
        S: ReduceShape<Ax> + ReduceShapeTo<<S as ReduceShape<Ax>>::Reduced, Ax>,
    {
        let shape = self.shape;
        let max = self.detach().max::<S::Reduced, Ax>();
        let max = super::unary::unary(max, super::reduce::FiniteOrZero);
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
        let shape = self.shape;
        let e = self.shifted_by_max::<Ax>().exp();
        let norm = e.clone().sum::<S::Reduced, Ax>();
        e / norm.broadcast_like::<S, Ax>(&shape)
    }
}
