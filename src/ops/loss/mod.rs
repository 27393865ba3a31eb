//! Classification losses from logits, numerically stable: cross-entropy against class indices
//! is one fused kernel each way (a log-sum-exp per row; `softmax - onehot` for the gradient);
//! soft targets and `nll_loss` compose log-softmax with a weighted sum or a gather.

use crate::autograd::{Merge, OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::{Float, IndexDtype};
use crate::error::{Error, Result};
use crate::ops::index::IndexSource;
use crate::ops::index::{gather_op, layout3};
use crate::shapes::{Axis, Const, Dim, Rank0, Shape};
use crate::tensor::Tensor;

impl<N: Dim, C: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(N, C), E, D, T> {
    /// The negative log-likelihood of each sample's target class, from log-probabilities
    /// (PyTorch's `F.nll_loss(x, target, reduction="none")`). `Err` when a target is not a class.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logp = dev.tensor([[-0.5f32, -1.0], [-2.0, -0.1]]);
    /// let l = logp.try_nll_loss_per_sample(&dev.tensor([1i64, 0])).unwrap();
    /// assert_eq!(l.to_array(), [1.0, 2.0]);
    /// ```
    pub fn try_nll_loss_per_sample<I: IndexDtype>(self, target: &Tensor<(N,), I, D>) -> Result<Tensor<(N,), E, D, T>> {
        let n = self.shape.0;
        if target.numel() != n.size() {
            return Err(Error::ShapeMismatch {
                op: "nll_loss",
                lhs: self.dims().to_vec(),
                rhs: target.dims().to_vec(),
            });
        }
        // the targets as a `[n, 1, 1]` index into the class axis
        let index = target.device.contiguous(target.data.clone(), &target.layout());
        let il = layout3([n.size(), 1, 1]);
        let picked = gather_op(self, 1, index, IndexSource::Tensor(target.id), il, (n, Const::<1>), "nll_loss")?;
        Ok(picked.try_reshape_like(&(n,))?.neg())
    }

    /// The mean negative log-likelihood of the targets (PyTorch's `F.nll_loss`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logp = dev.tensor([[-0.5f32, -1.0], [-2.0, -0.1]]);
    /// assert_eq!(logp.nll_loss(&dev.tensor([1i64, 0])).to_array(), 1.5);
    /// ```
    pub fn nll_loss<I: IndexDtype>(self, target: &Tensor<(N,), I, D>) -> Tensor<Rank0, E, D, T> {
        self.try_nll_loss_per_sample(target).unwrap_or_else(|e| panic!("{e}")).mean::<Rank0, _>()
    }

    /// Cross-entropy of logits against class indices, per sample (PyTorch's
    /// `F.cross_entropy(logits, target, reduction="none")`): `logsumexp(x) - x[target]`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logits = dev.tensor([[0.0f64, 0.0], [100.0, 0.0]]);
    /// let l = logits.try_cross_entropy_per_sample(&dev.tensor([0i64, 0])).unwrap().to_vec();
    /// assert!((l[0] - 2f64.ln()).abs() < 1e-12 && l[1].abs() < 1e-12);
    /// ```
    pub fn try_cross_entropy_per_sample<I: IndexDtype>(
        self,
        target: &Tensor<(N,), I, D>,
    ) -> Result<Tensor<(N,), E, D, T>> {
        let (n, c) = self.shape;
        if target.numel() != n.size() {
            return Err(Error::ShapeMismatch {
                op: "cross_entropy",
                lhs: self.dims().to_vec(),
                rhs: target.dims().to_vec(),
            });
        }
        let dev = self.device.clone();
        let xd = dev.contiguous(self.data.clone(), &self.layout());
        let td = dev.contiguous(target.data.clone(), &target.layout());
        let (loss, lse) = dev.cross_entropy_rows(&xd, c.size(), &td)?;
        let (x, tape) = self.split_tape();
        let out = Tensor::from_storage(dev.clone(), loss, (n,));
        if T::TAPED {
            let (xid, oid, len, row) = (x.id, out.id, x.shape.numel(), c.size());
            tape.add_backward_op(OpRecord::new("cross_entropy", vec![xid], oid, out.shape.dims()), move |grads| {
                let mut result = Ok(());
                grads.backward_step_write::<E, 1>(&dev, oid, [(xid, len)], |gy, [gx], [acc]| {
                    result = dev.cross_entropy_rows_backward(&xd, row, &td, &lse, gy, gx, acc);
                });
                result
            });
        }
        Ok(out.put_tape(tape))
    }

    /// The mean cross-entropy of logits against class indices (PyTorch's `F.cross_entropy`),
    /// panicking when a target is not a class (see [`Self::try_cross_entropy`]).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logits: Tensor<Rank2<4, 10>, f32, Cpu> = dev.zeros();
    /// let loss = logits.cross_entropy(&dev.tensor([1i64, 2, 3, 4]));
    /// assert!((loss.to_array() - 10f32.ln()).abs() < 1e-6);
    /// ```
    pub fn cross_entropy<I: IndexDtype>(self, target: &Tensor<(N,), I, D>) -> Tensor<Rank0, E, D, T> {
        self.try_cross_entropy(target).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::cross_entropy`], returning `Err` when a target is not a class or the batch sizes differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logits: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    /// assert!(logits.try_cross_entropy(&dev.tensor([0i64, 3])).is_err());
    /// ```
    pub fn try_cross_entropy<I: IndexDtype>(self, target: &Tensor<(N,), I, D>) -> Result<Tensor<Rank0, E, D, T>> {
        Ok(self.try_cross_entropy_per_sample(target)?.mean::<Rank0, _>())
    }

    /// The mean cross-entropy of logits against class probabilities (soft targets; PyTorch's
    /// `F.cross_entropy` with a float target): `mean_n(-Σ_c p[n, c] log_softmax(x)[n, c])`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let logits: Tensor<Rank2<1, 2>, f64, Cpu> = dev.zeros();
    /// let loss = logits.cross_entropy_probs(dev.tensor([[0.25, 0.75]]));
    /// assert!((loss.to_array() - 2f64.ln()).abs() < 1e-12);
    /// ```
    pub fn cross_entropy_probs<R: Tape<D>>(
        self,
        target: Tensor<(N, C), E, D, R>,
    ) -> Tensor<Rank0, E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
    {
        let n = self.shape.0.size().max(1);
        (self.log_softmax::<Axis<1>>() * target).sum::<Rank0, _>().mul_scalar(-1.0 / n as f64)
    }
}
