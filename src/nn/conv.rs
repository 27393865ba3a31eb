//! Convolution layers: `Conv1d`, `Conv2d` and `ConvTranspose2d`, PyTorch's, with an optional bias, the
//! stride, padding, dilation and groups as const parameters.

use super::linear::on_tape;
use super::{BuildOn, Module, init, optional_bias, same_in_training, tensor_params};
use crate::autograd::Tape;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::Result;
use crate::ops::{ConvLen, ConvOpts, ConvTransposeLen, ConvTransposeOpts};
use crate::shapes::{Axes2, Axes3, Const, Dim, Quot, Rank1, Shape};
use crate::tensor::Tensor;

/// Input channels per group: `I / G`, static (and checked at build time).
pub type PerGroup<const I: usize, const G: usize> = Quot<Const<I>, Const<G>>;

/// A 2-D convolution from `I` to `O` channels with a `K x K` kernel, stride `S`, padding `P`,
/// dilation `L` and `G` groups, plus a bias; initialised as PyTorch's (uniform in
/// `±1/√(I/G·K·K)`). Takes `(batch, I, h, w)`; the output's spatial dims are computed at
/// compile time when the input's are static.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Conv2d;
/// let dev = Cpu::seeded(0);
/// let conv = Conv2d::<1, 8, 3, 1, 1>::build(&dev);
/// let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu> = dev.zeros_like(&(4, Const, Const, Const));
/// let y: Tensor<(usize, Const<8>, Const<28>, Const<28>), f32, Cpu> = conv.forward(x).realize();
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const L: usize = 1,
    const G: usize = 1,
    E: Float = f32,
    D: Device = Cpu,
> {
    /// `(O, I / G, K, K)`, as PyTorch stores it.
    pub weight: Tensor<(Const<O>, PerGroup<I, G>, Const<K>, Const<K>), E, D>,
    /// `(O,)`; `None` in a [`NoBias`](super::NoBias) layer (PyTorch's `bias=False`).
    pub bias: Option<Tensor<Rank1<O>, E, D>>,
}

/// A 1-D convolution from `I` to `O` channels with a kernel of `K`, stride `S`, padding `P`,
/// dilation `L` and `G` groups, plus a bias (PyTorch's `nn.Conv1d`). Takes `(batch, I, length)`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::Conv1d;
/// let dev = Cpu::seeded(0);
/// let conv = Conv1d::<4, 6, 3, 1, 1, 1, 2>::build(&dev);
/// let x: Tensor<(usize, Const<4>, usize), f32, Cpu> = dev.zeros_like(&(2, Const, 50));
/// assert_eq!(conv.forward(x).dims().as_slice(), &[2, 6, 50]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv1d<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const L: usize = 1,
    const G: usize = 1,
    E: Float = f32,
    D: Device = Cpu,
> {
    /// `(O, I / G, K)`, as PyTorch stores it.
    pub weight: Tensor<(Const<O>, PerGroup<I, G>, Const<K>), E, D>,
    /// `(O,)`; `None` in a [`NoBias`](super::NoBias) layer (PyTorch's `bias=False`).
    pub bias: Option<Tensor<Rank1<O>, E, D>>,
}

macro_rules! conv_common {
    ($name:ident, $receptive:expr) => {
        impl<
            const I: usize,
            const O: usize,
            const K: usize,
            const S: usize,
            const P: usize,
            const L: usize,
            const G: usize,
            E: Float,
            D: Device,
        > BuildOn<D> for $name<I, O, K, S, P, L, G, E, D>
        {
            fn try_build(dev: &D) -> Result<Self> {
                let fan_in = (I / G.max(1)) * $receptive;
                let bound = 1.0 / math::sqrt(fan_in.max(1) as f64);
                Ok(Self {
                    weight: init::kaiming_uniform(dev, &Default::default(), math::sqrt(5f64)),
                    bias: Some(init::uniform(dev, &Default::default(), -bound, bound)),
                })
            }
        }

        tensor_params!(
            [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, E: Float, D: Device]
            $name<I, O, K, S, P, L, G, E, D> { weight: Parameter, bias: Optional }
        );
        optional_bias!(
            [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, E: Float, D: Device]
            $name<I, O, K, S, P, L, G, E, D>
        );

        same_in_training!(
            [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, E: Float, D: Device]
            $name<I, O, K, S, P, L, G, E, D>
        );
    };
}

