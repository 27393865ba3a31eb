//! `Residual<M>` (`x + M(x)`, the skip connection of ResNets and transformers), its general form
//! `ResidualWith<F, R, C>` (`C(F(x), R(x))`), `Identity`, and `Repeat<M, N>` (N identical blocks
//! in a row).

use super::{BuildOn, Module, ModuleMut, Params, Visitor, VisitorMut};
use crate::autograd::Tape;
use crate::compat::prelude::*;
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

/// `combine(main(x), shortcut(x))`: a residual block whose shortcut is a module of its own (a
/// strided 1 x 1 convolution in ResNet's downsampling blocks, [`Identity`] for a plain skip)
/// and whose merge is [`combine::Sum`] (default), [`combine::Product`] or [`combine::Concat`]. The branches may give
/// different dim types of equal size (two differently computed conv outputs): the merge realizes
/// the shortcut's to the main branch's, checked at build time when both are static. Tensors are
/// named `"main."` and `"shortcut."`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{BatchNorm2d, Conv2d, NoBias, ReLU, ResidualWith};
/// // ResNet's downsampling block: two 3x3 convs (the first strided) beside a strided 1x1 conv
/// type Down = ResidualWith<
///     (NoBias<Conv2d<8, 16, 3, 2, 1>>, BatchNorm2d<16>, ReLU, NoBias<Conv2d<16, 16, 3, 1, 1>>, BatchNorm2d<16>),
///     (NoBias<Conv2d<8, 16, 1, 2>>, BatchNorm2d<16>),
/// >;
/// let dev = Cpu::seeded(0);
/// let block = Down::build(&dev);
/// let x: Tensor<(usize, Const<8>, Const<12>, Const<12>), f32, Cpu> = dev.randn_like(&(2, Const, Const, Const));
/// let y = block.forward(x).relu();
/// assert_eq!(y.dims().as_slice(), &[2, 16, 6, 6]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ResidualWith<F, R = Identity, C = combine::Sum> {
    /// The main branch.
    pub main: F,
    /// The shortcut branch.
    pub shortcut: R,
    /// How the two outputs merge.
    pub combine: C,
}

/// How [`ResidualWith`] merges its two branches' outputs.
pub trait Combine<A, B> {
    /// The merged output.
    type Output;
    /// Merges `main` and `shortcut`; `Err` when run-time sizes disagree.
    fn try_combine(&self, main: A, shortcut: B) -> Result<Self::Output>;
}

/// The merges of [`ResidualWith`]: [`Sum`](combine::Sum), [`Product`](combine::Product),
/// [`Concat`](combine::Concat).
pub mod combine {
    use crate::autograd::Tape;
    use crate::device::Device;
    use crate::dtypes::Float;
    use crate::error::Result;
    use crate::shapes::{Axis, ConcatShape, Shape};
    use crate::tensor::Tensor;

    /// `main + shortcut`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Sum;

    /// `main * shortcut` (a gate).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Product;

    /// `main` and `shortcut` concatenated along axis `I` (DenseNet-style).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Concat<const I: usize>;

    impl<S: Shape, S2: Shape, E: Float, D: Device, T: Tape<D>> super::Combine<Tensor<S, E, D, T>, Tensor<S2, E, D, T>>
        for Sum
    {
        type Output = Tensor<S, E, D, T>;
        fn try_combine(&self, main: Tensor<S, E, D, T>, shortcut: Tensor<S2, E, D, T>) -> Result<Self::Output> {
            main.try_add(shortcut.try_realize::<S>()?)
        }
    }

    impl<S: Shape, S2: Shape, E: Float, D: Device, T: Tape<D>> super::Combine<Tensor<S, E, D, T>, Tensor<S2, E, D, T>>
        for Product
    {
        type Output = Tensor<S, E, D, T>;
        fn try_combine(&self, main: Tensor<S, E, D, T>, shortcut: Tensor<S2, E, D, T>) -> Result<Self::Output> {
            main.try_mul(shortcut.try_realize::<S>()?)
        }
    }

    impl<const I: usize, S, S2: Shape, E: Float, D: Device, T: Tape<D>>
        super::Combine<Tensor<S, E, D, T>, Tensor<S2, E, D, T>> for Concat<I>
    where
        S: ConcatShape<S2, Axis<I>>,
    {
        type Output = Tensor<S::Output, E, D, T>;
        fn try_combine(&self, main: Tensor<S, E, D, T>, shortcut: Tensor<S2, E, D, T>) -> Result<Self::Output> {
            main.try_concat_along(shortcut, Axis::<I>)
        }
    }
}

impl<D: Device, F: BuildOn<D>, R: BuildOn<D>, C: Default> BuildOn<D> for ResidualWith<F, R, C> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self { main: F::try_build(dev)?, shortcut: R::try_build(dev)?, combine: C::default() })
    }
}

impl<D: Device, F: Params<D>, R: Params<D>, C> Params<D> for ResidualWith<F, R, C> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        self.main.visit_params(&format!("{prefix}main."), v);
        self.shortcut.visit_params(&format!("{prefix}shortcut."), v);
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        self.main.visit_params_mut(&format!("{prefix}main."), v);
        self.shortcut.visit_params_mut(&format!("{prefix}shortcut."), v);
    }
}

impl<X: Clone, F: Module<X>, R: Module<X>, C: Combine<F::Output, R::Output>> Module<X> for ResidualWith<F, R, C> {
    type Output = C::Output;
    fn try_forward(&self, x: X) -> Result<Self::Output> {
        let main = self.main.try_forward(x.clone())?;
        self.combine.try_combine(main, self.shortcut.try_forward(x)?)
    }
}

impl<X: Clone, F: ModuleMut<X>, R: ModuleMut<X>, C: Combine<F::Output, R::Output>> ModuleMut<X>
    for ResidualWith<F, R, C>
{
    type Output = C::Output;
    fn try_forward_mut(&mut self, x: X) -> Result<Self::Output> {
        let main = self.main.try_forward_mut(x.clone())?;
        self.combine.try_combine(main, self.shortcut.try_forward_mut(x)?)
    }
}

/// The identity (`nn.Identity`): any input, unchanged.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Identity;
/// assert_eq!(Identity.forward(3), 3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl<X> Module<X> for Identity {
    type Output = X;
    fn try_forward(&self, x: X) -> Result<X> {
        Ok(x)
    }
}

impl<X> ModuleMut<X> for Identity {
    type Output = X;
    fn try_forward_mut(&mut self, x: X) -> Result<X> {
        Ok(x)
    }
}

impl<D: Device> BuildOn<D> for Identity {
    fn try_build(_: &D) -> Result<Self> {
        Ok(Identity)
    }
}

impl<D: Device> Params<D> for Identity {
    fn visit_params<V: Visitor<D>>(&self, _: &str, _: &mut V) {}
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, _: &str, _: &mut V) {}
}
