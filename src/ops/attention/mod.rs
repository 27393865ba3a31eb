//! Scaled dot-product attention, composed from batched matmul, the fused softmax and a mask:
//! `softmax(q kᵀ / √d + mask) v` (PyTorch's `F.scaled_dot_product_attention`).

use super::norm::Merged3;
use crate::autograd::{Merge, Tape};
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::ops::MatMul;
use crate::shapes::{Axis, Dim};
use crate::tensor::{Tensor, TensorFactory};

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
        if keys.dims().as_slice()[..2] != [b.size(), h.size()]
            || values.dims().as_slice()[..3] != [b.size(), h.size(), s.size()]
        {
            return Err(Error::ShapeMismatch {
                op: "attention",
                lhs: keys.dims().to_vec(),
                rhs: values.dims().to_vec(),
            });
        }
        let scale = 1.0 / math::sqrt(d.size().max(1) as f64);
        let kt = keys.permute::<(B, H, K, S), crate::shapes::Axes4<0, 1, 3, 2>>();
        let scores = self.mul_scalar(scale).try_matmul(kt)?;
        let shape = scores.shape;
        let keep: Option<Tensor<(L, S), bool, D>> = match mask {
            AttnMask::None => None,
            AttnMask::Causal => {
                let data = (0..l.size() * s.size()).map(|i| i % s.size() <= i / s.size()).collect();
                Some(scores.device.try_from_vec(data, (l, s))?)
            }
            AttnMask::Keep(m) => {
                if m.dims().as_slice() != [l.size(), s.size()] {
                    return Err(Error::ShapeMismatch {
                        op: "attention mask",
                        lhs: vec![l.size(), s.size()],
                        rhs: m.dims().to_vec(),
                    });
                }
                Some(m.clone())
            }
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
