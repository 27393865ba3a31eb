//! Losses, as `torch.nn.functional`'s, composed from element-wise ops and the fused
//! cross-entropy (so their gradients come for free).
//!
//! Each loss takes a [`Reduction`] (`Mean`, PyTorch's default, or `Sum`) and gives a scalar; its
//! `*_per_element` (or `*_per_sample`) form is PyTorch's `reduction="none"`.

use crate::autograd::{Merge, Tape};
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::{Float, IndexDtype};
use crate::error::{Error, Result};
use crate::shapes::{Axis, Dim, Rank0, Shape};
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

/// The sum of every element, as a scalar.
fn total<S: Shape, E: Float, D: Device, T: Tape<D>>(x: Tensor<S, E, D, T>) -> Tensor<Rank0, E, D, T> {
    let len = x.numel();
    x.try_reshape_like(&(len,)).unwrap_or_else(|e| unreachable!("{e}")).sum::<Rank0, _>()
}

fn reduce<S: Shape, E: Float, D: Device, T: Tape<D>>(x: Tensor<S, E, D, T>, r: Reduction) -> Tensor<Rank0, E, D, T> {
    let n = x.numel().max(1) as f64;
    match r {
        Reduction::Mean => total(x).mul_scalar(1.0 / n),
        Reduction::Sum => total(x),
    }
}

/// The merged tape of two operands.
type Joined<S, E, D, T, R> = Tensor<S, E, D, <T as Merge<D, R>>::Output>;
/// A scalar loss on the merged tape of a prediction and a target.
type Out<E, D, T, R> = Joined<Rank0, E, D, T, R>;

/// Both operands on one (merged) tape, so that every op between them keeps that tape type.
fn join<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    a: Tensor<S, E, D, T>,
    b: Tensor<S, E, D, R>,
) -> (Joined<S, E, D, T, R>, Joined<S, E, D, T, R>) {
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let tape = ta.merge(tb);
    (a.put_tape(tape.clone()), b.put_tape(tape))
}

/// Declares the reduced form of a per-element loss: same arguments plus a [`Reduction`].
macro_rules! reduced {
    ($(#[$doc:meta])* $name:ident = $per:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
            pred: Tensor<S, E, D, T>,
            target: Tensor<S, E, D, R>,
            $($arg: $ty,)*
            r: Reduction,
        ) -> Out<E, D, T, R> {
            reduce($per(pred, target $(, $arg)*), r)
        }
    };
}

/// Squared error per element, `(p - t)²`.
pub fn mse_loss_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
) -> Joined<S, E, D, T, R> {
    (pred - target).square()
}

reduced!(
    /// Mean (or summed) squared error (`F.mse_loss`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{mse_loss, Reduction};
    /// let dev = Cpu::seeded(0);
    /// let l = mse_loss(dev.tensor([1.0f32, 2.0]), dev.tensor([0.0f32, 4.0]), Reduction::Mean);
    /// assert_eq!(l.to_array(), 2.5);
    /// ```
    mse_loss = mse_loss_per_element()
);

/// Absolute error per element, `|p - t|`.
pub fn l1_loss_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
) -> Joined<S, E, D, T, R> {
    (pred - target).abs()
}

reduced!(
    /// Mean (or summed) absolute error (`F.l1_loss`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{l1_loss, Reduction};
    /// let dev = Cpu::seeded(0);
    /// assert_eq!(l1_loss(dev.tensor([1.0f32, 2.0]), dev.tensor([0.0f32, 4.0]), Reduction::Sum).to_array(), 3.0);
    /// ```
    l1_loss = l1_loss_per_element()
);

/// `0.5 d² / beta` where `|d| < beta`, else `|d| - 0.5 beta`, per element.
pub fn smooth_l1_loss_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    beta: f64,
) -> Joined<S, E, D, T, R> {
    let d = pred - target;
    let small = d.detach().abs().lt_scalar(E::cast_f64(beta));
    let quadratic = d.clone().square().mul_scalar(0.5 / beta);
    let linear = d.abs().sub_scalar(0.5 * beta);
    small.choose(quadratic, linear)
}

reduced!(
    /// `0.5 d² / beta` where `|d| < beta`, else `|d| - 0.5 beta` (`F.smooth_l1_loss`, default beta 1).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{smooth_l1_loss, Reduction};
    /// let dev = Cpu::seeded(0);
    /// let l = smooth_l1_loss(dev.tensor([0.5f64, 3.0]), dev.tensor([0.0f64, 0.0]), 1.0, Reduction::Sum);
    /// assert_eq!(l.to_array(), 0.125 + 2.5);
    /// ```
    smooth_l1_loss = smooth_l1_loss_per_element(beta: f64)
);

