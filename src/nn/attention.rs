//! `MultiHeadAttention<M, H>`: PyTorch's `nn.MultiheadAttention(M, H, batch_first=True)`, with
//! its parameter names (`in_proj_weight`, `in_proj_bias`, `out_proj.*`) and initialisation.

use super::linear::{affine, on_tape};
use super::{BuildOn, Linear, Module, ModuleMut, Params, TensorKind, Visitor, VisitorMut, init};
use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::Result;
use crate::ops::AttnMask;
use crate::shapes::{Axes4, Axis, Const, Dim, Prod};
use crate::tensor::{Tensor, TensorFactory};

/// `3 * M`: the rows of the packed query/key/value projection.
pub type Packed<const M: usize> = Prod<Const<3>, Const<M>>;

/// Attention with `H` heads over `M` features (`M / H` per head), inputs `(batch, seq, M)`.
///
/// As a [`Module`] it takes `x` (self-attention), `(x, mask)`, `(query, key, value)` or
/// `(query, key, value, mask)`; keys and values may be longer or shorter than the queries. In
/// training mode ([`ModuleMut`]) the attention weights go through dropout `dropout` (0 by
/// default, as PyTorch's).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::MultiHeadAttention;
/// let dev = Cpu::seeded(0);
/// let mha = MultiHeadAttention::<16, 4>::build(&dev);
/// let x: Tensor<(usize, usize, Const<16>), f32, Cpu> = dev.randn_like(&(2, 5, Const));
/// let y = mha.forward((x.clone(), AttnMask::Causal));       // causal self-attention
/// assert_eq!(y.dims().as_slice(), &[2, 5, 16]);
/// let memory: Tensor<(usize, usize, Const<16>), f32, Cpu> = dev.randn_like(&(2, 9, Const));
/// let z = mha.forward((x, memory.clone(), memory));          // cross-attention
/// assert_eq!(z.dims().as_slice(), &[2, 5, 16]);
/// ```
#[derive(Clone, Debug)]
pub struct MultiHeadAttention<const M: usize, const H: usize, E: Float = f32, D: Device = Cpu> {
    /// The query, key and value projections stacked, `(3M, M)`.
    pub in_proj_weight: Tensor<(Packed<M>, Const<M>), E, D>,
    /// Their biases, `(3M,)`.
    pub in_proj_bias: Tensor<(Packed<M>,), E, D>,
    /// The output projection.
    pub out_proj: Linear<M, M, E, D>,
    /// Dropout on the attention weights in training mode.
    pub dropout: f64,
}

impl<const M: usize, const H: usize, E: Float, D: Device> BuildOn<D> for MultiHeadAttention<M, H, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        const { assert!(H > 0 && M.is_multiple_of(H), "MultiHeadAttention<M, H>: H must divide M") };
        let packed = Packed::<M>::new(3 * M);
        let mut out_proj = Linear::try_build(dev)?;
        out_proj.bias = Some(dev.zeros_like(&(Const,)));
        Ok(Self {
            in_proj_weight: init::xavier_uniform(dev, &(packed, Const), 1.0),
            in_proj_bias: dev.zeros_like(&(packed,)),
            out_proj,
            dropout: 0.0,
        })
    }
}

impl<const M: usize, const H: usize, E: Float, D: Device> Params<D> for MultiHeadAttention<M, H, E, D> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        v.visit(&format!("{prefix}in_proj_weight"), TensorKind::Parameter, &self.in_proj_weight);
        v.visit(&format!("{prefix}in_proj_bias"), TensorKind::Parameter, &self.in_proj_bias);
        self.out_proj.visit_params(&format!("{prefix}out_proj."), v);
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        v.visit_mut(&format!("{prefix}in_proj_weight"), TensorKind::Parameter, &mut self.in_proj_weight);
        v.visit_mut(&format!("{prefix}in_proj_bias"), TensorKind::Parameter, &mut self.in_proj_bias);
        self.out_proj.visit_params_mut(&format!("{prefix}out_proj."), v);
    }
}

/// `(batch, seq, M)` with any tape.
type Seq<B, L, const M: usize, E, D, T> = Tensor<(B, L, Const<M>), E, D, T>;

