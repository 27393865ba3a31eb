//! Transformer layers as PyTorch's (`batch_first=True`): `TransformerEncoderLayer`,
//! `TransformerDecoderLayer`, the stacks `TransformerEncoder` / `TransformerDecoder`, and
//! `Transformer`, with PyTorch's parameter names, so a `state_dict` moves between the two.
//!
//! Each layer is post-norm by default (`norm_first = false`), with ReLU and dropout 0.1 as
//! PyTorch's defaults; set the public fields to change them (`norm_first = true` and
//! [`Activation::GELU`] give the pre-norm layers of GPT-style models).

use super::{BuildOn, LayerNorm, Linear, Module, ModuleMut, MultiHeadAttention, Params, Repeat, Visitor, VisitorMut};
use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::Result;
use crate::ops::AttnMask;
use crate::shapes::{Const, Dim, Shape};
use crate::tensor::Tensor;

/// The feed-forward block's activation (PyTorch's `activation="relu"` or `"gelu"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`, PyTorch's default.
    #[default]
    ReLU,
    /// The exact (erf) GELU.
    GELU,
}

impl Activation {
    fn apply<S: Shape, E: Float, D: Device, T: Tape<D>>(self, x: Tensor<S, E, D, T>) -> Tensor<S, E, D, T> {
        match self {
            Activation::ReLU => x.relu(),
            Activation::GELU => x.gelu(),
        }
    }
}

/// `(batch, seq, M)` with any tape.
type Seq<B, L, const M: usize, E, D, T> = Tensor<(B, L, Const<M>), E, D, T>;

/// Dropout `p` in training mode, the identity otherwise.
fn drop<S: Shape, E: Float, D: Device, T: Tape<D>>(x: Tensor<S, E, D, T>, p: f64, train: bool) -> Tensor<S, E, D, T> {
    if train { x.dropout(p) } else { x }
}

/// Implements [`Params`] from the submodule fields, each named `"<field>."`.
macro_rules! submodules {
    ([$($g:tt)*] $ty:ty { $($field:ident),+ }) => {
        impl<$($g)*> Params<D> for $ty {
            fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
                $(self.$field.visit_params(&format!("{prefix}{}.", stringify!($field)), v);)+
            }
            fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
                $(self.$field.visit_params_mut(&format!("{prefix}{}.", stringify!($field)), v);)+
            }
        }
    };
}

/// One encoder layer (`nn.TransformerEncoderLayer(M, H, F, batch_first=True)`): self-attention
/// with `H` heads, then a feed-forward block of width `F`, each with a residual connection and a
/// layer norm. Takes `x` or `(x, mask)`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::TransformerEncoderLayer;
/// let dev = Cpu::seeded(0);
/// let layer = TransformerEncoderLayer::<32, 4, 64>::build(&dev);
/// let x: Tensor<(usize, usize, Const<32>), f32, Cpu> = dev.randn_like(&(2, 7, Const));
/// assert_eq!(layer.forward((x, AttnMask::Causal)).dims().as_slice(), &[2, 7, 32]);
/// ```
#[derive(Clone, Debug)]
pub struct TransformerEncoderLayer<const M: usize, const H: usize, const F: usize, E: Float = f32, D: Device = Cpu> {
    /// Self-attention.
    pub self_attn: MultiHeadAttention<M, H, E, D>,
    /// Feed-forward, in.
    pub linear1: Linear<M, F, E, D>,
    /// Feed-forward, out.
    pub linear2: Linear<F, M, E, D>,
    /// The norm after (or, pre-norm, before) attention.
    pub norm1: LayerNorm<M, E, D>,
    /// The norm after (or before) the feed-forward block.
    pub norm2: LayerNorm<M, E, D>,
    /// Dropout in training mode (also set on `self_attn`).
    pub dropout: f64,
    /// The feed-forward activation.
    pub activation: Activation,
    /// Normalise before each block instead of after (PyTorch's `norm_first`).
    pub norm_first: bool,
}

