//! `NoBias<M>`: a layer built without its bias (PyTorch's `bias=False`), as a type, so that a
//! model such as ResNet (convolutions followed by batch norm) is written and saved as PyTorch's.

use super::{BuildOn, OptionalBias, Params, Visitor, VisitorMut, delegate_forward};
use crate::device::Device;
use crate::error::Result;

/// The inner layer with no bias: `NoBias<Conv2d<3, 64, 7, 2, 3>>` is PyTorch's
/// `nn.Conv2d(3, 64, 7, 2, 3, bias=False)`. Its tensors keep the inner layer's names (no name
/// level is added), so its `state_dict` has `weight` only.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear, NoBias};
/// let dev = Cpu::seeded(0);
/// let layer = NoBias::<Linear<4, 2>>::build(&dev);
/// assert_eq!(nn::named_tensors(&layer).len(), 1); // "weight"
/// let x: Tensor<(usize, Const<4>), f32, Cpu> = dev.zeros_like(&(3, Const));
/// assert!(layer.forward(x).to_vec().iter().all(|&v| v == 0.0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct NoBias<M>(pub M);

impl<D: Device, M: BuildOn<D> + OptionalBias> BuildOn<D> for NoBias<M> {
    fn try_build(dev: &D) -> Result<Self> {
        let mut m = M::try_build(dev)?;
        m.remove_bias();
        Ok(Self(m))
    }
}

impl<D: Device, M: Params<D>> Params<D> for NoBias<M> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        self.0.visit_params(prefix, v);
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        self.0.visit_params_mut(prefix, v);
    }
}

delegate_forward!(NoBias);