/// `0.5 d²` where `|d| <= delta`, else `delta (|d| - 0.5 delta)`, per element.
pub fn huber_loss_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    pred: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    delta: f64,
) -> Joined<S, E, D, T, R> {
    let d = pred - target;
    let small = d.detach().abs().le_scalar(E::cast_f64(delta));
    let quadratic = d.clone().square().mul_scalar(0.5);
    let linear = d.abs().sub_scalar(0.5 * delta).mul_scalar(delta);
    small.choose(quadratic, linear)
}

reduced!(
    /// `0.5 d²` where `|d| <= delta`, else `delta (|d| - 0.5 delta)` (`F.huber_loss`, default delta 1).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{huber_loss, Reduction};
    /// let dev = Cpu::seeded(0);
    /// let l = huber_loss(dev.tensor([0.5f64, 3.0]), dev.tensor([0.0f64, 0.0]), 2.0, Reduction::Sum);
    /// assert_eq!(l.to_array(), 0.125 + 2.0 * (3.0 - 1.0));
    /// ```
    huber_loss = huber_loss_per_element(delta: f64)
);

/// `-(t ln p + (1 - t) ln(1 - p))` per element, each log clamped at -100 as PyTorch does.
pub fn binary_cross_entropy_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    probs: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
) -> Joined<S, E, D, T, R> {
    let (probs, target) = join(probs, target);
    let log_p = probs.clone().ln().clamp(-100.0, f64::INFINITY);
    let log_not_p = probs.rsub_scalar(1.0).ln().clamp(-100.0, f64::INFINITY);
    let not_t = target.clone().rsub_scalar(1.0);
    (log_p * target + log_not_p * not_t).neg()
}

reduced!(
    /// Binary cross-entropy of probabilities against targets in `[0, 1]` (`F.binary_cross_entropy`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{binary_cross_entropy, Reduction};
    /// let dev = Cpu::seeded(0);
    /// let l = binary_cross_entropy(dev.tensor([0.5f64]), dev.tensor([1.0f64]), Reduction::Mean);
    /// assert!((l.to_array() - 2f64.ln()).abs() < 1e-12);
    /// ```
    binary_cross_entropy = binary_cross_entropy_per_element()
);

/// Binary cross-entropy from logits per element, numerically stable, with an optional weight
/// of the positive class (`pos_weight`, the shape of the logits: broadcast it first):
/// `(1 - t) x + (1 + (w - 1) t) (ln(1 + e^(-|x|)) + max(-x, 0))`, as PyTorch computes it.
pub fn binary_cross_entropy_with_logits_per_element<
    S: Shape,
    E: Float,
    D: Device,
    T: Tape<D> + Merge<D, R>,
    R: Tape<D>,
>(
    logits: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    pos_weight: Option<&Tensor<S, E, D>>,
) -> Joined<S, E, D, T, R> {
    let (logits, target) = join(logits, target);
    // ln(1 + e^(-x)) = ln(1 + e^(-|x|)) + max(-x, 0), finite for any x
    let softplus_neg = logits.clone().abs().neg().exp().add_scalar(1.0).ln() + logits.clone().neg().relu();
    let not_t = target.clone().rsub_scalar(1.0);
    let weight = match pos_weight {
        None => return not_t * logits + softplus_neg,
        Some(w) => target * w.clone().sub_scalar(1.0),
    };
    not_t * logits + weight.add_scalar(1.0) * softplus_neg
}

/// Binary cross-entropy from logits, numerically stable (`F.binary_cross_entropy_with_logits`).
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
    reduce(binary_cross_entropy_with_logits_per_element(logits, target, None), r)
}

/// [`binary_cross_entropy_with_logits`] with the positive class weighted by `pos_weight`
/// (PyTorch's `pos_weight`; same shape as the logits).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{binary_cross_entropy_with_logits_weighted, Reduction};
/// let dev = Cpu::seeded(0);
/// let w = dev.tensor([3.0f64]);
/// let l = binary_cross_entropy_with_logits_weighted(dev.tensor([0.0f64]), dev.tensor([1.0f64]), &w, Reduction::Sum);
/// assert!((l.to_array() - 3.0 * 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binary_cross_entropy_with_logits_weighted<
    S: Shape,
    E: Float,
    D: Device,
    T: Tape<D> + Merge<D, R>,
    R: Tape<D>,
>(
    logits: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
    pos_weight: &Tensor<S, E, D>,
    r: Reduction,
) -> Out<E, D, T, R> {
    reduce(binary_cross_entropy_with_logits_per_element(logits, target, Some(pos_weight)), r)
}