impl<const M: usize, const H: usize, const F: usize, E: Float, D: Device> BuildOn<D>
    for TransformerEncoderLayer<M, H, F, E, D>
{
    fn try_build(dev: &D) -> Result<Self> {
        let mut self_attn = MultiHeadAttention::try_build(dev)?;
        self_attn.dropout = 0.1;
        Ok(Self {
            self_attn,
            linear1: Linear::try_build(dev)?,
            linear2: Linear::try_build(dev)?,
            norm1: LayerNorm::try_build(dev)?,
            norm2: LayerNorm::try_build(dev)?,
            dropout: 0.1,
            activation: Activation::ReLU,
            norm_first: false,
        })
    }
}

submodules!([const M: usize, const H: usize, const F: usize, E: Float, D: Device]
    TransformerEncoderLayer<M, H, F, E, D> { self_attn, linear1, linear2, norm1, norm2 });

impl<const M: usize, const H: usize, const F: usize, E: Float, D: Device> TransformerEncoderLayer<M, H, F, E, D> {
    /// Sets dropout everywhere in the layer (the attention weights included).
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self.self_attn.dropout = p;
        self
    }

    /// The layer on `x` with a self-attention mask; `train` turns dropout on.
    pub fn try_encode<B: Dim, L: Dim, T: Tape<D>>(
        &self,
        x: Seq<B, L, M, E, D, T>,
        mask: AttnMask<'_, L, L, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        let attend = |x: Seq<B, L, M, E, D, T>| -> Result<_> {
            Ok(drop(self.self_attn.try_attend(x.clone(), x.clone(), x, mask.clone(), train)?, self.dropout, train))
        };
        let feed = |x| feed_forward(&self.linear1, &self.linear2, self.activation, self.dropout, train, x);
        if self.norm_first {
            let x = x.clone().try_add(attend(self.norm1.try_forward(x)?)?)?;
            x.clone().try_add(feed(self.norm2.try_forward(x)?)?)
        } else {
            let x = self.norm1.try_forward(x.clone().try_add(attend(x)?)?)?;
            self.norm2.try_forward(x.clone().try_add(feed(x)?)?)
        }
    }
}

/// `dropout(linear2(dropout(activation(linear1(x)))))`, PyTorch's `_ff_block`.
fn feed_forward<const M: usize, const F: usize, B: Dim, L: Dim, E: Float, D: Device, T: Tape<D>>(
    linear1: &Linear<M, F, E, D>,
    linear2: &Linear<F, M, E, D>,
    activation: Activation,
    p: f64,
    train: bool,
    x: Seq<B, L, M, E, D, T>,
) -> Result<Seq<B, L, M, E, D, T>> {
    let h = drop(activation.apply(linear1.try_forward(x)?), p, train);
    Ok(drop(linear2.try_forward(h)?, p, train))
}

/// One decoder layer (`nn.TransformerDecoderLayer(M, H, F, batch_first=True)`): masked
/// self-attention, attention over the encoder's output (`memory`), and a feed-forward block.
/// Takes `(target, memory)` or `(target, memory, target_mask)`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::TransformerDecoderLayer;
/// let dev = Cpu::seeded(0);
/// let layer = TransformerDecoderLayer::<32, 4, 64>::build(&dev);
/// let tgt: Tensor<(usize, usize, Const<32>), f32, Cpu> = dev.randn_like(&(2, 5, Const));
/// let memory: Tensor<(usize, usize, Const<32>), f32, Cpu> = dev.randn_like(&(2, 9, Const));
/// assert_eq!(layer.forward((tgt, memory, AttnMask::Causal)).dims().as_slice(), &[2, 5, 32]);
/// ```
#[derive(Clone, Debug)]
pub struct TransformerDecoderLayer<const M: usize, const H: usize, const F: usize, E: Float = f32, D: Device = Cpu> {
    /// Self-attention over the target.
    pub self_attn: MultiHeadAttention<M, H, E, D>,
    /// Attention over the memory.
    pub multihead_attn: MultiHeadAttention<M, H, E, D>,
    /// Feed-forward, in.
    pub linear1: Linear<M, F, E, D>,
    /// Feed-forward, out.
    pub linear2: Linear<F, M, E, D>,
    /// The norm of the self-attention block.
    pub norm1: LayerNorm<M, E, D>,
    /// The norm of the memory-attention block.
    pub norm2: LayerNorm<M, E, D>,
    /// The norm of the feed-forward block.
    pub norm3: LayerNorm<M, E, D>,
    /// Dropout in training mode (also set on both attentions).
    pub dropout: f64,
    /// The feed-forward activation.
    pub activation: Activation,
    /// Normalise before each block instead of after.
    pub norm_first: bool,
}

