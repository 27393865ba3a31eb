//! `Bilinear<I1, I2, O>`: `y = x1ᵀ W x2 + b` per output feature, PyTorch's `nn.Bilinear`.

use super::linear::on_tape;
use super::{BuildOn, Module, init, same_in_training, tensor_params};
use crate::autograd::Tape;
use crate::compat::math;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::ops::MatMul;
use crate::shapes::{Axes3, Axis, Const, Dim, Rank1, Rank3};
use crate::tensor::Tensor;

/// A bilinear map of two inputs, `(batch, I1)` and `(batch, I2)`, to `(batch, O)`:
/// `y[n, o] = Σ_ij x1[n, i] W[o, i, j] x2[n, j] + b[o]`. Weight and bias are uniform in `±1/√I1`,
/// as PyTorch's.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Bilinear;
/// let dev = Cpu::seeded(0);
/// let layer = Bilinear::<3, 4, 2>::build(&dev);
/// let a: Tensor<(usize, Const<3>), f32, Cpu> = dev.randn_like(&(5, Const));
/// let b: Tensor<(usize, Const<4>), f32, Cpu> = dev.randn_like(&(5, Const));
/// assert_eq!(layer.forward((a, b)).dims().as_slice(), &[5, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct Bilinear<const I1: usize, const I2: usize, const O: usize, E: Float = f32, D: Device = Cpu> {
    /// `(O, I1, I2)`.
    pub weight: Tensor<Rank3<O, I1, I2>, E, D>,
    /// `(O,)`.
    pub bias: Tensor<Rank1<O>, E, D>,
}

impl<const I1: usize, const I2: usize, const O: usize, E: Float, D: Device> BuildOn<D> for Bilinear<I1, I2, O, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        let bound = 1.0 / math::sqrt(I1.max(1) as f64);
        Ok(Self {
            weight: init::uniform(dev, &Default::default(), -bound, bound),
            bias: init::uniform(dev, &Default::default(), -bound, bound),
        })
    }
}

tensor_params!([const I1: usize, const I2: usize, const O: usize, E: Float, D: Device] Bilinear<I1, I2, O, E, D> {
    weight: Parameter,
    bias: Parameter,
});
same_in_training!([const I1: usize, const I2: usize, const O: usize, E: Float, D: Device] Bilinear<I1, I2, O, E, D>);

impl<const I1: usize, const I2: usize, const O: usize, B: Dim, E: Float, D: Device, T: Tape<D>>
    Module<(Tensor<(B, Const<I1>), E, D, T>, Tensor<(B, Const<I2>), E, D, T>)> for Bilinear<I1, I2, O, E, D>
{
    type Output = Tensor<(B, Const<O>), E, D, T>;
    fn try_forward(
        &self,
        (x1, x2): (Tensor<(B, Const<I1>), E, D, T>, Tensor<(B, Const<I2>), E, D, T>),
    ) -> Result<Self::Output> {
        let batch = x1.shape().0;
        if x2.shape().0 != batch {
            return Err(Error::ShapeMismatch { op: "Bilinear", lhs: x1.dims().to_vec(), rhs: x2.dims().to_vec() });
        }
        let tape = x1.tape().clone();
        // x1 W as one matmul: W laid out (I1, O * I2), then the sum against x2 over I2
        let w = on_tape(&self.weight, &tape).permute::<(Const<I1>, Const<O>, Const<I2>), Axes3<1, 0, 2>>();
        let w = w.try_reshape_like(&(Const::<I1>, O * I2))?;
        let x1w = x1.try_matmul(w)?.try_reshape_like(&(batch, Const::<O>, Const::<I2>))?;
        let x2 = x2.broadcast_like::<_, Axis<1>>(&(batch, Const::<O>, Const::<I2>));
        let y = (x1w * x2).sum::<(B, Const<O>), Axis<2>>();
        let shape = *y.shape();
        Ok(y + on_tape(&self.bias, &tape).broadcast_like::<_, Axis<0>>(&shape))
    }
}