/// `t (ln t - x)` per element, 0 where `t = 0`.
pub fn kl_div_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    log_input: Tensor<S, E, D, T>,
    target: Tensor<S, E, D, R>,
) -> Joined<S, E, D, T, R> {
    let (log_input, target) = join(log_input, target);
    let shape = *target.shape();
    let positive = target.detach().gt_scalar(E::zero());
    // ln t where t > 0; 1 elsewhere, so the unused branch stays finite (its factor t is 0).
    let ones = target.device().full_like(&shape, E::one());
    let log_t = positive.choose(target.clone(), ones).ln();
    target.clone() * log_t - target * log_input
}

reduced!(
    /// Kullback-Leibler divergence of `target` probabilities from log-probabilities
    /// (`F.kl_div(log_input, target)`). `Reduction::Mean` averages over every element as
    /// PyTorch's default; divide a sum by the batch size for `batchmean`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::loss::{kl_div, Reduction};
    /// let dev = Cpu::seeded(0);
    /// let p = dev.tensor([0.5f64, 0.5]);
    /// assert!(kl_div(p.clone().ln(), p, Reduction::Sum).to_array().abs() < 1e-12);
    /// ```
    kl_div = kl_div_per_element()
);

/// `max(0, -y (x1 - x2) + margin)` per element, `y` of ±1 (no gradient).
pub fn margin_ranking_loss_per_element<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    x1: Tensor<S, E, D, T>,
    x2: Tensor<S, E, D, R>,
    y: &Tensor<S, E, D>,
    margin: f64,
) -> Joined<S, E, D, T, R> {
    (x1 - x2).try_mul(y.clone().neg()).unwrap_or_else(|e| unreachable!("{e}")).add_scalar(margin).relu()
}

/// `mean(max(0, -y (x1 - x2) + margin))` (`F.margin_ranking_loss`): `y = 1` asks for `x1`
/// above `x2` by `margin`, `y = -1` the other way.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{margin_ranking_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// let l = margin_ranking_loss(dev.tensor([1.0f64, 0.0]), dev.tensor([0.0f64, 0.5]), &dev.tensor([1.0, 1.0]), 0.1, Reduction::Sum);
/// assert!((l.to_array() - 0.6).abs() < 1e-12);
/// ```
pub fn margin_ranking_loss<S: Shape, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    x1: Tensor<S, E, D, T>,
    x2: Tensor<S, E, D, R>,
    y: &Tensor<S, E, D>,
    margin: f64,
    r: Reduction,
) -> Out<E, D, T, R> {
    reduce(margin_ranking_loss_per_element(x1, x2, y, margin), r)
}

/// Per sample: `1 - cos(x1, x2)` where `y = 1`, `max(0, cos - margin)` where `y = -1`; the
/// cosine over the feature axis with PyTorch's `1e-12` added to each squared norm.
pub fn cosine_embedding_loss_per_sample<N: Dim, F: Dim, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    x1: Tensor<(N, F), E, D, T>,
    x2: Tensor<(N, F), E, D, R>,
    y: &Tensor<(N,), E, D>,
) -> Result<Joined<(N,), E, D, T, R>> {
    cosine_embedding(x1, x2, y, 0.0)
}

fn cosine_embedding<N: Dim, F: Dim, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    x1: Tensor<(N, F), E, D, T>,
    x2: Tensor<(N, F), E, D, R>,
    y: &Tensor<(N,), E, D>,
    margin: f64,
) -> Result<Joined<(N,), E, D, T, R>> {
    if x1.dims() != x2.dims() || y.dims()[0] != x1.dims()[0] {
        return Err(Error::ShapeMismatch {
            op: "cosine_embedding_loss",
            lhs: x1.dims().to_vec(),
            rhs: x2.dims().to_vec(),
        });
    }
    let (a, b) = join(x1, x2);
    let dot = (a.clone() * b.clone()).sum::<(N,), Axis<1>>();
    let norms = (a.square().sum::<(N,), Axis<1>>().add_scalar(1e-12)
        * b.square().sum::<(N,), Axis<1>>().add_scalar(1e-12))
    .sqrt();
    let cos = dot / norms;
    let similar = y.gt_scalar(E::zero());
    Ok(similar.choose(cos.clone().rsub_scalar(1.0), cos.sub_scalar(margin).relu()))
}

