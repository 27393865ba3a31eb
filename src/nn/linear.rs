//! `Linear<I, O>`: `y = x Wᵀ + b`, PyTorch's `nn.Linear` (weight stored `(O, I)`).

use super::{BuildOn, Module, init, optional_bias, same_in_training, tensor_params};
use crate::autograd::Tape;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::Result;
use crate::ops::MatMul;
use crate::shapes::{Axes2, Axis, Const, Dim, Rank1, Rank2};
use crate::tensor::Tensor;

/// A fully connected layer from `I` to `O` features, with bias, initialised as PyTorch's (weight
/// and bias uniform in `±1/√I`). Takes `(I,)`, `(batch, I)` or `(batch, seq, I)` inputs; the
/// feature dim may be any dim type of size `I` (a computed one from `Flatten`, or `usize`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Linear;
/// let dev = Cpu::seeded(0);
/// let layer = Linear::<3, 2>::build(&dev);
/// let x: Tensor<(usize, Const<3>), f32, Cpu> = dev.ones_like(&(5, Const));
/// assert_eq!(layer.forward(x).dims().as_slice(), &[5, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear<const I: usize, const O: usize, E: Float = f32, D: Device = Cpu> {
    /// `(O, I)`, as PyTorch stores it.
    pub weight: Tensor<Rank2<O, I>, E, D>,
    /// `(O,)`; `None` in a [`NoBias`](super::NoBias) layer (PyTorch's `bias=False`).
    pub bias: Option<Tensor<Rank1<O>, E, D>>,
}

impl<const I: usize, const O: usize, E: Float, D: Device> BuildOn<D> for Linear<I, O, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        let bound = 1.0 / math::sqrt(I.max(1) as f64);
        Ok(Self {
            weight: init::kaiming_uniform(dev, &Default::default(), math::sqrt(5f64)),
            bias: Some(init::uniform(dev, &Default::default(), -bound, bound)),
        })
    }
}

tensor_params!([const I: usize, const O: usize, E: Float, D: Device] Linear<I, O, E, D> { weight: Parameter, bias: Optional });
optional_bias!([const I: usize, const O: usize, E: Float, D: Device] Linear<I, O, E, D>);

/// A parameter on the input's tape, so that its gradient is recorded with the input's ops.
pub(crate) fn on_tape<S: crate::shapes::Shape, E: Float, D: Device, T: Tape<D>>(
    p: &Tensor<S, E, D>,
    tape: &T,
) -> Tensor<S, E, D, T> {
    p.clone().put_tape(tape.clone())
}

/// The input's feature dim must be `I`: a build error for a static dim of another size (the
/// message names `Linear`), an `Err` for a run-time dim.
macro_rules! check_features {
    ($x:ty) => {
        const {
            if let Some(n) = <$x as Dim>::STATIC {
                assert!(
                    n == I,
                    "Linear<I, O>: the input's last dim is not I (see the sizes in the types of this error)"
                );
            }
        }
    };
}

fn features_err<const I: usize>(got: usize) -> crate::error::Error {
    crate::error::Error::ShapeMismatch { op: "Linear", lhs: vec![I], rhs: vec![got] }
}

impl<const I: usize, const O: usize, X: Dim, E: Float, D: Device, T: Tape<D>> Module<Tensor<(X,), E, D, T>>
    for Linear<I, O, E, D>
{
    type Output = Tensor<(Const<O>,), E, D, T>;
    fn try_forward(&self, x: Tensor<(X,), E, D, T>) -> Result<Self::Output> {
        check_features!(X);
        let got = x.shape().0.size();
        let x = x.try_realize::<(Const<I>,)>().map_err(|_| features_err::<I>(got))?;
        let tape = x.tape().clone();
        let y = x.try_matmul(on_tape(&self.weight, &tape).t())?;
        Ok(match &self.bias {
            Some(b) => y + on_tape(b, &tape),
            None => y,
        })
    }
}

impl<const I: usize, const O: usize, B: Dim, X: Dim, E: Float, D: Device, T: Tape<D>> Module<Tensor<(B, X), E, D, T>>
    for Linear<I, O, E, D>
{
    type Output = Tensor<(B, Const<O>), E, D, T>;
    fn try_forward(&self, x: Tensor<(B, X), E, D, T>) -> Result<Self::Output> {
        check_features!(X);
        let got = x.shape().1.size();
        let x = x.try_realize::<(B, Const<I>)>().map_err(|_| features_err::<I>(got))?;
        let tape = x.tape().clone();
        let y = x.try_matmul(on_tape(&self.weight, &tape).t())?;
        let shape = *y.shape();
        Ok(match &self.bias {
            Some(b) => y + on_tape(b, &tape).broadcast_like::<_, Axis<0>>(&shape),
            None => y,
        })
    }
}

impl<const I: usize, const O: usize, B: Dim, S: Dim, X: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Tensor<(B, S, X), E, D, T>> for Linear<I, O, E, D>
{
    type Output = Tensor<(B, S, Const<O>), E, D, T>;
    fn try_forward(&self, x: Tensor<(B, S, X), E, D, T>) -> Result<Self::Output> {
        check_features!(X);
        let got = x.shape().2.size();
        let x = x.try_realize::<(B, S, Const<I>)>().map_err(|_| features_err::<I>(got))?;
        let tape = x.tape().clone();
        affine(x, on_tape(&self.weight, &tape), self.bias.as_ref().map(|b| on_tape(b, &tape)))
    }
}

/// `x Wᵀ + b` over a `(batch, seq, I)` input, the weight and bias already on the input's tape
/// (attention projects with slices of one packed weight this way).
pub(crate) fn affine<B: Dim, S: Dim, const I: usize, O: Dim, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<(B, S, Const<I>), E, D, T>,
    weight: Tensor<(O, Const<I>), E, D, T>,
    bias: Option<Tensor<(O,), E, D, T>>,
) -> Result<Tensor<(B, S, O), E, D, T>> {
    let y = x.try_matmul(weight.t())?;
    let shape = *y.shape();
    Ok(match bias {
        Some(b) => y + b.broadcast_like::<_, Axes2<0, 1>>(&shape),
        None => y,
    })
}

same_in_training!([const I: usize, const O: usize, E: Float, D: Device] Linear<I, O, E, D>);
