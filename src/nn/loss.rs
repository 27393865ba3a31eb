//! Regression and binary losses, as `torch.nn.functional`'s, composed from element-wise ops (so
//! their gradients come for free). Cross-entropy and NLL against class indices are tensor
//! methods (`logits.cross_entropy(&labels)`), fused.

use crate::autograd::{Merge, Tape};
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::{Rank0, Shape};
use crate::tensor::{Tensor, TensorFactory};

/// How per-element losses become one number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over every element (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

fn reduce<S: Shape, E: Float, D: Device, T: Tape<D>>(x: Tensor<S, E, D, T>, r: Reduction) -> Tensor<Rank0, E, D, T> {
    let len = x.numel();
    let n = len.max(1) as f64;
    let total = x.try_reshape_like(&(len,)).unwrap_or_else(|e| unreachable!("{e}")).sum::<Rank0, _>();
    match r {
        Reduction::Mean => total.mul_scalar(1.0 / n),
        Reduction::Sum => total,
    }
}

/// The merged tape of a prediction and a target.
type Out<E, D, T, R> = Tensor<Rank0, E, D, <T as Merge<D, R>>::Output>;

/// Both operands on one (merged) tape, so that every op between them keeps that tape type.
#[allow(clippy::type_complexity)]
fn join<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    a: Tensor<S, E, D, T>,
    b: Tensor<S, E, D, R>,
) -> (Tensor<S, E, D, <T as Merge<D, R>>::Output>, Tensor<S, E, D, <T as Merge<D, R>>::Output>) {
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let tape = ta.merge(tb);
    (a.put_tape(tape.clone()), b.put_tape(tape))
}

/// Mean (or summed) squared error (`F.mse_loss`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{mse_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = mse_loss(dev.tensor([1.0f32, 2.0]), dev.tensor([0.0f32, 4.0]), Reduction::Mean);
/// assert_eq!(l.to_array(), 2.5);
/// ```
pub fn mse_loss<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    r: Reduction,
) -> Out<E, D, T, R> {
    reduce((pred - target).square(), r)
}

/// Mean (or summed) absolute error (`F.l1_loss`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{l1_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// assert_eq!(l1_loss(dev.tensor([1.0f32, 2.0]), dev.tensor([0.0f32, 4.0]), Reduction::Sum).to_array(), 3.0);
/// ```
pub fn l1_loss<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    r: Reduction,
) -> Out<E, D, T, R> {
    reduce((pred - target).abs(), r)
}

/// `0.5 d² / beta` where `|d| < beta`, else `|d| - 0.5 beta` (`F.smooth_l1_loss`, default beta 1).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{smooth_l1_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = smooth_l1_loss(dev.tensor([0.5f64, 3.0]), dev.tensor([0.0f64, 0.0]), 1.0, Reduction::Sum);
/// assert_eq!(l.to_array(), 0.125 + 2.5);
/// ```
pub fn smooth_l1_loss<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    beta: f64,
    r: Reduction,
) -> Out<E, D, T, R> {
    let d = pred - target;
    let small = d.detach().abs().lt_scalar(E::cast_f64(beta));
    let quadratic = d.clone().square().mul_scalar(0.5 / beta);
    let linear = d.abs().sub_scalar(0.5 * beta);
    reduce(small.choose(quadratic, linear), r)
}

/// `0.5 d²` where `|d| <= delta`, else `delta (|d| - 0.5 delta)` (`F.huber_loss`, default delta 1).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{huber_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = huber_loss(dev.tensor([0.5f64, 3.0]), dev.tensor([0.0f64, 0.0]), 2.0, Reduction::Sum);
/// assert_eq!(l.to_array(), 0.125 + 2.0 * (3.0 - 1.0));
/// ```
pub fn huber_loss<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    delta: f64,
    r: Reduction,
) -> Out<E, D, T, R> {
    let d = pred - target;
    let small = d.detach().abs().le_scalar(E::cast_f64(delta));
    let quadratic = d.clone().square().mul_scalar(0.5);
    let linear = d.abs().sub_scalar(0.5 * delta).mul_scalar(delta);
    reduce(small.choose(quadratic, linear), r)
}

/// Binary cross-entropy of probabilities against targets in `[0, 1]` (`F.binary_cross_entropy`):
/// `-(t ln p + (1 - t) ln(1 - p))`, each log clamped at -100 as PyTorch does.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{binary_cross_entropy, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = binary_cross_entropy(dev.tensor([0.5f64]), dev.tensor([1.0f64]), Reduction::Mean);
/// assert!((l.to_array() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binary_cross_entropy<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    probs: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    r: Reduction,
) -> Out<E, D, T, R> {
    let (probs, target) = join(probs, target);
    let log_p = probs.clone().ln().clamp(-100.0, f64::INFINITY);
    let log_not_p = probs.rsub_scalar(1.0).ln().clamp(-100.0, f64::INFINITY);
    let not_t = target.clone().rsub_scalar(1.0);
    reduce((log_p * target + log_not_p * not_t).neg(), r)
}

/// Binary cross-entropy from logits, numerically stable (`F.binary_cross_entropy_with_logits`):
/// `max(x, 0) - x t + ln(1 + e^(-|x|))`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{binary_cross_entropy_with_logits, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = binary_cross_entropy_with_logits(dev.tensor([0.0f64, 1000.0]), dev.tensor([1.0f64, 1.0]), Reduction::Sum);
/// assert!((l.to_array() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binary_cross_entropy_with_logits<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    logits: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    r: Reduction,
) -> Out<E, D, T, R> {
    let (logits, target) = join(logits, target);
    let tail = logits.clone().abs().neg().exp().add_scalar(1.0).ln();
    let x_t = logits.clone() * target;
    reduce(logits.relu() - x_t + tail, r)
}

/// Kullback-Leibler divergence of `target` probabilities from `log_input` log-probabilities
/// (`F.kl_div(log_input, target)`): `t (ln t - x)`, 0 where `t = 0`. `Reduction::Mean` averages
/// over every element as PyTorch's default; divide a sum by the batch size for `batchmean`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{kl_div, Reduction};
/// let dev = Cpu::seeded(0);
/// let p = dev.tensor([0.5f64, 0.5]);
/// assert!(kl_div(p.clone().ln(), p, Reduction::Sum).to_array().abs() < 1e-12);
/// ```
pub fn kl_div<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    log_input: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    r: Reduction,
) -> Out<E, D, T, R> {
    let (log_input, target) = join(log_input, target);
    let shape = *target.shape();
    let positive = target.detach().gt_scalar(E::zero());
    // ln t where t > 0; 1 elsewhere, so the unused branch stays finite (its factor t is 0).
    let ones = target.device().full_like(&shape, E::one());
    let log_t = positive.choose(target.clone(), ones).ln();
    reduce(target.clone() * log_t - target * log_input, r)
}