/// `F.cosine_embedding_loss(x1, x2, y, margin)`: pulls pairs with `y = 1` together and pushes
/// pairs with `y = -1` below cosine `margin`. `Err` when the shapes differ at run time.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{cosine_embedding_loss, Reduction};
/// let dev = Cpu::seeded(0);
/// let a = dev.tensor([[1.0f64, 0.0], [1.0, 0.0]]);
/// let b = dev.tensor([[1.0f64, 0.0], [0.0, 1.0]]);
/// let l = cosine_embedding_loss(a, b, &dev.tensor([1.0, -1.0]), 0.0, Reduction::Sum).unwrap();
/// assert!(l.to_array().abs() < 1e-9); // same direction, and orthogonal at margin 0
/// ```
pub fn cosine_embedding_loss<N: Dim, F: Dim, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    x1: Tensor<(N, F), E, D, T>,
    x2: Tensor<(N, F), E, D, R>,
    y: &Tensor<(N,), E, D>,
    margin: f64,
    r: Reduction,
) -> Result<Out<E, D, T, R>> {
    Ok(reduce(cosine_embedding(x1, x2, y, margin)?, r))
}

/// Options of the losses against class indices (PyTorch's keyword arguments of the same names).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassTargets {
    /// Samples whose target is this index add nothing, and the mean is over the others
    /// (PyTorch's `ignore_index`, there -100 by default; here `None`, ignore nothing).
    pub ignore_index: Option<i64>,
    /// Mixes the one-hot target with the uniform distribution: `(1 - ε) onehot + ε / C`
    /// (`label_smoothing`; cross-entropy only).
    pub label_smoothing: f64,
}

/// The targets with ignored ones replaced by class 0 (so the fused kernels see valid indices),
/// and the mask of kept samples.
fn kept_targets<N: Dim, I: IndexDtype, D: Device>(
    target: &Tensor<(N,), I, D>,
    ignore: Option<i64>,
) -> (Tensor<(N,), I, D>, Vec<bool>) {
    let values = target.to_vec();
    let keep: Vec<bool> = values.iter().map(|v| ignore != Some(v.as_f64() as i64)).collect();
    if keep.iter().all(|&k| k) {
        return (target.clone(), keep);
    }
    let safe = values.iter().zip(&keep).map(|(&v, &k)| if k { v } else { I::from_index(0) }).collect();
    (target.device().from_vec(safe, *target.shape()), keep)
}

/// `per_sample` with ignored samples zeroed.
fn masked<N: Dim, E: Float, D: Device, T: Tape<D>>(
    per_sample: Tensor<(N,), E, D, T>,
    keep: &[bool],
) -> Tensor<(N,), E, D, T> {
    if keep.iter().all(|&k| k) {
        return per_sample;
    }
    let shape = *per_sample.shape();
    let mask = per_sample.device().from_vec(keep.iter().map(|&k| E::cast_f64(k as u8 as f64)).collect(), shape);
    per_sample * mask
}

/// Sum, or mean over the kept samples (NaN when none is kept, as PyTorch).
fn reduce_kept<N: Dim, E: Float, D: Device, T: Tape<D>>(
    per_sample: Tensor<(N,), E, D, T>,
    keep: &[bool],
    r: Reduction,
) -> Tensor<Rank0, E, D, T> {
    let sum = per_sample.sum::<Rank0, _>();
    match r {
        Reduction::Sum => sum,
        Reduction::Mean => sum.mul_scalar(1.0 / keep.iter().filter(|&&k| k).count() as f64),
    }
}

/// Cross-entropy of logits `(N, C)` against class indices per sample, with PyTorch's
/// `ignore_index` (ignored samples give 0) and `label_smoothing`. `Err` when a kept target is
/// not a class or the batch sizes differ.
pub fn cross_entropy_per_sample<N: Dim, C: Dim, I: IndexDtype, E: Float, D: Device, T: Tape<D>>(
    logits: Tensor<(N, C), E, D, T>,
    target: &Tensor<(N,), I, D>,
    opts: ClassTargets,
) -> Result<Tensor<(N,), E, D, T>> {
    Ok(cross_entropy_kept(logits, target, opts)?.0)
}

fn cross_entropy_kept<N: Dim, C: Dim, I: IndexDtype, E: Float, D: Device, T: Tape<D>>(
    logits: Tensor<(N, C), E, D, T>,
    target: &Tensor<(N,), I, D>,
    opts: ClassTargets,
) -> Result<(Tensor<(N,), E, D, T>, Vec<bool>)> {
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::InvalidSize {
            op: "cross_entropy",
            reason: format!("label_smoothing must lie in [0, 1], got {eps}"),
        });
    }
    let (safe, keep) = kept_targets(target, opts.ignore_index);
    let classes = logits.shape().1.size().max(1) as f64;
    let ce = if eps > 0.0 {
        let uniform = logits.clone().log_softmax::<Axis<1>>().sum::<(N,), Axis<1>>().mul_scalar(-eps / classes);
        logits.try_cross_entropy_per_sample(&safe)?.mul_scalar(1.0 - eps) + uniform
    } else {
        logits.try_cross_entropy_per_sample(&safe)?
    };
    Ok((masked(ce, &keep), keep))
}

