//! Padding (constant, reflect, replicate) and resizing (nearest, bilinear) of 1-D and 2-D
//! signals, as PyTorch's `F.pad` and `F.interpolate`. Every one is an `index_select` along each
//! spatial axis (plus a mask or a blend), so its gradient comes from `gather`'s.
//!
//! Padded lengths are the computed dim [`Padded`]; resized lengths are the `Const` sizes asked for.

use crate::autograd::Tape;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Axes3, Axis, Const, Dim, Padded, ReplaceDim, Shape};
use crate::tensor::{Tensor, TensorFactory};

/// Elements added before and after an axis.
///
/// ```
/// use tensile::prelude::*;
/// let x = Cpu::seeded(0).tensor([[[1.0f32, 2.0, 3.0]]]);
/// let y = x.pad1d(Pad::<2, 1>, PadMode::Reflect);
/// assert_eq!(y.to_vec(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pad<const BEFORE: usize, const AFTER: usize>;

/// How padding is filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant (PyTorch's `mode="constant"`, default value 0).
    Constant(f64),
    /// The input mirrored at its edges, the edge not repeated (`mode="reflect"`).
    Reflect,
    /// The edge element repeated (`mode="replicate"`).
    Replicate,
}

/// Where each padded position reads from, and whether it is padding.
fn pad_sources(
    n: usize,
    before: usize,
    after: usize,
    mode: PadMode,
    op: &'static str,
) -> Result<(Vec<i64>, Vec<bool>)> {
    if n == 0 || (mode == PadMode::Reflect && (before >= n || after >= n)) {
        return Err(Error::InvalidSize {
            op,
            reason: format!("padding ({before}, {after}) in {mode:?} mode does not fit an axis of {n}"),
        });
    }
    let (n, before) = (n as i64, before as i64);
    let src: Vec<i64> = (-before..n + after as i64)
        .map(|j| match mode {
            PadMode::Reflect if j < 0 => -j,
            PadMode::Reflect if j >= n => 2 * (n - 1) - j,
            _ => j.clamp(0, n - 1),
        })
        .collect();
    let is_pad = (-before..n + after as i64).map(|j| j < 0 || j >= n).collect();
    Ok((src, is_pad))
}

/// Pads axis `I` (a `Dim` of type `X`) by `B` and `A`.
fn pad_axis<S, X: Dim, const I: usize, const B: usize, const A: usize, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S, E, D, T>,
    mode: PadMode,
    op: &'static str,
) -> Result<Tensor<<S as ReplaceDim<Axis<I>, Padded<X, Const<B>, Const<A>>>>::Output, E, D, T>>
where
    S: Shape + ReplaceDim<Axis<I>, usize> + ReplaceDim<Axis<I>, Padded<X, Const<B>, Const<A>>>,
{
    let n = x.dims()[I];
    let (src, is_pad) = pad_sources(n, B, A, mode, op)?;
    let len = src.len();
    let index = x.device.from_vec(src, (len,));
    let y = x.try_index_select(Axis::<I>, &index)?;
    let y = match mode {
        PadMode::Constant(value) => {
            let dims = y.dims();
            let inner: usize = dims.as_slice()[I + 1..].iter().product();
            let mask: Vec<bool> = (0..y.numel()).map(|e| is_pad[(e / inner) % len]).collect();
            let mask = y.device.try_from_vec(mask, *y.shape())?;
            y.try_masked_fill(&mask, value)?
        }
        _ => y,
    };
    y.try_realize()
}

impl<N: Dim, C: Dim, L: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(N, C, L), E, D, T> {
    /// Pads the last axis of a `(batch, channels, length)` tensor by `B` before and `A` after
    /// (PyTorch's `F.pad(x, (B, A), mode)`); `Err` when reflect padding is not smaller than the
    /// length.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize, usize, usize), f32, Cpu> = Cpu::seeded(0).ones_like(&(1, 1, 2));
    /// assert!(x.try_pad1d(Pad::<2, 0>, PadMode::Reflect).is_err());
    /// ```
    pub fn try_pad1d<const B: usize, const A: usize>(
        self,
        _pad: Pad<B, A>,
        mode: PadMode,
    ) -> Result<Tensor<(N, C, Padded<L, Const<B>, Const<A>>), E, D, T>> {
        pad_axis::<_, L, 2, B, A, E, D, T>(self, mode, "pad1d")
    }

