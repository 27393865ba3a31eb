//! Pooling and reshaping layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, `Flatten`.

use super::activation::stateless;
use super::{BuildOn, Module, Params, Visitor, VisitorMut, same_in_training};
use crate::autograd::Tape;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::Result;
use crate::ops::{Pool2dShape, PoolOpts};
use crate::shapes::{Const, Dim, FlattenShape};
use crate::tensor::Tensor;

/// 2-D max pooling with a `K x K` window, stride `S` (default `K`, as PyTorch) and padding `P`
/// (`nn.MaxPool2d`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::MaxPool2d;
/// let x: Tensor<Rank4<1, 3, 28, 28>, f32, Cpu> = Cpu::seeded(0).randn();
/// let y: Tensor<Rank4<1, 3, 14, 14>, f32, Cpu> = MaxPool2d::<2>.forward(x).realize();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxPool2d<const K: usize, const S: usize = K, const P: usize = 0>;

/// 2-D average pooling with a `K x K` window, stride `S` (default `K`) and padding `P`, padded
/// taps counted (`nn.AvgPool2d`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::AvgPool2d;
/// let x: Tensor<Rank4<1, 1, 2, 2>, f32, Cpu> = Cpu::seeded(0).ones();
/// assert_eq!(AvgPool2d::<2>.forward(x).to_vec(), vec![1.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AvgPool2d<const K: usize, const S: usize = K, const P: usize = 0>;

/// Average pooling to an `OH x OW` output (`nn.AdaptiveAvgPool2d`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::AdaptiveAvgPool2d;
/// let x: Tensor<(usize, Const<8>, usize, usize), f32, Cpu> = Cpu::seeded(0).ones_like(&(2, Const, 13, 17));
/// let y: Tensor<(usize, Const<8>, Const<1>, Const<1>), f32, Cpu> = AdaptiveAvgPool2d::<1, 1>.forward(x);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d<const OH: usize, const OW: usize>;

/// Merges every axis after the first into one (`nn.Flatten()`): `(B, C, H, W)` to
/// `(B, C·H·W)`, static when `C`, `H` and `W` are, so the next `Linear` is checked at build time.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Flatten;
/// let x: Tensor<Rank4<2, 16, 5, 5>, f32, Cpu> = Cpu::seeded(0).zeros();
/// assert_eq!(Flatten.forward(x).dims().as_slice(), &[2, 400]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten;

impl<const K: usize, const S: usize, const P: usize, B: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for MaxPool2d<K, S, P>
{
    type Output = Tensor<Pool2dShape<B, C, H, W, K, S, P, 1>, E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output> {
        x.try_max_pool2d(PoolOpts::<K, S, P, 1>)
    }
}

impl<const K: usize, const S: usize, const P: usize, B: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for AvgPool2d<K, S, P>
{
    type Output = Tensor<Pool2dShape<B, C, H, W, K, S, P, 1>, E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output> {
        x.try_avg_pool2d(PoolOpts::<K, S, P, 1>, true)
    }
}

impl<const OH: usize, const OW: usize, B: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Tensor<(B, C, H, W), E, D, T>> for AdaptiveAvgPool2d<OH, OW>
{
    type Output = Tensor<(B, C, Const<OH>, Const<OW>), E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output> {
        Ok(x.adaptive_avg_pool2d::<OH, OW>())
    }
}

impl<S: FlattenShape, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for Flatten {
    type Output = Tensor<S::Flattened, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        let shape = x.shape().flattened();
        x.try_reshape_like(&shape)
    }
}

same_in_training!([const K: usize, const S: usize, const P: usize] MaxPool2d<K, S, P>);
same_in_training!([const K: usize, const S: usize, const P: usize] AvgPool2d<K, S, P>);
same_in_training!([const OH: usize, const OW: usize] AdaptiveAvgPool2d<OH, OW>);
same_in_training!([] Flatten);

stateless!([const K: usize, const S: usize, const P: usize] MaxPool2d<K, S, P>);
stateless!([const K: usize, const S: usize, const P: usize] AvgPool2d<K, S, P>);
stateless!([const OH: usize, const OW: usize] AdaptiveAvgPool2d<OH, OW>);
stateless!(Flatten);
