//! `Residual<M>` (`x + M(x)`, the skip connection of ResNets and transformers) and `Repeat<M, N>`
//! (N identical blocks in a row).

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

/// `N` modules of the same type run in order (`nn.Sequential` of identical blocks), named
/// `"0."`, `"1."`, .. as PyTorch names a `ModuleList`. Each block must keep the input's type.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear, ReLU, Repeat, Residual};
/// let dev = Cpu::seeded(0);
/// let blocks = Repeat::<Residual<(Linear<8, 8>, ReLU)>, 3>::build(&dev);
/// assert_eq!(nn::named_tensors(&blocks)[4].0, "2.0.weight"); // block 2, its tuple's layer 0
/// let x: Tensor<(usize, Const<8>), f32, Cpu> = dev.ones_like(&(2, Const));
/// assert_eq!(blocks.forward(x).dims().as_slice(), &[2, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct Repeat<M, const N: usize>(pub [M; N]);

impl<D: Device, M: BuildOn<D>, const N: usize> BuildOn<D> for Repeat<M, N> {
    fn try_build(dev: &D) -> Result<Self> {
        let blocks: Vec<M> = (0..N).map(|_| M::try_build(dev)).collect::<Result<_>>()?;
        Ok(Self(blocks.try_into().unwrap_or_else(|_| unreachable!("N blocks were built"))))
    }
}

impl<D: Device, M: Params<D>, const N: usize> Params<D> for Repeat<M, N> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        for (i, m) in self.0.iter().enumerate() {
            m.visit_params(&format!("{prefix}{i}."), v);
        }
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        for (i, m) in self.0.iter_mut().enumerate() {
            m.visit_params_mut(&format!("{prefix}{i}."), v);
        }
    }
}

impl<X, M: Module<X, Output = X>, const N: usize> Module<X> for Repeat<M, N> {
    type Output = X;
    fn try_forward(&self, mut x: X) -> Result<X> {
        for m in &self.0 {
            x = m.try_forward(x)?;
        }
        Ok(x)
    }
}

impl<X, M: ModuleMut<X, Output = X>, const N: usize> ModuleMut<X> for Repeat<M, N> {
    type Output = X;
    fn try_forward_mut(&mut self, mut x: X) -> Result<X> {
        for m in &mut self.0 {
            x = m.try_forward_mut(x)?;
        }
        Ok(x)
    }
}
