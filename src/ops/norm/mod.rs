//! Normalisation: layer norm and RMS norm over the last axis (one fused kernel each way), group
//! norm (the same kernel over groups of channels), and batch norm with training and evaluation
//! statistics (composed from reductions, so its gradient comes from theirs).

use crate::autograd::{Merge, NoTape, OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Axes2, Axes3, Axis, Dim, LastDim, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// The tape of an op with three operands.
pub type Merged3<D, A, B, C> = <<A as Merge<D, B>>::Output as Merge<D, C>>::Output;

/// The fused row-normalisation primitive over the last axis, with an optional affine.
#[allow(clippy::too_many_arguments)]
fn norm_op<S: Shape, M: Dim, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S, E, D, NoTape>,
    tape: T,
    w: Option<Tensor<(M,), E, D, NoTape>>,
    b: Option<Tensor<(M,), E, D, NoTape>>,
    row: usize,
    eps: f64,
    center: bool,
    name: &'static str,
) -> Tensor<S, E, D, T> {
    let dev = x.device.clone();
    let xd = dev.contiguous(x.data.clone(), &x.layout());
    let wd = w.as_ref().map(|w| dev.contiguous(w.data.clone(), &w.layout()));
    let bd = b.as_ref().map(|b| dev.contiguous(b.data.clone(), &b.layout()));
    let (y, stats) = dev.norm_rows(&xd, row, eps, center, wd.as_deref(), bd.as_deref());
    let out = Tensor::from_storage(dev.clone(), y, x.shape);
    if T::TAPED {
        let stats = Arc::new(stats);
        let (xid, oid, n) = (x.id, out.id, x.shape.numel());
        let (wid, bid) = (w.as_ref().map(|w| w.id), b.as_ref().map(|b| b.id));
        let mut ins = vec![(xid, n)];
        ins.extend(wid.map(|id| (id, row)));
        ins.extend(bid.map(|id| (id, row)));
        let ids = ins.iter().map(|(id, _)| *id).collect();
        crate::autograd::capture(&tape, &x);
        if let Some(w) = &w {
            crate::autograd::capture(&tape, w);
        }
        if let Some(b) = &b {
            crate::autograd::capture(&tape, b);
        }
        let op = crate::export::Op::Norm { eps, center, weight: w.is_some(), bias: b.is_some() };
        let record = OpRecord::new(name, ids, oid, x.shape.dims()).exports(op, E::DTYPE);
        tape.add_backward_op(record, move |grads| {
            grads.backward_step_many_write::<E>(&dev, oid, &ins, |gy, bufs, acc| {
                let (gx, rest) = bufs.split_first_mut().expect("x's gradient");
                let (mut rest, mut flags) = (rest.iter_mut(), acc[1..].iter());
                let (gw, aw) = (wid.and_then(|_| rest.next()), wid.is_none_or(|_| *flags.next().expect("w's flag")));
                let (gb, ab) = (bid.and_then(|_| rest.next()), bid.is_none_or(|_| *flags.next().expect("b's flag")));
                dev.norm_rows_backward(&xd, row, center, &stats, wd.as_deref(), gy, gx, [acc[0], aw, ab], gw, gb);
            });
            Ok(())
        });
    }
    out.put_tape(tape)
}

fn check_features(op: &'static str, x: usize, p: usize) -> Result<()> {
    if x != p {
        return Err(Error::ShapeMismatch { op, lhs: vec![x], rhs: vec![p] });
    }
    Ok(())
}