impl<const M: usize, const H: usize, const F: usize, E: Float, D: Device> BuildOn<D>
    for TransformerDecoderLayer<M, H, F, E, D>
{
    fn try_build(dev: &D) -> Result<Self> {
        let mut self_attn = MultiHeadAttention::try_build(dev)?;
        let mut multihead_attn = MultiHeadAttention::try_build(dev)?;
        self_attn.dropout = 0.1;
        multihead_attn.dropout = 0.1;
        Ok(Self {
            self_attn,
            multihead_attn,
            linear1: Linear::try_build(dev)?,
            linear2: Linear::try_build(dev)?,
            norm1: LayerNorm::try_build(dev)?,
            norm2: LayerNorm::try_build(dev)?,
            norm3: LayerNorm::try_build(dev)?,
            dropout: 0.1,
            activation: Activation::ReLU,
            norm_first: false,
        })
    }
}

submodules!([const M: usize, const H: usize, const F: usize, E: Float, D: Device]
    TransformerDecoderLayer<M, H, F, E, D> { self_attn, multihead_attn, linear1, linear2, norm1, norm2, norm3 });

impl<const M: usize, const H: usize, const F: usize, E: Float, D: Device> TransformerDecoderLayer<M, H, F, E, D> {
    /// Sets dropout everywhere in the layer (the attention weights included).
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self.self_attn.dropout = p;
        self.multihead_attn.dropout = p;
        self
    }

    /// The layer on `target` attending to `memory`, with a self-attention mask and a mask over
    /// (target, memory) pairs; `train` turns dropout on.
    pub fn try_decode<B: Dim, L: Dim, S: Dim, T: Tape<D>>(
        &self,
        target: Seq<B, L, M, E, D, T>,
        memory: Seq<B, S, M, E, D, T>,
        target_mask: AttnMask<'_, L, L, D>,
        memory_mask: AttnMask<'_, L, S, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        let p = self.dropout;
        let attend_self = |x: Seq<B, L, M, E, D, T>| -> Result<_> {
            Ok(drop(self.self_attn.try_attend(x.clone(), x.clone(), x, target_mask.clone(), train)?, p, train))
        };
        let attend_memory = |x: Seq<B, L, M, E, D, T>| -> Result<_> {
            let m = memory.clone();
            Ok(drop(self.multihead_attn.try_attend(x, m.clone(), m, memory_mask.clone(), train)?, p, train))
        };
        let feed = |x| feed_forward(&self.linear1, &self.linear2, self.activation, p, train, x);
        if self.norm_first {
            let x = target.clone().try_add(attend_self(self.norm1.try_forward(target)?)?)?;
            let x = x.clone().try_add(attend_memory(self.norm2.try_forward(x)?)?)?;
            x.clone().try_add(feed(self.norm3.try_forward(x)?)?)
        } else {
            let x = self.norm1.try_forward(target.clone().try_add(attend_self(target)?)?)?;
            let x = self.norm2.try_forward(x.clone().try_add(attend_memory(x)?)?)?;
            self.norm3.try_forward(x.clone().try_add(feed(x)?)?)
        }
    }
}

