//! Convolutions: conv1d, conv2d and their transposes, with stride, padding, dilation and groups
//! (depthwise included), as PyTorch's `F.conv*` (cross-correlation, channels first).
//!
//! Output lengths are computed dims ([`ConvOut`], [`ConvTransposeOut`]): static when the input
//! and kernel sizes are, so a model's layers compose with no annotations, and a kernel that does
//! not fit is a build error. Channel and group mismatches are build errors for static channel
//! counts and `Err` from the `try_*` forms otherwise.
//!
//! One differentiable primitive serves all four ops: a 1-D convolution is a 2-D one of height 1,
//! and a transposed convolution runs the convolution's kernels in the other order (its forward
//! is the convolution's input gradient, and its input gradient the convolution's forward).

use crate::autograd::{Merge, OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::{ConvGeometry, Device};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::export::Op;
use crate::shapes::{Const, ConvOut, ConvTransposeOut, Dim, Prod, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// Stride, padding, dilation and groups of a convolution (PyTorch's defaults: 1, 0, 1, 1),
/// the same along every spatial axis.
///
/// ```
/// use tensile::prelude::*;
/// let x: Tensor<Rank4<1, 4, 8, 8>, f32, Cpu> = Cpu::seeded(0).ones();
/// let w: Tensor<Rank4<4, 2, 3, 3>, f32, Cpu> = Cpu::seeded(0).ones();
/// // stride 2, padding 1, dilation 1, 2 groups
/// let y = x.conv2d(w, ConvOpts::<2, 1, 1, 2>);
/// assert_eq!(y.dims().as_slice(), &[1, 4, 4, 4]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvOpts<
    const STRIDE: usize = 1,
    const PADDING: usize = 0,
    const DILATION: usize = 1,
    const GROUPS: usize = 1,
>;

/// Stride, padding, dilation, groups and output padding of a transposed convolution (PyTorch's
/// defaults: 1, 0, 1, 1, 0).
///
/// ```
/// use tensile::prelude::*;
/// let x: Tensor<Rank3<1, 2, 5>, f32, Cpu> = Cpu::seeded(0).ones();
/// let w: Tensor<Rank3<2, 3, 3>, f32, Cpu> = Cpu::seeded(0).ones();
/// let y = x.conv_transpose1d(w, ConvTransposeOpts::<2, 1, 1, 1, 1>);
/// assert_eq!(y.dims().as_slice(), &[1, 3, 10]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvTransposeOpts<
    const STRIDE: usize = 1,
    const PADDING: usize = 0,
    const DILATION: usize = 1,
    const GROUPS: usize = 1,
    const OUTPUT_PADDING: usize = 0,
>;

/// The output length of a convolution along one axis (input `N`, kernel `K`).
pub type ConvLen<N, K, const S: usize, const P: usize, const L: usize> = ConvOut<N, K, Const<S>, Const<P>, Const<L>>;
/// The output length of a transposed convolution along one axis (input `N`, kernel `K`).
pub type ConvTransposeLen<N, K, const S: usize, const P: usize, const L: usize, const A: usize> =
    ConvTransposeOut<N, K, Const<S>, Const<P>, Const<L>, Const<A>>;

/// Build-time checks of a convolution whose sizes are static.
macro_rules! static_checks {
    ($op:literal, in: $c:ty, per_group: $cg:ty, out: $o:ty, $g:expr, $s:expr, $l:expr) => {
        assert!($s > 0 && $l > 0 && $g > 0, concat!($op, ": stride, dilation and groups must be at least 1"));
        if let Some(c) = <$c as Dim>::STATIC {
            assert!(c % $g == 0, concat!($op, ": the groups do not divide the input channels"));
            if let Some(cg) = <$cg as Dim>::STATIC {
                assert!(
                    cg * $g == c,
                    concat!($op, ": the weight's input channels per group (its dim 1) times the groups differ from the input's channels")
                );
            }
        }
        if let Some(o) = <$o as Dim>::STATIC {
            assert!(o % $g == 0, concat!($op, ": the groups do not divide the output channels"));
        }
    };
    ($op:literal, transposed_in: $c:ty, $g:expr, $s:expr, $l:expr) => {
        assert!($s > 0 && $l > 0 && $g > 0, concat!($op, ": stride, dilation and groups must be at least 1"));
        if let Some(c) = <$c as Dim>::STATIC {
            assert!(c % $g == 0, concat!($op, ": the groups do not divide the input channels"));
        }
    };
}

fn invalid(op: &'static str, reason: String) -> Error {
    Error::InvalidSize { op, reason }
}

/// Checks run-time channel counts: `channels` split in `groups`, each seeing `per_group`.
fn check_groups(op: &'static str, channels: usize, per_group: usize, out: usize, groups: usize) -> Result<()> {
    if groups == 0 || !channels.is_multiple_of(groups) || per_group * groups != channels {
        return Err(invalid(
            op,
            format!(
                "the input has {channels} channels but the weight expects {per_group} per group in {groups} groups"
            ),
        ));
    }
    if !out.is_multiple_of(groups) {
        return Err(invalid(op, format!("{groups} groups do not divide {out} output channels")));
    }
    Ok(())
}

/// The output length along one axis, or an `Err` naming the sizes.
fn out_len(
    op: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Result<usize> {
    crate::shapes::window_out(input, kernel, stride, padding, dilation).ok_or_else(|| {
        invalid(
            op,
            format!(
                "a kernel of {kernel} (dilation {dilation}, stride {stride}) does not fit an input of {input} padded by {padding}"
            ),
        )
    })
}

/// The transposed output length along one axis, or an `Err` naming the sizes.
fn transposed_len(
    op: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
) -> Result<usize> {
    crate::shapes::transposed_window_out(input, kernel, stride, padding, dilation, output_padding).ok_or_else(|| {
        invalid(
            op,
            format!(
                "input {input}, kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation} and output \
                 padding {output_padding} give no output (the output padding must be smaller than the stride or the \
                 dilation)"
            ),
        )
    })
}

/// The storage of a tensor as a whole contiguous buffer (copied only when it is a view).
fn whole<S: Shape, E: Float, D: Device, T>(t: &Tensor<S, E, D, T>) -> Arc<D::Storage<E>> {
    t.device.contiguous(t.data.clone(), &t.layout())
}

/// The differentiable convolution primitive: `y = x ⋆ w`, or its transpose, with `g` describing
/// the (untransposed) convolution.
fn conv_op<S1, S2, S3, E, D, L, R>(
    x: Tensor<S1, E, D, L>,
    w: Tensor<S2, E, D, R>,
    g: ConvGeometry,
    shape: S3,
    transposed: bool,
    name: &'static str,
) -> Tensor<S3, E, D, <L as Merge<D, R>>::Output>
where
    S1: Shape,
    S2: Shape,
    S3: Shape,
    E: Float,
    D: Device,
    L: Tape<D> + Merge<D, R>,
    R: Tape<D>,
{
    let (xd, wd) = (whole(&x), whole(&w));
    let (x, tx) = x.split_tape();
    let (w, tw) = w.split_tape();
    let tape = tx.merge(tw);
    let dev = x.device.clone();
    // (the transposed forward adds into its output; the plain one overwrites all of it)
    let y = if transposed {
        let mut y = dev.alloc_zeros::<E>(shape.numel());
        dev.conv2d_input_grad(&xd, &wd, &g, &mut y);
        y
    } else {
        let mut y = dev.alloc_for_overwrite::<E>(shape.numel());
        dev.conv2d(&xd, &wd, &g, &mut y, false);
        y
    };
    let out = Tensor::from_storage(dev.clone(), y, shape);
    if <<L as Merge<D, R>>::Output as Tape<D>>::TAPED {
        crate::autograd::capture(&tape, &x);
        crate::autograd::capture(&tape, &w);
        let (xid, wid, oid, nx, nw) = (x.id, w.id, out.id, x.shape.numel(), w.shape.numel());
        let op = if transposed { Op::ConvTranspose { geometry: g } } else { Op::Conv { geometry: g } };
        let record = OpRecord::new(name, vec![xid, wid], oid, shape.dims()).exports(op, E::DTYPE);
        tape.add_backward_op(record, move |grads| {
            grads.backward_step::<E, 2>(&dev, oid, [(xid, nx), (wid, nw)], |gy, [gx, gw]| {
                if transposed {
                    dev.conv2d(gy, &wd, &g, gx, true);
                    dev.conv2d_weight_grad(gy, &xd, &g, gw);
                } else {
                    dev.conv2d_input_grad(gy, &wd, &g, gx);
                    dev.conv2d_weight_grad(&xd, gy, &g, gw);
                }
            });
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// The shape of `conv2d`'s output.
pub type Conv2dShape<B, O, H, W, KH, KW, const S: usize, const P: usize, const L: usize> =
    (B, O, ConvLen<H, KH, S, P, L>, ConvLen<W, KW, S, P, L>);
/// The shape of `conv_transpose2d`'s output.
pub type ConvTranspose2dShape<
    B,
    OG,
    H,
    W,
    KH,
    KW,
    const S: usize,
    const P: usize,
    const L: usize,
    const G: usize,
    const A: usize,
> = (B, Prod<OG, Const<G>>, ConvTransposeLen<H, KH, S, P, L, A>, ConvTransposeLen<W, KW, S, P, L, A>);

impl<B: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(B, C, H, W), E, D, T> {
    /// A 2-D convolution of a `(batch, channels, height, width)` input with a
    /// `(out_channels, channels / groups, kernel_h, kernel_w)` weight (PyTorch's `F.conv2d`
    /// without bias). Static sizes are checked at build time; run-time sizes panic where
    /// [`Tensor::try_conv2d`] returns `Err`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank4<8, 1, 28, 28>, f32, Cpu> = dev.randn();
    /// let w: Tensor<Rank4<32, 1, 5, 5>, f32, Cpu> = dev.randn();
    /// let y = x.conv2d(w, ConvOpts::<1>);
    /// let y: Tensor<Rank4<8, 32, 24, 24>, f32, Cpu> = y.realize(); // the output dims are static
    /// ```
    pub fn conv2d<
        O: Dim,
        CG: Dim,
        KH: Dim,
        KW: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
    >(
        self,
        weight: Tensor<(O, CG, KH, KW), E, D, R>,
        opts: ConvOpts<S, P, L, G>,
    ) -> Tensor<Conv2dShape<B, O, H, W, KH, KW, S, P, L>, E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        const {
            static_checks!("conv2d", in: C, per_group: CG, out: O, G, S, L);
            let _ = <ConvLen<H, KH, S, P, L> as Dim>::STATIC;
            let _ = <ConvLen<W, KW, S, P, L> as Dim>::STATIC;
        }
        self.try_conv2d(weight, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::conv2d`], returning `Err` when run-time channel counts or sizes do not fit.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 3, 4, 4));
    /// let w: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(2, 3, 5, 5));
    /// assert!(x.try_conv2d(w, ConvOpts::<1>).is_err()); // 5x5 kernel, 4x4 input
    /// ```
    pub fn try_conv2d<
        O: Dim,
        CG: Dim,
        KH: Dim,
        KW: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
    >(
        self,
        weight: Tensor<(O, CG, KH, KW), E, D, R>,
        _opts: ConvOpts<S, P, L, G>,
    ) -> Result<Tensor<Conv2dShape<B, O, H, W, KH, KW, S, P, L>, E, D, <T as Merge<D, R>>::Output>>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        let (b, c, h, w) = self.shape;
        let (o, cg, kh, kw) = weight.shape;
        check_groups("conv2d", c.size(), cg.size(), o.size(), G)?;
        let oh = out_len("conv2d", h.size(), kh.size(), S, P, L)?;
        let ow = out_len("conv2d", w.size(), kw.size(), S, P, L)?;
        let g = ConvGeometry {
            batch: b.size(),
            in_channels: c.size(),
            out_channels: o.size(),
            groups: G,
            input: [h.size(), w.size()],
            kernel: [kh.size(), kw.size()],
            stride: [S; 2],
            padding: [P; 2],
            dilation: [L; 2],
            output: [oh, ow],
        };
        Ok(conv_op(self, weight, g, (b, o, ConvOut::new(oh), ConvOut::new(ow)), false, "conv2d"))
    }

    /// A 2-D transposed convolution ("deconvolution", PyTorch's `F.conv_transpose2d` without
    /// bias) of a `(batch, channels, h, w)` input with a `(channels, out_channels / groups,
    /// kernel_h, kernel_w)` weight. The output has `out_channels / groups * groups` channels (a
    /// computed dim; `realize` it to a `Const` where needed).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank4<2, 16, 7, 7>, f32, Cpu> = dev.randn();
    /// let w: Tensor<Rank4<16, 8, 2, 2>, f32, Cpu> = dev.randn();
    /// let y: Tensor<Rank4<2, 8, 14, 14>, f32, Cpu> = x.conv_transpose2d(w, ConvTransposeOpts::<2>).realize();
    /// ```
    pub fn conv_transpose2d<
        OG: Dim,
        KH: Dim,
        KW: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        const A: usize,
    >(
        self,
        weight: Tensor<(C, OG, KH, KW), E, D, R>,
        opts: ConvTransposeOpts<S, P, L, G, A>,
    ) -> Tensor<ConvTranspose2dShape<B, OG, H, W, KH, KW, S, P, L, G, A>, E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        const {
            static_checks!("conv_transpose2d", transposed_in: C, G, S, L);
            let _ = <ConvTransposeLen<H, KH, S, P, L, A> as Dim>::STATIC;
            let _ = <ConvTransposeLen<W, KW, S, P, L, A> as Dim>::STATIC;
        }
        self.try_conv_transpose2d(weight, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::conv_transpose2d`], returning `Err` when run-time sizes do not fit.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 3, 4, 4));
    /// let w: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(4, 2, 3, 3));
    /// assert!(x.try_conv_transpose2d(w, ConvTransposeOpts::<1>).is_err()); // 3 vs 4 channels
    /// ```
    pub fn try_conv_transpose2d<
        OG: Dim,
        KH: Dim,
        KW: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        const A: usize,
    >(
        self,
        weight: Tensor<(C, OG, KH, KW), E, D, R>,
        _opts: ConvTransposeOpts<S, P, L, G, A>,
    ) -> Result<Tensor<ConvTranspose2dShape<B, OG, H, W, KH, KW, S, P, L, G, A>, E, D, <T as Merge<D, R>>::Output>>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        let op = "conv_transpose2d";
        let (b, c, h, w) = self.shape;
        let (cw, og, kh, kw) = weight.shape;
        if cw.size() != c.size() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape.dims().to_vec(),
                rhs: weight.shape.dims().to_vec(),
            });
        }
        check_groups(op, c.size(), c.size() / G.max(1), c.size(), G)?;
        let oh = transposed_len(op, h.size(), kh.size(), S, P, L, A)?;
        let ow = transposed_len(op, w.size(), kw.size(), S, P, L, A)?;
        let g = ConvGeometry {
            batch: b.size(),
            in_channels: og.size() * G,
            out_channels: c.size(),
            groups: G,
            input: [oh, ow],
            kernel: [kh.size(), kw.size()],
            stride: [S; 2],
            padding: [P; 2],
            dilation: [L; 2],
            output: [h.size(), w.size()],
        };
        let shape = (b, Prod::new(og.size() * G), ConvTransposeOut::new(oh), ConvTransposeOut::new(ow));
        Ok(conv_op(self, weight, g, shape, true, op))
    }
}

impl<B: Dim, C: Dim, N: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(B, C, N), E, D, T> {
    /// A 1-D convolution of a `(batch, channels, length)` input with an
    /// `(out_channels, channels / groups, kernel)` weight (PyTorch's `F.conv1d` without bias).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[[1.0f32, 2.0, 3.0, 4.0]]]);
    /// let w = dev.tensor([[[1.0f32, -1.0]]]);
    /// assert_eq!(x.conv1d(w, ConvOpts::<1>).to_vec(), vec![-1.0, -1.0, -1.0]);
    /// ```
    pub fn conv1d<O: Dim, CG: Dim, K: Dim, R, const S: usize, const P: usize, const L: usize, const G: usize>(
        self,
        weight: Tensor<(O, CG, K), E, D, R>,
        opts: ConvOpts<S, P, L, G>,
    ) -> Tensor<(B, O, ConvLen<N, K, S, P, L>), E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        const {
            static_checks!("conv1d", in: C, per_group: CG, out: O, G, S, L);
            let _ = <ConvLen<N, K, S, P, L> as Dim>::STATIC;
        }
        self.try_conv1d(weight, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::conv1d`], returning `Err` when run-time channel counts or sizes do not fit.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 4, 9));
    /// let w: Tensor<(usize, usize, usize), f32, Cpu> = dev.zeros_like(&(6, 2, 3));
    /// assert!(x.clone().try_conv1d(w.clone(), ConvOpts::<1, 0, 1, 2>).is_ok());
    /// assert!(x.try_conv1d(w, ConvOpts::<1, 0, 1, 4>).is_err()); // 4 groups need 1 channel each
    /// ```
    pub fn try_conv1d<O: Dim, CG: Dim, K: Dim, R, const S: usize, const P: usize, const L: usize, const G: usize>(
        self,
        weight: Tensor<(O, CG, K), E, D, R>,
        _opts: ConvOpts<S, P, L, G>,
    ) -> Result<Tensor<(B, O, ConvLen<N, K, S, P, L>), E, D, <T as Merge<D, R>>::Output>>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        let (b, c, n) = self.shape;
        let (o, cg, k) = weight.shape;
        check_groups("conv1d", c.size(), cg.size(), o.size(), G)?;
        let on = out_len("conv1d", n.size(), k.size(), S, P, L)?;
        let g = ConvGeometry {
            batch: b.size(),
            in_channels: c.size(),
            out_channels: o.size(),
            groups: G,
            input: [1, n.size()],
            kernel: [1, k.size()],
            stride: [1, S],
            padding: [0, P],
            dilation: [1, L],
            output: [1, on],
        };
        Ok(conv_op(self, weight, g, (b, o, ConvOut::new(on)), false, "conv1d"))
    }

    /// A 1-D transposed convolution (PyTorch's `F.conv_transpose1d` without bias) of a
    /// `(batch, channels, length)` input with a `(channels, out_channels / groups, kernel)` weight.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[[1.0f32, 2.0]]]);
    /// let w = dev.tensor([[[1.0f32, 10.0]]]);
    /// let y: Tensor<Rank3<1, 1, 3>, f32, Cpu> = x.conv_transpose1d(w, ConvTransposeOpts::<1>).realize();
    /// assert_eq!(y.to_array(), [[[1.0, 12.0, 20.0]]]);
    /// ```
    pub fn conv_transpose1d<
        OG: Dim,
        K: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        const A: usize,
    >(
        self,
        weight: Tensor<(C, OG, K), E, D, R>,
        opts: ConvTransposeOpts<S, P, L, G, A>,
    ) -> Tensor<(B, Prod<OG, Const<G>>, ConvTransposeLen<N, K, S, P, L, A>), E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        const {
            static_checks!("conv_transpose1d", transposed_in: C, G, S, L);
            let _ = <ConvTransposeLen<N, K, S, P, L, A> as Dim>::STATIC;
        }
        self.try_conv_transpose1d(weight, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::conv_transpose1d`], returning `Err` when run-time sizes do not fit.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 2, 4));
    /// let w: Tensor<(usize, usize, usize), f32, Cpu> = dev.zeros_like(&(2, 1, 3));
    /// assert!(x.try_conv_transpose1d(w, ConvTransposeOpts::<1, 0, 1, 1, 1>).is_err()); // output padding 1, stride 1
    /// ```
    pub fn try_conv_transpose1d<
        OG: Dim,
        K: Dim,
        R,
        const S: usize,
        const P: usize,
        const L: usize,
        const G: usize,
        const A: usize,
    >(
        self,
        weight: Tensor<(C, OG, K), E, D, R>,
        _opts: ConvTransposeOpts<S, P, L, G, A>,
    ) -> Result<Tensor<(B, Prod<OG, Const<G>>, ConvTransposeLen<N, K, S, P, L, A>), E, D, <T as Merge<D, R>>::Output>>
    where
        T: Merge<D, R>,
        R: Tape<D>,
    {
        let op = "conv_transpose1d";
        let (b, c, n) = self.shape;
        let (cw, og, k) = weight.shape;
        if cw.size() != c.size() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape.dims().to_vec(),
                rhs: weight.shape.dims().to_vec(),
            });
        }
        check_groups(op, c.size(), c.size() / G.max(1), c.size(), G)?;
        let on = transposed_len(op, n.size(), k.size(), S, P, L, A)?;
        let g = ConvGeometry {
            batch: b.size(),
            in_channels: og.size() * G,
            out_channels: c.size(),
            groups: G,
            input: [1, on],
            kernel: [1, k.size()],
            stride: [1, S],
            padding: [0, P],
            dilation: [1, L],
            output: [1, n.size()],
        };
        Ok(conv_op(self, weight, g, (b, Prod::new(og.size() * G), ConvTransposeOut::new(on)), true, op))
    }
}
