//! `Dropout`: zeroes elements with probability `p` in training mode and scales the rest by
//! `1 / (1 - p)`; the identity in inference mode (`nn.Dropout`).

use super::activation::stateless;
use super::{BuildOn, Module, ModuleMut, Params, Visitor, VisitorMut};
use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::Result;
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// Dropout with probability `p` (PyTorch's default 0.5), drawn from the device's generator.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Dropout;
/// let x: Tensor<Rank1<1000>, f32, Cpu> = Cpu::seeded(0).ones();
/// let mut d = Dropout::default();
/// assert_eq!(d.forward(x.clone()).to_vec(), x.to_vec()); // inference: identity
/// let kept = d.forward_mut(x).to_vec().iter().filter(|&&v| v != 0.0).count();
/// assert!(kept > 400 && kept < 600);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of zeroing an element.
    pub p: f64,
}

impl Default for Dropout {
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for Dropout {
    type Output = Tensor<S, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        Ok(x)
    }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> ModuleMut<Tensor<S, E, D, T>> for Dropout {
    type Output = Tensor<S, E, D, T>;
    fn try_forward_mut(&mut self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(crate::error::Error::InvalidSize {
                op: "dropout",
                reason: format!("p must lie in [0, 1], got {}", self.p),
            });
        }
        Ok(x.dropout(self.p))
    }
}

stateless!(Dropout);