/// `N` layers of type `L` and an optional final norm over `M` features: the encoder and decoder
/// stacks ([`TransformerEncoder`], [`TransformerDecoder`]). Tensors are named
/// `"layers.0.self_attn.in_proj_weight"`, `"norm.weight"`, as PyTorch's. Built without the final
/// norm, as PyTorch's default; [`Transformer`] builds it with one.
#[derive(Clone, Debug)]
pub struct TransformerStack<L, const N: usize, const M: usize, E: Float = f32, D: Device = Cpu> {
    /// The layers, in order.
    pub layers: Repeat<L, N>,
    /// The norm after the last layer.
    pub norm: Option<LayerNorm<M, E, D>>,
}

/// `N` encoder layers and an optional final norm (`nn.TransformerEncoder(layer, N, norm)`).
pub type TransformerEncoder<const M: usize, const H: usize, const F: usize, const N: usize, E = f32, D = Cpu> =
    TransformerStack<TransformerEncoderLayer<M, H, F, E, D>, N, M, E, D>;

/// `N` decoder layers and an optional final norm (`nn.TransformerDecoder(layer, N, norm)`).
pub type TransformerDecoder<const M: usize, const H: usize, const F: usize, const N: usize, E = f32, D = Cpu> =
    TransformerStack<TransformerDecoderLayer<M, H, F, E, D>, N, M, E, D>;

impl<L: BuildOn<D>, const N: usize, const M: usize, E: Float, D: Device> BuildOn<D>
    for TransformerStack<L, N, M, E, D>
{
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self { layers: Repeat::try_build(dev)?, norm: None })
    }
}

submodules!([L: Params<D>, const N: usize, const M: usize, E: Float, D: Device]
    TransformerStack<L, N, M, E, D> { layers, norm });

impl<L, const N: usize, const M: usize, E: Float, D: Device> TransformerStack<L, N, M, E, D> {
    /// The final norm on `x`, if there is one.
    fn finish<B: Dim, S: Dim, T: Tape<D>>(&self, x: Seq<B, S, M, E, D, T>) -> Result<Seq<B, S, M, E, D, T>> {
        match &self.norm {
            Some(norm) => norm.try_forward(x),
            None => Ok(x),
        }
    }
}

impl<const M: usize, const H: usize, const F: usize, const N: usize, E: Float, D: Device>
    TransformerEncoder<M, H, F, N, E, D>
{
    /// Every layer on `x` with the same mask, then the final norm if there is one.
    pub fn try_encode<B: Dim, L: Dim, T: Tape<D>>(
        &self,
        mut x: Seq<B, L, M, E, D, T>,
        mask: AttnMask<'_, L, L, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        for layer in &self.layers.0 {
            x = layer.try_encode(x, mask.clone(), train)?;
        }
        self.finish(x)
    }
}

impl<const M: usize, const H: usize, const F: usize, const N: usize, E: Float, D: Device>
    TransformerDecoder<M, H, F, N, E, D>
{
    /// Every layer on `target` over `memory` with the same masks, then the final norm if any.
    pub fn try_decode<B: Dim, L: Dim, S: Dim, T: Tape<D>>(
        &self,
        mut target: Seq<B, L, M, E, D, T>,
        memory: Seq<B, S, M, E, D, T>,
        target_mask: AttnMask<'_, L, L, D>,
        memory_mask: AttnMask<'_, L, S, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        for layer in &self.layers.0 {
            target = layer.try_decode(target, memory.clone(), target_mask.clone(), memory_mask.clone(), train)?;
        }
        self.finish(target)
    }
}

