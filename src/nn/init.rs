//! Initialisers, as `torch.nn.init`: each returns a new tensor of the given shape drawn from the
//! device's generator. Fans follow PyTorch: `fan_in = dims[1] * receptive field`,
//! `fan_out = dims[0] * receptive field`, where the receptive field is the product of the dims
//! after the second (1 for a matrix).

use crate::compat::math;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::Shape;
use crate::tensor::{Tensor, TensorFactory};

/// `(fan_in, fan_out)` of a weight shape (a vector counts its length as both).
///
/// ```
/// use tensile::nn::init::fans;
/// assert_eq!(fans(&[128, 784]), (784, 128));
/// assert_eq!(fans(&[32, 3, 5, 5]), (75, 800));
/// ```
pub fn fans(dims: &[usize]) -> (usize, usize) {
    match dims {
        [] => (1, 1),
        [n] => (*n, *n),
        [o, i, rest @ ..] => {
            let field: usize = rest.iter().product();
            (i * field, o * field)
        }
    }
}

/// Uniform in `[lo, hi)` (`init.uniform_`).
///
/// ```
/// use tensile::prelude::*;
/// let t = tensile::nn::init::uniform::<_, f32, _>(&Cpu::seeded(0), &(Const::<100>,), -0.1, 0.1);
/// assert!(t.to_vec().iter().all(|v| (-0.1..0.1).contains(v)));
/// ```
pub fn uniform<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, lo: f64, hi: f64) -> Tensor<S, E, D> {
    dev.uniform_like(shape, lo, hi)
}

/// Normal with the given mean and standard deviation (`init.normal_`).
///
/// ```
/// use tensile::prelude::*;
/// let t = tensile::nn::init::normal::<_, f64, _>(&Cpu::seeded(0), &(Const::<1000>,), 2.0, 0.5);
/// let mean = t.to_vec().iter().sum::<f64>() / 1000.0;
/// assert!((mean - 2.0).abs() < 0.1);
/// ```
pub fn normal<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, mean: f64, std: f64) -> Tensor<S, E, D> {
    dev.normal_like(shape, mean, std)
}

/// The gain of a leaky ReLU with negative slope `a` (`init.calculate_gain("leaky_relu", a)`).
fn leaky_relu_gain(a: f64) -> f64 {
    math::sqrt(2.0 / (1.0 + a * a))
}

/// He/Kaiming uniform on the fan-in with a leaky-ReLU slope `a` (`init.kaiming_uniform_`):
/// `U(-b, b)`, `b = gain * sqrt(3 / fan_in)`. PyTorch's `Linear` and `Conv` weights use `a = √5`,
/// which makes `b = 1 / sqrt(fan_in)`.
///
/// ```
/// use tensile::prelude::*;
/// let w = tensile::nn::init::kaiming_uniform::<_, f32, _>(&Cpu::seeded(0), &(Const::<8>, Const::<100>), 5f64.sqrt());
/// assert!(w.to_vec().iter().all(|v| v.abs() <= 0.1));
/// ```
pub fn kaiming_uniform<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, a: f64) -> Tensor<S, E, D> {
    let (fan_in, _) = fans(shape.dims().as_slice());
    let bound = leaky_relu_gain(a) * math::sqrt(3.0 / fan_in.max(1) as f64);
    dev.uniform_like(shape, -bound, bound)
}

/// He/Kaiming normal on the fan-in (`init.kaiming_normal_`): `N(0, gain / sqrt(fan_in))`.
///
/// ```
/// use tensile::prelude::*;
/// let w = tensile::nn::init::kaiming_normal::<_, f64, _>(&Cpu::seeded(0), &(Const::<200>, Const::<50>), 0.0);
/// let var = w.to_vec().iter().map(|v| v * v).sum::<f64>() / 10_000.0;
/// assert!((var - 2.0 / 50.0).abs() < 0.005);
/// ```
pub fn kaiming_normal<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, a: f64) -> Tensor<S, E, D> {
    let (fan_in, _) = fans(shape.dims().as_slice());
    dev.normal_like(shape, 0.0, leaky_relu_gain(a) / math::sqrt(fan_in.max(1) as f64))
}

/// Glorot/Xavier uniform (`init.xavier_uniform_`): `U(-b, b)`, `b = gain * sqrt(6 / (fan_in + fan_out))`.
///
/// ```
/// use tensile::prelude::*;
/// let w = tensile::nn::init::xavier_uniform::<_, f32, _>(&Cpu::seeded(0), &(Const::<3>, Const::<3>), 1.0);
/// assert!(w.to_vec().iter().all(|v| v.abs() <= 1.0));
/// ```
pub fn xavier_uniform<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, gain: f64) -> Tensor<S, E, D> {
    let (fan_in, fan_out) = fans(shape.dims().as_slice());
    let bound = gain * math::sqrt(6.0 / (fan_in + fan_out).max(1) as f64);
    dev.uniform_like(shape, -bound, bound)
}

/// Glorot/Xavier normal (`init.xavier_normal_`): `N(0, gain * sqrt(2 / (fan_in + fan_out)))`.
///
/// ```
/// use tensile::prelude::*;
/// let w = tensile::nn::init::xavier_normal::<_, f64, _>(&Cpu::seeded(0), &(Const::<100>, Const::<100>), 1.0);
/// let var = w.to_vec().iter().map(|v| v * v).sum::<f64>() / 10_000.0;
/// assert!((var - 0.01).abs() < 0.002);
/// ```
pub fn xavier_normal<S: Shape, E: Float, D: Device>(dev: &D, shape: &S, gain: f64) -> Tensor<S, E, D> {
    let (fan_in, fan_out) = fans(shape.dims().as_slice());
    dev.normal_like(shape, 0.0, gain * math::sqrt(2.0 / (fan_in + fan_out).max(1) as f64))
}