    /// [`Self::try_pad1d`], panicking when the padding does not fit.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[1.0f32, 2.0]]]);
    /// assert_eq!(x.pad1d(Pad::<1, 1>, PadMode::Constant(0.0)).to_vec(), vec![0.0, 1.0, 2.0, 0.0]);
    /// ```
    pub fn pad1d<const B: usize, const A: usize>(
        self,
        pad: Pad<B, A>,
        mode: PadMode,
    ) -> Tensor<(N, C, Padded<L, Const<B>, Const<A>>), E, D, T> {
        self.try_pad1d(pad, mode).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Per output position along one axis: the two source positions and the weight of the second.
fn linear_sources(input: usize, output: usize, align_corners: bool) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let mut lo = Vec::with_capacity(output);
    let mut hi = Vec::with_capacity(output);
    let mut t = Vec::with_capacity(output);
    for o in 0..output {
        let src = if align_corners {
            if output > 1 { o as f64 * (input - 1) as f64 / (output - 1) as f64 } else { 0.0 }
        } else {
            ((o as f64 + 0.5) * input as f64 / output as f64 - 0.5).max(0.0)
        };
        let i0 = (math::floor(src) as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        lo.push(i0 as i64);
        hi.push(i1 as i64);
        t.push(src - i0 as f64);
    }
    (lo, hi, t)
}

impl<N: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(N, C, H, W), E, D, T> {
    /// Pads the two spatial axes of a `(batch, channels, h, w)` tensor: height by `TOP`/`BOTTOM`,
    /// width by `LEFT`/`RIGHT` (PyTorch's `F.pad(x, (LEFT, RIGHT, TOP, BOTTOM), mode)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 3, 28, 28>, f32, Cpu> = Cpu::seeded(0).randn();
    /// let y: Tensor<Rank4<1, 3, 32, 30>, f32, Cpu> = x.pad2d(Pad::<2, 2>, Pad::<1, 1>, PadMode::Replicate).realize();
    /// ```
    pub fn pad2d<const TOP: usize, const BOTTOM: usize, const LEFT: usize, const RIGHT: usize>(
        self,
        height: Pad<TOP, BOTTOM>,
        width: Pad<LEFT, RIGHT>,
        mode: PadMode,
    ) -> Tensor<(N, C, Padded<H, Const<TOP>, Const<BOTTOM>>, Padded<W, Const<LEFT>, Const<RIGHT>>), E, D, T> {
        self.try_pad2d(height, width, mode).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::pad2d`], returning `Err` when reflect padding is not smaller than an axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = Cpu::seeded(0).ones_like(&(1, 1, 3, 1));
    /// assert!(x.try_pad2d(Pad::<1, 1>, Pad::<1, 1>, PadMode::Reflect).is_err());
    /// ```
    pub fn try_pad2d<const TOP: usize, const BOTTOM: usize, const LEFT: usize, const RIGHT: usize>(
        self,
        _height: Pad<TOP, BOTTOM>,
        _width: Pad<LEFT, RIGHT>,
        mode: PadMode,
    ) -> Result<Tensor<(N, C, Padded<H, Const<TOP>, Const<BOTTOM>>, Padded<W, Const<LEFT>, Const<RIGHT>>), E, D, T>>
    {
        let x = pad_axis::<_, W, 3, LEFT, RIGHT, E, D, T>(self, mode, "pad2d")?;
        pad_axis::<_, H, 2, TOP, BOTTOM, E, D, T>(x, mode, "pad2d")
    }

    /// Nearest-neighbour resize to `OH x OW` (PyTorch's `F.interpolate(x, size, mode="nearest")`:
    /// output `o` reads input `floor(o * in / out)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[[1.0f32, 2.0]]]]);
    /// let y = x.upsample_nearest2d::<2, 4>();
    /// assert_eq!(y.to_vec(), vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    /// ```
    pub fn upsample_nearest2d<const OH: usize, const OW: usize>(self) -> Tensor<(N, C, Const<OH>, Const<OW>), E, D, T> {
        let (_, _, h, w) = self.shape;
        let nearest = |n: usize, out: usize| -> Vec<i64> { (0..out).map(|o| (o * n / out) as i64).collect() };
        let iw = self.device.from_vec(nearest(w.size(), OW), (Const::<OW>,));
        let ih = self.device.from_vec(nearest(h.size(), OH), (Const::<OH>,));
        self.index_select(Axis::<3>, &iw).index_select(Axis::<2>, &ih)
    }

    /// Bilinear resize to `OH x OW` (PyTorch's `F.interpolate(x, size, mode="bilinear",
    /// align_corners=..)`): with `align_corners` the corner pixels' centres line up, without it
    /// their edges do.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[[0.0f32, 3.0]]]]);
    /// assert_eq!(x.clone().upsample_bilinear2d::<1, 4>(true).to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    /// assert_eq!(x.upsample_bilinear2d::<1, 4>(false).to_vec(), vec![0.0, 0.75, 2.25, 3.0]);
    /// ```
    pub fn upsample_bilinear2d<const OH: usize, const OW: usize>(
        self,
        align_corners: bool,
    ) -> Tensor<(N, C, Const<OH>, Const<OW>), E, D, T>
    where
        T: Clone,
    {
        let (n, c, h, w) = self.shape;
        let dev = self.device.clone();
        // along the width
        let (lo, hi, t) = linear_sources(w.size(), OW, align_corners);
        let shape_w = (n, c, h, Const::<OW>);
        let weight = |t: &[f64], keep_first: bool| -> Vec<E> {
            t.iter().map(|&t| E::cast_f64(if keep_first { 1.0 - t } else { t })).collect()
        };
        let (wl, wh) =
            (dev.from_vec(weight(&t, true), (Const::<OW>,)), dev.from_vec(weight(&t, false), (Const::<OW>,)));
        let (lo, hi) = (dev.from_vec(lo, (Const::<OW>,)), dev.from_vec(hi, (Const::<OW>,)));
        let x = self.clone().index_select(Axis::<3>, &lo) * wl.broadcast_like::<_, Axes3<0, 1, 2>>(&shape_w)
            + self.index_select(Axis::<3>, &hi) * wh.broadcast_like::<_, Axes3<0, 1, 2>>(&shape_w);
        // along the height
        let (lo, hi, t) = linear_sources(h.size(), OH, align_corners);
        let shape = (n, c, Const::<OH>, Const::<OW>);
        let (wl, wh) =
            (dev.from_vec(weight(&t, true), (Const::<OH>,)), dev.from_vec(weight(&t, false), (Const::<OH>,)));
        let (lo, hi) = (dev.from_vec(lo, (Const::<OH>,)), dev.from_vec(hi, (Const::<OH>,)));
        x.clone().index_select(Axis::<2>, &lo) * wl.broadcast_like::<_, Axes3<0, 1, 3>>(&shape)
            + x.index_select(Axis::<2>, &hi) * wh.broadcast_like::<_, Axes3<0, 1, 3>>(&shape)
    }
}