/// An encoder-decoder transformer (`nn.Transformer(M, H, NE, ND, F, batch_first=True)`): `NE`
/// encoder and `ND` decoder layers, each stack closed by a layer norm. Takes `(source, target)`
/// or `(source, target, target_mask)`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Transformer};
/// let dev = Cpu::seeded(0);
/// let model = Transformer::<32, 4, 64, 2, 2>::build(&dev);
/// assert_eq!(nn::named_tensors(&model)[0].0, "encoder.layers.0.self_attn.in_proj_weight");
/// let src: Tensor<(usize, usize, Const<32>), f32, Cpu> = dev.randn_like(&(2, 9, Const));
/// let tgt: Tensor<(usize, usize, Const<32>), f32, Cpu> = dev.randn_like(&(2, 5, Const));
/// assert_eq!(model.forward((src, tgt, AttnMask::Causal)).dims().as_slice(), &[2, 5, 32]);
/// ```
#[derive(Clone, Debug)]
pub struct Transformer<
    const M: usize,
    const H: usize,
    const F: usize,
    const NE: usize,
    const ND: usize,
    E: Float = f32,
    D: Device = Cpu,
> {
    /// The encoder stack.
    pub encoder: TransformerEncoder<M, H, F, NE, E, D>,
    /// The decoder stack.
    pub decoder: TransformerDecoder<M, H, F, ND, E, D>,
}

impl<const M: usize, const H: usize, const F: usize, const NE: usize, const ND: usize, E: Float, D: Device> BuildOn<D>
    for Transformer<M, H, F, NE, ND, E, D>
{
    fn try_build(dev: &D) -> Result<Self> {
        let mut encoder = TransformerEncoder::try_build(dev)?;
        let mut decoder = TransformerDecoder::try_build(dev)?;
        encoder.norm = Some(LayerNorm::try_build(dev)?);
        decoder.norm = Some(LayerNorm::try_build(dev)?);
        Ok(Self { encoder, decoder })
    }
}

submodules!([const M: usize, const H: usize, const F: usize, const NE: usize, const ND: usize, E: Float, D: Device]
    Transformer<M, H, F, NE, ND, E, D> { encoder, decoder });

impl<const M: usize, const H: usize, const F: usize, const NE: usize, const ND: usize, E: Float, D: Device>
    Transformer<M, H, F, NE, ND, E, D>
{
    /// Sets dropout in every layer.
    pub fn with_dropout(mut self, p: f64) -> Self {
        for layer in &mut self.encoder.layers.0 {
            *layer = layer.clone().with_dropout(p);
        }
        for layer in &mut self.decoder.layers.0 {
            *layer = layer.clone().with_dropout(p);
        }
        self
    }

    /// The encoder on `source`, then the decoder on `target` over its output, with PyTorch's
    /// three masks (`src_mask`, `tgt_mask`, `memory_mask`).
    #[allow(clippy::too_many_arguments)]
    pub fn try_transform<B: Dim, S: Dim, L: Dim, T: Tape<D>>(
        &self,
        source: Seq<B, S, M, E, D, T>,
        target: Seq<B, L, M, E, D, T>,
        source_mask: AttnMask<'_, S, S, D>,
        target_mask: AttnMask<'_, L, L, D>,
        memory_mask: AttnMask<'_, L, S, D>,
        train: bool,
    ) -> Result<Seq<B, L, M, E, D, T>> {
        let memory = self.encoder.try_encode(source, source_mask, train)?;
        self.decoder.try_decode(target, memory, target_mask, memory_mask, train)
    }
}