impl<const M: usize, const H: usize, E: Float, D: Device> MultiHeadAttention<M, H, E, D> {
    /// Attention of `query` over `key`/`value`, with `mask` over (query, key) pairs; `train`
    /// turns on dropout of the attention weights. `Err` when the batch or key/value lengths
    /// disagree at run time.
    pub fn try_attend<B: Dim, L: Dim, S: Dim, T: Tape<D>>(
        &self,
        query: Seq<B, L, M, E, D, T>,
        key: Seq<B, S, M, E, D, T>,
        value: Seq<B, S, M, E, D, T>,
        mask: AttnMask<'_, L, S, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        let tape = query.tape().clone();
        let w = on_tape(&self.in_proj_weight, &tape);
        let b = on_tape(&self.in_proj_bias, &tape);
        let part = |i: usize| -> Result<_> {
            Ok((
                w.clone().try_narrow(Axis::<0>, i * M, Const::<M>)?,
                Some(b.clone().try_narrow(Axis::<0>, i * M, Const::<M>)?),
            ))
        };
        let ((wq, bq), (wk, bk), (wv, bv)) = (part(0)?, part(1)?, part(2)?);
        let q = heads::<H, _, _, M, _, _, _>(affine(query, wq, bq)?)?;
        let k = heads::<H, _, _, M, _, _, _>(affine(key, wk, bk)?)?;
        let v = heads::<H, _, _, M, _, _, _>(affine(value, wv, bv)?)?;
        let dropout = if train { self.dropout } else { 0.0 };
        let out = q.try_attention(k, v, mask, dropout)?;
        let (batch, _, len, _) = *out.shape();
        let merged = out.permute::<_, Axes4<0, 2, 1, 3>>().try_reshape_like(&(batch, len, Const::<M>))?;
        self.out_proj.try_forward(merged)
    }
}

/// `(batch, seq, M)` split into `H` heads: `(batch, H, seq, M / H)`.
fn heads<const H: usize, B: Dim, L: Dim, const M: usize, E: Float, D: Device, T: Tape<D>>(
    x: Seq<B, L, M, E, D, T>,
) -> Result<Tensor<(B, Const<H>, L, usize), E, D, T>> {
    let (b, l, _) = *x.shape();
    Ok(x.try_reshape_like(&(b, l, Const::<H>, M / H))?.permute::<_, Axes4<0, 2, 1, 3>>())
}

/// The module forms: self-attention with or without a mask, and query/key/value with or
/// without one; `train` picks the mode.
macro_rules! attention_forms {
    ($method:ident, $trait:ident, $self_ty:ty, $train:expr) => {
        impl<const M: usize, const H: usize, B: Dim, L: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<Seq<B, L, M, E, D, T>> for MultiHeadAttention<M, H, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(self: $self_ty, x: Seq<B, L, M, E, D, T>) -> Result<Self::Output> {
                self.try_attend(x.clone(), x.clone(), x, AttnMask::None, $train)
            }
        }

        impl<'a, const M: usize, const H: usize, B: Dim, L: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<(Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>)> for MultiHeadAttention<M, H, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (x, mask): (Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_attend(x.clone(), x.clone(), x, mask, $train)
            }
        }

        impl<const M: usize, const H: usize, B: Dim, L: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, Seq<B, S, M, E, D, T>)>
            for MultiHeadAttention<M, H, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (q, k, v): (Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, Seq<B, S, M, E, D, T>),
            ) -> Result<Self::Output> {
                self.try_attend(q, k, v, AttnMask::None, $train)
            }
        }

        impl<'a, const M: usize, const H: usize, B: Dim, L: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, Seq<B, S, M, E, D, T>, AttnMask<'a, L, S, D>)>
            for MultiHeadAttention<M, H, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (q, k, v, mask): (
                    Seq<B, L, M, E, D, T>,
                    Seq<B, S, M, E, D, T>,
                    Seq<B, S, M, E, D, T>,
                    AttnMask<'a, L, S, D>,
                ),
            ) -> Result<Self::Output> {
                self.try_attend(q, k, v, mask, $train)
            }
        }
    };
}
attention_forms!(try_forward, Module, &Self, false);
attention_forms!(try_forward_mut, ModuleMut, &mut Self, true);