/// The input's channel dim must be `I`: a build error for a static dim of another size, an
/// `Err` for a run-time one.
macro_rules! check_channels {
    ($c:ty, $msg:literal) => {
        const {
            if let Some(c) = <$c as Dim>::STATIC {
                assert!(c == I, $msg);
            }
        }
    };
}

/// The input with its channel dim as `Const<I>` (same sizes, same tensor).
fn realize_channels<S1: Shape, S2: Shape, const I: usize, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S1, E, D, T>,
    channels: impl Fn(&S1) -> usize,
) -> Result<Tensor<S2, E, D, T>> {
    let got = channels(x.shape());
    if got != I {
        return Err(crate::error::Error::ShapeMismatch { op: "conv", lhs: vec![I], rhs: vec![got] });
    }
    x.try_realize::<S2>()
}

conv_common!(Conv2d, K * K);
conv_common!(Conv1d, K);

impl<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    B: Dim,
    C: Dim,
    H: Dim,
    W: Dim,
    E: Float,
    D: Device,
    T: Tape<D>,
> Module<Tensor<(B, C, H, W), E, D, T>> for Conv2d<I, O, K, S, P, L, G, E, D>
{
    type Output = Tensor<(B, Const<O>, ConvLen<H, Const<K>, S, P, L>, ConvLen<W, Const<K>, S, P, L>), E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output> {
        check_channels!(
            C,
            "Conv2d<I, O, K, ..>: the input's channel dim (dim 1) is not I (see the sizes in the types of this error)"
        );
        let x = realize_channels::<_, (B, Const<I>, H, W), I, E, D, T>(x, |s| s.1.size())?;
        let tape = x.tape().clone();
        let y = x.try_conv2d(on_tape(&self.weight, &tape), ConvOpts::<S, P, L, G>)?;
        let shape = *y.shape();
        Ok(match &self.bias {
            Some(b) => y + on_tape(b, &tape).broadcast_like::<_, Axes3<0, 2, 3>>(&shape),
            None => y,
        })
    }
}

impl<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    B: Dim,
    C: Dim,
    N: Dim,
    E: Float,
    D: Device,
    T: Tape<D>,
> Module<Tensor<(B, C, N), E, D, T>> for Conv1d<I, O, K, S, P, L, G, E, D>
{
    type Output = Tensor<(B, Const<O>, ConvLen<N, Const<K>, S, P, L>), E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, N), E, D, T>) -> Result<Self::Output> {
        check_channels!(
            C,
            "Conv1d<I, O, K, ..>: the input's channel dim (dim 1) is not I (see the sizes in the types of this error)"
        );
        let x = realize_channels::<_, (B, Const<I>, N), I, E, D, T>(x, |s| s.1.size())?;
        let tape = x.tape().clone();
        let y = x.try_conv1d(on_tape(&self.weight, &tape), ConvOpts::<S, P, L, G>)?;
        let shape = *y.shape();
        Ok(match &self.bias {
            Some(b) => y + on_tape(b, &tape).broadcast_like::<_, Axes2<0, 2>>(&shape),
            None => y,
        })
    }
}

/// The output shape of a [`ConvTranspose2d`].
type UpShape<B, const O: usize, H, W, const K: usize, const S: usize, const P: usize, const L: usize, const A: usize> =
    (B, Const<O>, ConvTransposeLen<H, Const<K>, S, P, L, A>, ConvTransposeLen<W, Const<K>, S, P, L, A>);

/// Output channels per group of a transposed convolution: `O / G`.
pub type OutPerGroup<const O: usize, const G: usize> = Quot<Const<O>, Const<G>>;

