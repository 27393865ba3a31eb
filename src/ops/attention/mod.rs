//! Scaled dot-product attention, composed from batched matmul, the fused softmax and a mask:
//! `softmax(q kᵀ / √d + mask) v` (PyTorch's `F.scaled_dot_product_attention`).

use super::norm::Merged3;
use crate::autograd::{Merge, OpRecord, Tape};
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::{AttnGeometry, Device};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::ops::MatMul;
use crate::shapes::{Axis, Dim, Shape};
use crate::tensor::{Tensor, TensorFactory};
use alloc::sync::Arc;

/// Which query-key pairs attention may use.
#[derive(Clone, Debug)]
pub enum AttnMask<'a, L: Dim, S: Dim, D: Device> {
    /// Every pair.
    None,
    /// Query `i` sees keys `0..=i` (PyTorch's `is_causal=True`: top-left aligned).
    Causal,
    /// `true` where the pair takes part (PyTorch's boolean `attn_mask`), for every batch and head.
    Keep(&'a Tensor<(L, S), bool, D>),
}

impl<B: Dim, H: Dim, L: Dim, K: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(B, H, L, K), E, D, T> {
    /// Attention of these queries `(batch, heads, L, d)` over `keys` `(batch, heads, S, d)` and
    /// `values` `(batch, heads, S, dv)`, scaled by `1/√d`. A query that may see no key gives NaN,
    /// as in PyTorch.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let q: Tensor<Rank4<2, 4, 8, 16>, f32, Cpu> = dev.randn();
    /// let k: Tensor<Rank4<2, 4, 8, 16>, f32, Cpu> = dev.randn();
    /// let v: Tensor<Rank4<2, 4, 8, 32>, f32, Cpu> = dev.randn();
    /// let out = q.scaled_dot_product_attention(k, v, AttnMask::Causal);
    /// assert_eq!(out.dims().as_slice(), &[2, 4, 8, 32]);
    /// ```
    pub fn scaled_dot_product_attention<S: Dim, V: Dim, Tk: Tape<D>, Tv: Tape<D>>(
        self,
        keys: Tensor<(B, H, S, K), E, D, Tk>,
        values: Tensor<(B, H, S, V), E, D, Tv>,
        mask: AttnMask<'_, L, S, D>,
    ) -> Tensor<(B, H, L, V), E, D, Merged3<D, T, Tk, Tv>>
    where
        T: Merge<D, Tk>,
        <T as Merge<D, Tk>>::Output: Merge<D, Tv>,
    {
        self.try_scaled_dot_product_attention(keys, values, mask).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::scaled_dot_product_attention`], returning `Err` when run-time sizes disagree.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// type T4 = Tensor<(usize, usize, usize, usize), f32, Cpu>;
    /// let q: T4 = dev.zeros_like(&(1, 1, 2, 4));
    /// let k: T4 = dev.zeros_like(&(1, 1, 3, 5));
    /// let v: T4 = dev.zeros_like(&(1, 1, 3, 4));
    /// assert!(q.try_scaled_dot_product_attention(k, v, AttnMask::None).is_err());
    /// ```
    pub fn try_scaled_dot_product_attention<S: Dim, V: Dim, Tk: Tape<D>, Tv: Tape<D>>(
        self,
        keys: Tensor<(B, H, S, K), E, D, Tk>,
        values: Tensor<(B, H, S, V), E, D, Tv>,
        mask: AttnMask<'_, L, S, D>,
    ) -> Result<Tensor<(B, H, L, V), E, D, Merged3<D, T, Tk, Tv>>>
    where
        T: Merge<D, Tk>,
        <T as Merge<D, Tk>>::Output: Merge<D, Tv>,
    {
        self.try_attention(keys, values, mask, 0.0)
    }

    /// Attention with dropout `p` on the attention weights (PyTorch's `dropout_p`), as
    /// `nn.MultiheadAttention` applies in training mode.
    pub(crate) fn try_attention<S: Dim, V: Dim, Tk: Tape<D>, Tv: Tape<D>>(
        self,
        keys: Tensor<(B, H, S, K), E, D, Tk>,
        values: Tensor<(B, H, S, V), E, D, Tv>,
        mask: AttnMask<'_, L, S, D>,
        dropout_p: f64,
    ) -> Result<Tensor<(B, H, L, V), E, D, Merged3<D, T, Tk, Tv>>>
    where
        T: Merge<D, Tk>,
        <T as Merge<D, Tk>>::Output: Merge<D, Tv>,
    {
        let (b, h, l, d) = self.shape;
        let s = keys.shape.2;
        if keys.dims().as_slice() != [b.size(), h.size(), s.size(), d.size()]
            || values.dims().as_slice()[..3] != [b.size(), h.size(), s.size()]
        {
            return Err(Error::ShapeMismatch {
                op: "attention",
                lhs: keys.dims().to_vec(),
                rhs: values.dims().to_vec(),
            });
        }
        let scale = 1.0 / math::sqrt(d.size().max(1) as f64);
        if let AttnMask::Keep(m) = &mask
            && m.dims().as_slice() != [l.size(), s.size()]
        {
            return Err(Error::ShapeMismatch {
                op: "attention mask",
                lhs: vec![l.size(), s.size()],
                rhs: m.dims().to_vec(),
            });
        }
        // One fused kernel where the device has it. Not while tracing for export: the graph
        // records the composed ops below (its runtime and ONNX have no attention node).
        let sizes = [b.size() * h.size(), l.size(), s.size(), d.size(), values.shape.3.size()];
        if dropout_p == 0.0 && !<Merged3<D, T, Tk, Tv> as Tape<D>>::TRACING && sizes.iter().all(|&n| n > 0) {
            let g = AttnGeometry {
                heads: sizes[0],
                queries: sizes[1],
                keys: sizes[2],
                depth: sizes[3],
                value_depth: sizes[4],
                scale,
                causal: matches!(mask, AttnMask::Causal),
            };
            let dev = self.device.clone();
            let keep = match &mask {
                AttnMask::Keep(m) => Some(dev.contiguous(m.data.clone(), &m.layout())),
                _ => None,
            };
            let taped = <Merged3<D, T, Tk, Tv> as Tape<D>>::TAPED;
            let qd = dev.contiguous(self.data.clone(), &self.layout());
            let kd = dev.contiguous(keys.data.clone(), &keys.layout());
            let vd = dev.contiguous(values.data.clone(), &values.layout());
            if let Some((y, weights)) = dev.attention(&g, &qd, &kd, &vd, keep.as_deref(), taped) {
                return Ok(fused_result(self, keys, values, y, weights, g, [qd, kd, vd]));
            }
        }
        let kt = keys.permute::<(B, H, K, S), crate::shapes::Axes4<0, 1, 3, 2>>();
        let scores = self.mul_scalar(scale).try_matmul(kt)?;
        let shape = scores.shape;
        let keep: Option<Tensor<(L, S), bool, D>> = match mask {
            AttnMask::None => None,
            AttnMask::Causal => {
                let data = (0..l.size() * s.size()).map(|i| i % s.size() <= i / s.size()).collect();
                Some(scores.device.try_from_vec(data, (l, s))?)
            }
            AttnMask::Keep(m) => Some(m.clone()),
        };
        let scores = match keep {
            None => scores,
            Some(keep) => {
                let keep = keep.expand_leading(shape);
                // one -inf, broadcast (no full-size buffer)
                let neg = scores.device.full_like(&(), E::neg_infinity()).expand_leading(shape);
                keep.try_choose::<E, <T as Merge<D, Tk>>::Output, crate::autograd::NoTape>(scores, neg)?
            }
        };
        scores.softmax::<Axis<3>>().dropout(dropout_p).try_matmul(values)
    }
}

/// The output of the fused attention kernel as a tensor with the merged tapes of `q`, `k` and
/// `v`, recording the kernel's backward (from the kept weights) when taped.
#[allow(clippy::type_complexity)]
fn fused_result<B: Dim, H: Dim, L: Dim, S: Dim, K: Dim, V: Dim, E: Float, D: Device, T, Tk, Tv>(
    q: Tensor<(B, H, L, K), E, D, T>,
    k: Tensor<(B, H, S, K), E, D, Tk>,
    v: Tensor<(B, H, S, V), E, D, Tv>,
    y: D::Storage<E>,
    weights: Option<D::Storage<E>>,
    g: AttnGeometry,
    [qd, kd, vd]: [Arc<D::Storage<E>>; 3],
) -> Tensor<(B, H, L, V), E, D, Merged3<D, T, Tk, Tv>>
where
    T: Tape<D> + Merge<D, Tk>,
    Tk: Tape<D>,
    Tv: Tape<D>,
    <T as Merge<D, Tk>>::Output: Merge<D, Tv>,
{
    let (b, h, l, _) = q.shape;
    let dev = q.device.clone();
    let out = Tensor::from_storage(dev.clone(), y, (b, h, l, v.shape.3));
    let ins = [(q.id, q.shape.numel()), (k.id, k.shape.numel()), (v.id, v.shape.numel())];
    let ((_, tq), (_, tk), (_, tv)) = (q.split_tape(), k.split_tape(), v.split_tape());
    let tape = tq.merge(tk).merge(tv);
    if let Some(weights) = weights {
        let oid = out.id;
        let record = OpRecord::new("attention", ins.iter().map(|(id, _)| *id).collect(), oid, out.shape.dims());
        tape.add_backward_op(record, move |grads| {
            grads.backward_step_many_write::<E>(&dev, oid, &ins, |gy, bufs, acc| {
                let [gq, gk, gv] = bufs else { unreachable!("three inputs, three gradients") };
                dev.attention_backward(&g, &qd, &kd, &vd, &weights, gy, [gq, gk, gv], [acc[0], acc[1], acc[2]]);
            });
            Ok(())
        });
    }
    out.put_tape(tape)
}
