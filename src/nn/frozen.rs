//! `Frozen<M>`: a module whose parameters are not trained (PyTorch's `requires_grad_(False)` on
//! a sub-module), for fine-tuning a part of a model.

use super::{BuildOn, Params, TensorKind, Visitor, VisitorMut, delegate_forward};
use crate::device::Device;
use crate::dtypes::{Dtype, Float};
use crate::error::Result;
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// The inner module with its parameters frozen: they are visited as [`TensorKind::Frozen`], so
/// [`alloc_grads`](super::alloc_grads) keeps no gradient for them and optimisers leave them as
/// they are; they are still saved and loaded under the inner module's names (no name level is
/// added). The forward pass is the inner module's, in both modes.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Frozen, Linear, ReLU};
/// let dev = Cpu::seeded(0);
/// let model = <(Frozen<Linear<4, 8>>, ReLU, Linear<8, 2>)>::build(&dev);
/// assert_eq!(nn::num_params(&model), 4 * 8 + 8 + 8 * 2 + 2);
/// assert_eq!(nn::num_trainable_params(&model), 8 * 2 + 2);
/// let x: Tensor<(usize, Const<4>), f32, Cpu> = dev.randn_like(&(3, Const));
/// let grads = model.forward(x.trace(nn::alloc_grads(&model))).sum::<Rank0, _>().backward();
/// assert!(grads.try_get(&model.0.0.weight).is_err()); // frozen: no gradient kept
/// assert!(grads.try_get(&model.2.weight).is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Frozen<M>(pub M);

impl<D: Device, M: BuildOn<D>> BuildOn<D> for Frozen<M> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self(M::try_build(dev)?))
    }
}

/// Passes every tensor on, parameters as frozen.
struct Freeze<'a, V>(&'a mut V);

fn frozen(kind: TensorKind) -> TensorKind {
    if kind == TensorKind::Parameter { TensorKind::Frozen } else { kind }
}

impl<D: Device, V: Visitor<D>> Visitor<D> for Freeze<'_, V> {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
        self.0.visit(name, frozen(kind), t);
    }
    fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        self.0.visit_non_float(name, t);
    }
}

impl<D: Device, V: VisitorMut<D>> VisitorMut<D> for Freeze<'_, V> {
    fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &mut Tensor<S, E, D>) {
        self.0.visit_mut(name, frozen(kind), t);
    }
    fn visit_non_float_mut<S: Shape, E: Dtype>(&mut self, name: &str, t: &mut Tensor<S, E, D>) {
        self.0.visit_non_float_mut(name, t);
    }
}

impl<D: Device, M: Params<D>> Params<D> for Frozen<M> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        self.0.visit_params(prefix, &mut Freeze(v));
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        self.0.visit_params_mut(prefix, &mut Freeze(v));
    }
}

delegate_forward!(Frozen);