impl<S: LastDim, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Layer normalisation over the last axis with a learned scale and shift (PyTorch's
    /// `F.layer_norm(x, (M,), w, b, eps)`): `(x - mean) / sqrt(var + eps) * w + b`, with the
    /// biased variance.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[1.0f32, 2.0, 3.0]]);
    /// let (w, b): (Tensor<Rank1<3>, f32, Cpu>, Tensor<Rank1<3>, f32, Cpu>) = (dev.ones(), dev.zeros());
    /// let y = x.layer_norm(w, b, 1e-5).to_vec();
    /// assert!((y[0] + 1.2247).abs() < 1e-3 && y[1].abs() < 1e-6);
    /// ```
    pub fn layer_norm<Tw: Tape<D>, Tb: Tape<D>>(
        self,
        weight: Tensor<(S::Last,), E, D, Tw>,
        bias: Tensor<(S::Last,), E, D, Tb>,
        eps: f64,
    ) -> Tensor<S, E, D, Merged3<D, T, Tw, Tb>>
    where
        T: Merge<D, Tw>,
        <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
    {
        self.try_layer_norm(weight, bias, eps).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::layer_norm`], returning `Err` when a run-time feature count differs from the
    /// weight's or the bias's.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(2, 3));
    /// let w: Tensor<(usize,), f32, Cpu> = dev.ones_like(&(4,));
    /// assert!(x.try_layer_norm(w.clone(), w, 1e-5).is_err());
    /// ```
    pub fn try_layer_norm<Tw: Tape<D>, Tb: Tape<D>>(
        self,
        weight: Tensor<(S::Last,), E, D, Tw>,
        bias: Tensor<(S::Last,), E, D, Tb>,
        eps: f64,
    ) -> Result<Tensor<S, E, D, Merged3<D, T, Tw, Tb>>>
    where
        T: Merge<D, Tw>,
        <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
    {
        let row = self.shape.last().size();
        check_features("layer_norm", row, weight.numel())?;
        check_features("layer_norm", row, bias.numel())?;
        let (x, tx) = self.split_tape();
        let (w, tw) = weight.split_tape();
        let (b, tb) = bias.split_tape();
        Ok(norm_op(x, tx.merge(tw).merge(tb), Some(w), Some(b), row, eps, true, "layer_norm"))
    }

    /// Root-mean-square normalisation over the last axis with a learned scale (PyTorch's
    /// `F.rms_norm(x, (M,), w, eps)`): `x / sqrt(mean(x²) + eps) * w`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[3.0f64, 4.0]]);
    /// let w: Tensor<Rank1<2>, f64, Cpu> = dev.ones();
    /// let y = x.rms_norm(w, 0.0).to_vec();
    /// assert!((y[0] - 3.0 / 12.5f64.sqrt()).abs() < 1e-12);
    /// ```
    pub fn rms_norm<Tw: Tape<D>>(
        self,
        weight: Tensor<(S::Last,), E, D, Tw>,
        eps: f64,
    ) -> Tensor<S, E, D, <T as Merge<D, Tw>>::Output>
    where
        T: Merge<D, Tw>,
    {
        self.try_rms_norm(weight, eps).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::rms_norm`], returning `Err` when a run-time feature count differs from the weight's.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(2, 3));
    /// let w: Tensor<(usize,), f32, Cpu> = dev.ones_like(&(2,));
    /// assert!(x.try_rms_norm(w, 1e-6).is_err());
    /// ```
    pub fn try_rms_norm<Tw: Tape<D>>(
        self,
        weight: Tensor<(S::Last,), E, D, Tw>,
        eps: f64,
    ) -> Result<Tensor<S, E, D, <T as Merge<D, Tw>>::Output>>
    where
        T: Merge<D, Tw>,
    {
        let row = self.shape.last().size();
        check_features("rms_norm", row, weight.numel())?;
        let (x, tx) = self.split_tape();
        let (w, tw) = weight.split_tape();
        Ok(norm_op::<S, S::Last, E, D, _>(x, tx.merge(tw), Some(w), None, row, eps, false, "rms_norm"))
    }

    /// Layer normalisation over the last axis without scale or shift (PyTorch's
    /// `F.layer_norm(x, (M,), eps=eps)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[2.0f64, 4.0]]);
    /// assert_eq!(x.normalize(0.0).to_vec(), vec![-1.0, 1.0]);
    /// ```
    pub fn normalize(self, eps: f64) -> Self {
        let row = self.shape.last().size();
        let (x, tape) = self.split_tape();
        norm_op::<S, S::Last, E, D, T>(x, tape, None, None, row, eps, true, "layer_norm")
    }
}

/// Statistics of a batch-norm batch, detached, for updating running statistics: the mean and
/// the unbiased variance per channel (what PyTorch folds into `running_mean`/`running_var`).
#[derive(Clone, Debug)]
pub struct BatchStats<C: Dim, E: Float, D: Device> {
    /// Mean per channel.
    pub mean: Tensor<(C,), E, D>,
    /// Unbiased variance per channel.
    pub var: Tensor<(C,), E, D>,
}

macro_rules! channel_norms {
    ($shape:ty, [$($d:ident),*], $axes:ty) => {
        impl<N: Dim, C: Dim, $($d: Dim,)* E: Float, D: Device, T: Tape<D>> Tensor<$shape, E, D, T> {
            /// Batch normalisation with this batch's statistics (training mode; PyTorch's
            /// `F.batch_norm(x, .., training=True)`): per channel, `(x - mean) / sqrt(var + eps) *
            /// w + b` over the batch and spatial axes, with the biased variance. Also returns the
            /// batch statistics for the running averages.
            ///
            /// ```
            /// use tensile::prelude::*;
            /// let dev = Cpu::seeded(0);
            /// let x = dev.tensor([[1.0f32, 10.0], [3.0, 10.0]]);
            /// let (w, b): (Tensor<Rank1<2>, f32, Cpu>, Tensor<Rank1<2>, f32, Cpu>) = (dev.ones(), dev.zeros());
            /// let (y, stats) = x.batch_norm_train(w, b, 0.0);
            /// assert_eq!(y.to_vec()[..1], [-1.0]);
            /// assert_eq!(stats.mean.to_vec(), vec![2.0, 10.0]);
            /// assert_eq!(stats.var.to_vec(), vec![2.0, 0.0]);
            /// ```
            pub fn batch_norm_train<Tw: Tape<D>, Tb: Tape<D>>(
                self,
                weight: Tensor<(C,), E, D, Tw>,
                bias: Tensor<(C,), E, D, Tb>,
                eps: f64,
            ) -> (Tensor<$shape, E, D, Merged3<D, T, Tw, Tb>>, BatchStats<C, E, D>)
            where
                T: Merge<D, Tw>,
                <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
            {
                let shape = self.shape;
                let per_channel = self.numel() / shape.1.size().max(1);
                let mean = self.clone().mean::<(C,), $axes>();
                let centered = self - mean.clone().broadcast_like::<$shape, $axes>(&shape);
                let var = centered.clone().square().mean::<(C,), $axes>();
                let stats = BatchStats {
                    mean: mean.detach(),
                    var: var.detach().mul_scalar(per_channel as f64 / (per_channel.max(2) - 1) as f64),
                };
                let rstd = var.add_scalar(eps).sqrt().recip();
                let xhat = centered * rstd.broadcast_like::<$shape, $axes>(&shape);
                let y = xhat * weight.broadcast_like::<$shape, $axes>(&shape) + bias.broadcast_like::<$shape, $axes>(&shape);
                (y, stats)
            }

            /// Batch normalisation with given (running) statistics (evaluation mode; PyTorch's
            /// `F.batch_norm(x, mean, var, w, b, training=False)`).
            ///
            /// ```
            /// use tensile::prelude::*;
            /// let dev = Cpu::seeded(0);
            /// let x = dev.tensor([[4.0f32, 1.0]]);
            /// let (mean, var) = (dev.tensor([2.0f32, 1.0]), dev.tensor([4.0f32, 1.0]));
            /// let (w, b): (Tensor<Rank1<2>, f32, Cpu>, Tensor<Rank1<2>, f32, Cpu>) = (dev.ones(), dev.zeros());
            /// assert_eq!(x.batch_norm_eval(&mean, &var, w, b, 0.0).to_vec(), vec![1.0, 0.0]);
            /// ```
            pub fn batch_norm_eval<Tw: Tape<D>, Tb: Tape<D>>(
                self,
                running_mean: &Tensor<(C,), E, D>,
                running_var: &Tensor<(C,), E, D>,
                weight: Tensor<(C,), E, D, Tw>,
                bias: Tensor<(C,), E, D, Tb>,
                eps: f64,
            ) -> Tensor<$shape, E, D, Merged3<D, T, Tw, Tb>>
            where
                T: Merge<D, Tw>,
                <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
            {
                let shape = self.shape;
                let scale = running_var.clone().add_scalar(eps).sqrt().recip();
                let centered = self - running_mean.clone().broadcast_like::<$shape, $axes>(&shape);
                let xhat = centered * scale.broadcast_like::<$shape, $axes>(&shape);
                xhat * weight.broadcast_like::<$shape, $axes>(&shape) + bias.broadcast_like::<$shape, $axes>(&shape)
            }

            /// Group normalisation (PyTorch's `F.group_norm(x, G, w, b, eps)`): the channels in
            /// `G` groups, each group of each sample normalised over its channels and positions,
            /// then scaled and shifted per channel. `G` must divide the channels (checked at build
            /// time for static channels; `Err` from [`Self::try_group_norm`] otherwise).
            ///
            /// ```
            /// use tensile::prelude::*;
            /// let dev = Cpu::seeded(0);
            /// let x: Tensor<Rank4<2, 4, 3, 3>, f32, Cpu> = dev.randn();
            /// let (w, b): (Tensor<Rank1<4>, f32, Cpu>, Tensor<Rank1<4>, f32, Cpu>) = (dev.ones(), dev.zeros());
            /// let y = x.group_norm::<2, _, _>(w, b, 1e-5);
            /// assert_eq!(y.dims().as_slice(), &[2, 4, 3, 3]);
            /// ```
            pub fn group_norm<const G: usize, Tw: Tape<D>, Tb: Tape<D>>(
                self,
                weight: Tensor<(C,), E, D, Tw>,
                bias: Tensor<(C,), E, D, Tb>,
                eps: f64,
            ) -> Tensor<$shape, E, D, Merged3<D, T, Tw, Tb>>
            where
                T: Merge<D, Tw>,
                <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
            {
                const {
                    assert!(G > 0, "group_norm: at least one group");
                    if let Some(c) = C::STATIC {
                        assert!(c % G == 0, "group_norm: the groups do not divide the channels");
                    }
                }
                self.try_group_norm::<G, Tw, Tb>(weight, bias, eps).unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`Self::group_norm`], returning `Err` when `G` does not divide a run-time channel count.
            ///
            /// ```
            /// use tensile::prelude::*;
            /// let dev = Cpu::seeded(0);
            /// let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 3, 2, 2));
            /// let w: Tensor<(usize,), f32, Cpu> = dev.ones_like(&(3,));
            /// assert!(x.try_group_norm::<2, _, _>(w.clone(), w, 1e-5).is_err());
            /// ```
            pub fn try_group_norm<const G: usize, Tw: Tape<D>, Tb: Tape<D>>(
                self,
                weight: Tensor<(C,), E, D, Tw>,
                bias: Tensor<(C,), E, D, Tb>,
                eps: f64,
            ) -> Result<Tensor<$shape, E, D, Merged3<D, T, Tw, Tb>>>
            where
                T: Merge<D, Tw>,
                <T as Merge<D, Tw>>::Output: Merge<D, Tb>,
            {
                let shape = self.shape;
                let (n, c) = (shape.0.size(), shape.1.size());
                if G == 0 || c % G != 0 {
                    return Err(Error::InvalidSize { op: "group_norm", reason: format!("{G} groups do not divide {c} channels") });
                }
                check_features("group_norm", c, weight.numel())?;
                check_features("group_norm", c, bias.numel())?;
                let rows = self.try_reshape_like(&(n * G, self_numel(&shape) / (n * G).max(1)))?;
                let normed = rows.normalize(eps).try_reshape_like(&shape)?;
                Ok(normed * weight.broadcast_like::<$shape, $axes>(&shape) + bias.broadcast_like::<$shape, $axes>(&shape))
            }
        }
    };
}

fn self_numel<S: Shape>(s: &S) -> usize {
    s.numel()
}

channel_norms!((N, C), [], Axis<0>);
channel_norms!((N, C, L), [L], Axes2<0, 2>);
channel_norms!((N, C, H, W), [H, W], Axes3<0, 2, 3>);
