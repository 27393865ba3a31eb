//! `Residual<M>`: `x + M(x)`, the skip connection of ResNets and transformers.

use super::{BuildOn, Module, ModuleMut, Params, Visitor, VisitorMut};
use crate::autograd::Tape;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::Result;
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// `x + inner(x)`; the inner module must keep the input's type. Its tensors are named as the
/// inner module's (the wrapper adds no name level).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{Linear, ReLU, Residual};
/// let dev = Cpu::seeded(0);
/// let block = Residual::<(Linear<4, 4>, ReLU)>::build(&dev);
/// let x: Tensor<(usize, Const<4>), f32, Cpu> = dev.ones_like(&(2, Const));
/// assert_eq!(block.forward(x).dims().as_slice(), &[2, 4]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Residual<M>(pub M);

impl<D: Device, M: BuildOn<D>> BuildOn<D> for Residual<M> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self(M::try_build(dev)?))
    }
}

impl<D: Device, M: Params<D>> Params<D> for Residual<M> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        self.0.visit_params(prefix, v);
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        self.0.visit_params_mut(prefix, v);
    }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>, M> Module<Tensor<S, E, D, T>> for Residual<M>
where
    M: Module<Tensor<S, E, D, T>, Output = Tensor<S, E, D, T>>,
{
    type Output = Tensor<S, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        let y = self.0.try_forward(x.clone())?;
        x.try_add(y)
    }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>, M> ModuleMut<Tensor<S, E, D, T>> for Residual<M>
where
    M: ModuleMut<Tensor<S, E, D, T>, Output = Tensor<S, E, D, T>>,
{
    type Output = Tensor<S, E, D, T>;
    fn try_forward_mut(&mut self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        let y = self.0.try_forward_mut(x.clone())?;
        x.try_add(y)
    }
}