/// A 2-D transposed convolution ("deconvolution") from `I` to `O` channels with a `K x K`
/// kernel, stride `S`, padding `P`, dilation `L`, `G` groups and output padding `A`, plus a
/// bias: PyTorch's `nn.ConvTranspose2d` (weight `(I, O / G, K, K)`, initialised as PyTorch's).
/// Takes `(batch, I, h, w)`; the output's spatial dims are computed at compile time when the
/// input's are static.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::ConvTranspose2d;
/// let dev = Cpu::seeded(0);
/// let up = ConvTranspose2d::<16, 8, 2, 2>::build(&dev);        // doubles the resolution
/// let x: Tensor<(usize, Const<16>, Const<7>, Const<7>), f32, Cpu> = dev.zeros_like(&(3, Const, Const, Const));
/// let y: Tensor<(usize, Const<8>, Const<14>, Const<14>), f32, Cpu> = up.forward(x).realize();
/// ```
#[derive(Clone, Debug)]
pub struct ConvTranspose2d<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const L: usize = 1,
    const G: usize = 1,
    const A: usize = 0,
    E: Float = f32,
    D: Device = Cpu,
> {
    /// `(I, O / G, K, K)`, as PyTorch stores it.
    pub weight: Tensor<(Const<I>, OutPerGroup<O, G>, Const<K>, Const<K>), E, D>,
    /// `(O,)`; `None` in a [`NoBias`](super::NoBias) layer (PyTorch's `bias=False`).
    pub bias: Option<Tensor<Rank1<O>, E, D>>,
}

impl<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    const A: usize,
    E: Float,
    D: Device,
> BuildOn<D> for ConvTranspose2d<I, O, K, S, P, L, G, A, E, D>
{
    fn try_build(dev: &D) -> Result<Self> {
        const {
            assert!(
                G > 0 && I.is_multiple_of(G) && O.is_multiple_of(G),
                "ConvTranspose2d<I, O, K, S, P, L, G>: G must divide I and O"
            );
        }
        // PyTorch's fan-in of this weight is its dim 1 times the kernel: (O / G) K²
        let fan_in = (O / G) * K * K;
        let bound = 1.0 / math::sqrt(fan_in.max(1) as f64);
        let shape = (Const, OutPerGroup::<O, G>::new(O / G), Const, Const);
        Ok(Self {
            weight: init::kaiming_uniform(dev, &shape, math::sqrt(5f64)),
            bias: Some(init::uniform(dev, &Default::default(), -bound, bound)),
        })
    }
}

tensor_params!(
    [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, const A: usize, E: Float, D: Device]
    ConvTranspose2d<I, O, K, S, P, L, G, A, E, D> { weight: Parameter, bias: Optional }
);
optional_bias!(
    [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, const A: usize, E: Float, D: Device]
    ConvTranspose2d<I, O, K, S, P, L, G, A, E, D>
);
same_in_training!(
    [const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const L: usize, const G: usize, const A: usize, E: Float, D: Device]
    ConvTranspose2d<I, O, K, S, P, L, G, A, E, D>
);

impl<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    const A: usize,
    B: Dim,
    C: Dim,
    H: Dim,
    W: Dim,
    E: Float,
    D: Device,
    T: Tape<D>,
> Module<Tensor<(B, C, H, W), E, D, T>> for ConvTranspose2d<I, O, K, S, P, L, G, A, E, D>
{
    type Output = Tensor<UpShape<B, O, H, W, K, S, P, L, A>, E, D, T>;
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output> {
        check_channels!(
            C,
            "ConvTranspose2d<I, O, K, ..>: the input's channel dim (dim 1) is not I (see the sizes in the types of this error)"
        );
        let x = realize_channels::<_, (B, Const<I>, H, W), I, E, D, T>(x, |s| s.1.size())?;
        let tape = x.tape().clone();
        let y = x.try_conv_transpose2d(on_tape(&self.weight, &tape), ConvTransposeOpts::<S, P, L, G, A>)?;
        let y = y.try_realize::<UpShape<B, O, H, W, K, S, P, L, A>>()?; // O / G * G channels are O
        let shape = *y.shape();
        Ok(match &self.bias {
            Some(b) => y + on_tape(b, &tape).broadcast_like::<_, Axes3<0, 2, 3>>(&shape),
            None => y,
        })
    }
}