/// The [`Module`] and [`ModuleMut`] forms of each transformer type, from its `try_*` method.
macro_rules! forms {
    ($method:ident, $trait:ident, $self_ty:ty, $train:expr) => {
        impl<const M: usize, const H: usize, const F: usize, B: Dim, L: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<Seq<B, L, M, E, D, T>> for TransformerEncoderLayer<M, H, F, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(self: $self_ty, x: Seq<B, L, M, E, D, T>) -> Result<Self::Output> {
                self.try_encode(x, AttnMask::None, $train)
            }
        }
        impl<'a, const M: usize, const H: usize, const F: usize, B: Dim, L: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<(Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>)> for TransformerEncoderLayer<M, H, F, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (x, mask): (Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_encode(x, mask, $train)
            }
        }
        impl<
            const M: usize,
            const H: usize,
            const F: usize,
            const N: usize,
            B: Dim,
            L: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<Seq<B, L, M, E, D, T>> for TransformerEncoder<M, H, F, N, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(self: $self_ty, x: Seq<B, L, M, E, D, T>) -> Result<Self::Output> {
                self.try_encode(x, AttnMask::None, $train)
            }
        }
        impl<
            'a,
            const M: usize,
            const H: usize,
            const F: usize,
            const N: usize,
            B: Dim,
            L: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>)> for TransformerEncoder<M, H, F, N, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (x, mask): (Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_encode(x, mask, $train)
            }
        }
        impl<const M: usize, const H: usize, const F: usize, B: Dim, L: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
            $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>)> for TransformerDecoderLayer<M, H, F, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (tgt, memory): (Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>),
            ) -> Result<Self::Output> {
                self.try_decode(tgt, memory, AttnMask::None, AttnMask::None, $train)
            }
        }
        impl<
            'a,
            const M: usize,
            const H: usize,
            const F: usize,
            B: Dim,
            L: Dim,
            S: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, AttnMask<'a, L, L, D>)>
            for TransformerDecoderLayer<M, H, F, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (tgt, memory, mask): (Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_decode(tgt, memory, mask, AttnMask::None, $train)
            }
        }
        impl<
            const M: usize,
            const H: usize,
            const F: usize,
            const N: usize,
            B: Dim,
            L: Dim,
            S: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>)> for TransformerDecoder<M, H, F, N, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (tgt, memory): (Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>),
            ) -> Result<Self::Output> {
                self.try_decode(tgt, memory, AttnMask::None, AttnMask::None, $train)
            }
        }
        impl<
            'a,
            const M: usize,
            const H: usize,
            const F: usize,
            const N: usize,
            B: Dim,
            L: Dim,
            S: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, AttnMask<'a, L, L, D>)>
            for TransformerDecoder<M, H, F, N, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (tgt, memory, mask): (Seq<B, L, M, E, D, T>, Seq<B, S, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_decode(tgt, memory, mask, AttnMask::None, $train)
            }
        }
        impl<
            const M: usize,
            const H: usize,
            const F: usize,
            const NE: usize,
            const ND: usize,
            B: Dim,
            L: Dim,
            S: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, S, M, E, D, T>, Seq<B, L, M, E, D, T>)> for Transformer<M, H, F, NE, ND, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (src, tgt): (Seq<B, S, M, E, D, T>, Seq<B, L, M, E, D, T>),
            ) -> Result<Self::Output> {
                self.try_transform(src, tgt, AttnMask::None, AttnMask::None, AttnMask::None, $train)
            }
        }
        impl<
            'a,
            const M: usize,
            const H: usize,
            const F: usize,
            const NE: usize,
            const ND: usize,
            B: Dim,
            L: Dim,
            S: Dim,
            E: Float,
            D: Device,
            T: Tape<D>,
        > $trait<(Seq<B, S, M, E, D, T>, Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>)>
            for Transformer<M, H, F, NE, ND, E, D>
        {
            type Output = Seq<B, L, M, E, D, T>;
            fn $method(
                self: $self_ty,
                (src, tgt, mask): (Seq<B, S, M, E, D, T>, Seq<B, L, M, E, D, T>, AttnMask<'a, L, L, D>),
            ) -> Result<Self::Output> {
                self.try_transform(src, tgt, AttnMask::None, mask, AttnMask::None, $train)
            }
        }
    };
}
forms!(try_forward, Module, &Self, false);
forms!(try_forward_mut, ModuleMut, &mut Self, true);
