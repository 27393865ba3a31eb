//! Activation modules: stateless wrappers of the element-wise ops, for use in tuples.

use super::{BuildOn, Module, Params, Visitor, VisitorMut, same_in_training};
use crate::autograd::Tape;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::Result;
use crate::shapes::Shape;
use crate::tensor::Tensor;

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name;

        impl<S: Shape, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for $name {
            type Output = Tensor<S, E, D, T>;
            fn try_forward(&self, $x: Tensor<S, E, D, T>) -> Result<Self::Output> {
                Ok($body)
            }
        }
        same_in_training!([] $name);
        stateless!($name);
    };
}

/// A module without tensors: built from nothing (its `Default`), visits nothing. Generic
/// parameters go in brackets first: `stateless!([const K: usize] MaxPool2d<K>)`.
macro_rules! stateless {
    ([$($g:tt)*] $ty:ty) => {
        impl<D: Device, $($g)*> BuildOn<D> for $ty {
            fn try_build(_: &D) -> Result<Self> {
                Ok(Default::default())
            }
        }
        impl<D: Device, $($g)*> Params<D> for $ty {
            fn visit_params<V: Visitor<D>>(&self, _: &str, _: &mut V) {}
            fn visit_params_mut<V: VisitorMut<D>>(&mut self, _: &str, _: &mut V) {}
        }
    };
    ($name:ty) => {
        stateless!([] $name);
    };
}
pub(crate) use stateless;

activation!(
    /// `max(x, 0)` (`nn.ReLU`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::ReLU;
    /// let y = ReLU.forward(Cpu::seeded(0).tensor([-1.0f32, 2.0]));
    /// assert_eq!(y.to_vec(), vec![0.0, 2.0]);
    /// ```
    ReLU, |x| x.relu()
);
activation!(
    /// GELU, exact form (`nn.GELU()`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::GELU;
    /// assert_eq!(GELU.forward(Cpu::seeded(0).tensor([0.0f32])).to_vec(), vec![0.0]);
    /// ```
    GELU, |x| x.gelu()
);
activation!(
    /// `x σ(x)` (`nn.SiLU`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::SiLU;
    /// assert_eq!(SiLU.forward(Cpu::seeded(0).tensor([0.0f32])).to_vec(), vec![0.0]);
    /// ```
    SiLU, |x| x.silu()
);
activation!(
    /// `tanh(x)` (`nn.Tanh`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::Tanh;
    /// assert_eq!(Tanh.forward(Cpu::seeded(0).tensor([0.0f32])).to_vec(), vec![0.0]);
    /// ```
    Tanh, |x| x.tanh()
);
activation!(
    /// `1 / (1 + e^-x)` (`nn.Sigmoid`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::Sigmoid;
    /// assert_eq!(Sigmoid.forward(Cpu::seeded(0).tensor([0.0f32])).to_vec(), vec![0.5]);
    /// ```
    Sigmoid, |x| x.sigmoid()
);

/// `x` if positive, else `slope * x` (`nn.LeakyReLU`, default slope 0.01).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::LeakyReLU;
/// let y = LeakyReLU::default().forward(Cpu::seeded(0).tensor([-100.0f32, 2.0]));
/// assert_eq!(y.to_vec(), vec![-1.0, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    /// The slope for negative inputs.
    pub slope: f64,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        Self { slope: 0.01 }
    }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for LeakyReLU {
    type Output = Tensor<S, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        Ok(x.leaky_relu(self.slope))
    }
}
same_in_training!([] LeakyReLU);
stateless!(LeakyReLU);

activation!(
    /// Softmax over the last axis (`nn.Softmax(dim=-1)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::Softmax;
    /// assert_eq!(Softmax.forward(Cpu::seeded(0).tensor([[0.0f32, 0.0]])).to_vec(), vec![0.5, 0.5]);
    /// ```
    Softmax, |x| x.softmax_last()
);
activation!(
    /// Log-softmax over the last axis (`nn.LogSoftmax(dim=-1)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::LogSoftmax;
    /// let y = LogSoftmax.forward(Cpu::seeded(0).tensor([[0.0f64, 0.0]])).to_vec();
    /// assert!((y[0] + 2f64.ln()).abs() < 1e-12);
    /// ```
    LogSoftmax, |x| x.log_softmax_last()
);