/// `F.cross_entropy(logits, target, ignore_index=.., label_smoothing=.., reduction=..)`
/// against class indices; the mean is over the samples not ignored.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{cross_entropy, ClassTargets, Reduction};
/// let dev = Cpu::seeded(0);
/// let logits: Tensor<Rank2<3, 4>, f64, Cpu> = dev.zeros();
/// let target = dev.tensor([1i64, -100, 2]);
/// let opts = ClassTargets { ignore_index: Some(-100), label_smoothing: 0.1 };
/// let l = cross_entropy(logits, &target, opts, Reduction::Mean).unwrap();
/// assert!((l.to_array() - 4f64.ln()).abs() < 1e-12); // uniform logits: ln C whatever the smoothing
/// ```
pub fn cross_entropy<N: Dim, C: Dim, I: IndexDtype, E: Float, D: Device, T: Tape<D>>(
    logits: Tensor<(N, C), E, D, T>,
    target: &Tensor<(N,), I, D>,
    opts: ClassTargets,
    r: Reduction,
) -> Result<Tensor<Rank0, E, D, T>> {
    let (per_sample, keep) = cross_entropy_kept(logits, target, opts)?;
    Ok(reduce_kept(per_sample, &keep, r))
}

/// `F.nll_loss(log_probs, target, ignore_index=.., reduction=..)`; the mean is over the samples
/// not ignored.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{nll_loss, ClassTargets, Reduction};
/// let dev = Cpu::seeded(0);
/// let logp = dev.tensor([[-0.5f32, -1.0], [-2.0, -0.1]]);
/// let opts = ClassTargets { ignore_index: Some(0), ..Default::default() };
/// assert_eq!(nll_loss(logp, &dev.tensor([1i64, 0]), opts, Reduction::Mean).unwrap().to_array(), 1.0);
/// ```
pub fn nll_loss<N: Dim, C: Dim, I: IndexDtype, E: Float, D: Device, T: Tape<D>>(
    log_probs: Tensor<(N, C), E, D, T>,
    target: &Tensor<(N,), I, D>,
    opts: ClassTargets,
    r: Reduction,
) -> Result<Tensor<Rank0, E, D, T>> {
    let (safe, keep) = kept_targets(target, opts.ignore_index);
    let per_sample = masked(log_probs.try_nll_loss_per_sample(&safe)?, &keep);
    Ok(reduce_kept(per_sample, &keep, r))
}

/// Cross-entropy of logits against class probabilities per sample, `-Σ_c p_c log_softmax(x)_c`,
/// with the targets smoothed first: `(1 - ε) p + ε / C` (PyTorch's `label_smoothing`).
pub fn cross_entropy_probs_per_sample<N: Dim, C: Dim, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    logits: Tensor<(N, C), E, D, T>,
    probs: Tensor<(N, C), E, D, R>,
    label_smoothing: f64,
) -> Joined<(N,), E, D, T, R> {
    let classes = logits.shape().1.size().max(1) as f64;
    let probs = if label_smoothing > 0.0 {
        probs.mul_scalar(1.0 - label_smoothing).add_scalar(label_smoothing / classes)
    } else {
        probs
    };
    (logits.log_softmax::<Axis<1>>() * probs).sum::<(N,), Axis<1>>().neg()
}

/// `F.cross_entropy(logits, probs, label_smoothing=.., reduction=..)` with soft targets; the
/// mean is over the samples.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::loss::{cross_entropy_probs, Reduction};
/// let dev = Cpu::seeded(0);
/// let logits: Tensor<Rank2<1, 2>, f64, Cpu> = dev.zeros();
/// let l = cross_entropy_probs(logits, dev.tensor([[0.25, 0.75]]), 0.0, Reduction::Mean);
/// assert!((l.to_array() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn cross_entropy_probs<N: Dim, C: Dim, E: Float, D: Device, T: Tape<D> + Merge<D, R>, R: Tape<D>>(
    logits: Tensor<(N, C), E, D, T>,
    probs: Tensor<(N, C), E, D, R>,
    label_smoothing: f64,
    r: Reduction,
) -> Out<E, D, T, R> {
    reduce(cross_entropy_probs_per_sample(logits, probs, label_smoothing), r)
}
