//! Pooling: max and average pooling in 1-D and 2-D (stride, padding, dilation), adaptive average
//! pooling to a fixed output size, and global pooling, as PyTorch's `F.*_pool*`.
//!
//! Output lengths are the same computed dims as convolution's ([`ConvOut`]), so a pooling layer
//! between convolutions needs no annotation, and a window that does not fit is a build error.

use crate::autograd::{OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::{Device, PoolGeometry, PoolWindows};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::export::Op;
use crate::shapes::{Axes2, Const, ConvOut, Dim, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// Kernel size, stride, padding and dilation of a pooling window, the same along every spatial
/// axis. As in PyTorch the stride defaults to the kernel size: `PoolOpts::<2>` is
/// `kernel_size=2, stride=2`.
///
/// ```
/// use tensile::prelude::*;
/// let x: Tensor<Rank4<1, 1, 4, 4>, f32, Cpu> = Cpu::seeded(0).arange(16).reshape();
/// let y = x.clone().max_pool2d(PoolOpts::<2>);
/// assert_eq!(y.to_vec(), vec![5.0, 7.0, 13.0, 15.0]);
/// assert_eq!(x.max_pool2d(PoolOpts::<3, 1>).to_vec(), vec![10.0, 11.0, 14.0, 15.0]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolOpts<
    const KERNEL: usize,
    const STRIDE: usize = KERNEL,
    const PADDING: usize = 0,
    const DILATION: usize = 1,
>;

/// The output length of a pooling window along one axis (input `N`).
pub type PoolLen<N, const K: usize, const S: usize, const P: usize, const L: usize> =
    ConvOut<N, Const<K>, Const<S>, Const<P>, Const<L>>;

/// The shape of a 2-D pooling op's output.
pub type Pool2dShape<B, C, H, W, const K: usize, const S: usize, const P: usize, const L: usize> =
    (B, C, PoolLen<H, K, S, P, L>, PoolLen<W, K, S, P, L>);

macro_rules! static_checks {
    ($op:literal, $k:expr, $s:expr, $p:expr, $l:expr) => {
        assert!($k > 0 && $s > 0 && $l > 0, concat!($op, ": kernel, stride and dilation must be at least 1"));
        assert!(2 * $p <= $k, concat!($op, ": the padding must be at most half the kernel size (PyTorch's rule)"));
    };
}

#[derive(Clone, Copy)]
enum Kind {
    Max,
    Avg { count_include_pad: bool },
}

fn out_len(op: &'static str, input: usize, k: usize, s: usize, p: usize, l: usize) -> Result<usize> {
    crate::shapes::window_out(input, k, s, p, l).ok_or_else(|| Error::InvalidSize {
        op,
        reason: format!("a window of {k} (dilation {l}) does not fit an input of {input} padded by {p}"),
    })
}

/// Max pooling's indices, kept for the backward pass.
type Indices<D> = Option<Arc<<D as Device>::Storage<i64>>>;

/// The differentiable pooling primitive. Returns the output and, for max pooling on a tape or
/// when `want_indices`, the indices (without either, max pooling skips computing them).
fn pool_op<S1: Shape, S2: Shape, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S1, E, D, T>,
    g: PoolGeometry,
    shape: S2,
    kind: Kind,
    name: &'static str,
    want_indices: bool,
) -> (Tensor<S2, E, D, T>, Indices<D>) {
    let xd = x.device.contiguous(x.data.clone(), &x.layout());
    let (x, tape) = x.split_tape();
    let dev = x.device.clone();
    let (y, indices) = match kind {
        Kind::Max if T::TAPED || want_indices => {
            let (y, i) = dev.max_pool2d(&xd, &g);
            (y, Some(Arc::new(i)))
        }
        Kind::Max => (dev.max_pool2d_values(&xd, &g), None),
        Kind::Avg { count_include_pad } => (dev.avg_pool2d(&xd, &g, count_include_pad), None),
    };
    let out = Tensor::from_storage(dev.clone(), y, shape);
    if T::TAPED {
        crate::autograd::capture(&tape, &x);
        let op = match kind {
            Kind::Max => Op::MaxPool { geometry: g },
            Kind::Avg { count_include_pad } => Op::AvgPool { geometry: g, count_include_pad },
        };
        let record = OpRecord::new(name, vec![x.id], out.id, shape.dims()).exports(op, E::DTYPE);
        let (xid, oid, nx, idx) = (x.id, out.id, x.shape.numel(), indices.clone());
        tape.add_backward_op(record, move |grads| {
            grads.backward_step::<E, 1>(&dev, oid, [(xid, nx)], |gy, [gx]| match (kind, &idx) {
                (Kind::Max, Some(idx)) => dev.max_pool2d_backward(idx, gy, &g, gx),
                (Kind::Avg { count_include_pad }, _) => dev.avg_pool2d_backward(gy, &g, count_include_pad, gx),
                (Kind::Max, None) => unreachable!("max pooling keeps its indices"),
            });
            Ok(())
        });
    }
    (out.put_tape(tape), indices)
}

impl<B: Dim, C: Dim, H: Dim, W: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(B, C, H, W), E, D, T> {
    fn pool2d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        kind: Kind,
        name: &'static str,
        want_indices: bool,
    ) -> Result<(Tensor<Pool2dShape<B, C, H, W, K, S, P, L>, E, D, T>, Indices<D>)> {
        let (b, c, h, w) = self.shape;
        let (oh, ow) = (out_len(name, h.size(), K, S, P, L)?, out_len(name, w.size(), K, S, P, L)?);
        let windows = PoolWindows::Sliding { kernel: [K; 2], stride: [S; 2], padding: [P; 2], dilation: [L; 2] };
        let g = PoolGeometry { planes: b.size() * c.size(), input: [h.size(), w.size()], output: [oh, ow], windows };
        Ok(pool_op(self, g, (b, c, ConvOut::new(oh), ConvOut::new(ow)), kind, name, want_indices))
    }

    /// 2-D max pooling (PyTorch's `F.max_pool2d`); padding counts as -inf.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<8, 32, 24, 24>, f32, Cpu> = Cpu::seeded(0).randn();
    /// let y: Tensor<Rank4<8, 32, 12, 12>, f32, Cpu> = x.max_pool2d(PoolOpts::<2, 2>).realize();
    /// ```
    pub fn max_pool2d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        opts: PoolOpts<K, S, P, L>,
    ) -> Tensor<Pool2dShape<B, C, H, W, K, S, P, L>, E, D, T> {
        const {
            static_checks!("max_pool2d", K, S, P, L);
            let _ = <PoolLen<H, K, S, P, L> as Dim>::STATIC;
            let _ = <PoolLen<W, K, S, P, L> as Dim>::STATIC;
        }
        self.try_max_pool2d(opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::max_pool2d`], returning `Err` when a run-time input is smaller than the window.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = Cpu::seeded(0).zeros_like(&(1, 1, 2, 2));
    /// assert!(x.try_max_pool2d(PoolOpts::<3, 1>).is_err());
    /// ```
    pub fn try_max_pool2d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        _opts: PoolOpts<K, S, P, L>,
    ) -> Result<Tensor<Pool2dShape<B, C, H, W, K, S, P, L>, E, D, T>> {
        const {
            static_checks!("max_pool2d", K, S, P, L);
        }
        Ok(self.pool2d::<K, S, P, L>(Kind::Max, "max_pool2d", false)?.0)
    }

    /// [`Tensor::max_pool2d`] with the index of each maximum in its flattened input plane
    /// (PyTorch's `return_indices=True`; the indices carry no gradient).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 1, 2, 2>, f32, Cpu> = Cpu::seeded(0).tensor([[[[1.0, 4.0], [3.0, 2.0]]]]);
    /// let (y, i) = x.max_pool2d_with_indices(PoolOpts::<2, 2>);
    /// assert_eq!((y.to_vec(), i.to_vec()), (vec![4.0], vec![1i64]));
    /// ```
    pub fn max_pool2d_with_indices<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        _opts: PoolOpts<K, S, P, L>,
    ) -> (Tensor<Pool2dShape<B, C, H, W, K, S, P, L>, E, D, T>, Tensor<Pool2dShape<B, C, H, W, K, S, P, L>, i64, D>)
    {
        const {
            static_checks!("max_pool2d", K, S, P, L);
            let _ = <PoolLen<H, K, S, P, L> as Dim>::STATIC;
            let _ = <PoolLen<W, K, S, P, L> as Dim>::STATIC;
        }
        let (y, idx) = self.pool2d::<K, S, P, L>(Kind::Max, "max_pool2d", true).unwrap_or_else(|e| panic!("{e}"));
        let idx = Tensor::from_arc(y.device.clone(), idx.expect("max pooling returns indices"), y.shape);
        (y, idx)
    }

    /// 2-D average pooling (PyTorch's `F.avg_pool2d` with its default `count_include_pad=True`:
    /// padded taps count in the divisor). No dilation, as in PyTorch.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 1, 2, 2>, f32, Cpu> = Cpu::seeded(0).tensor([[[[1.0, 2.0], [3.0, 6.0]]]]);
    /// assert_eq!(x.avg_pool2d(PoolOpts::<2, 2>).to_vec(), vec![3.0]);
    /// ```
    pub fn avg_pool2d<const K: usize, const S: usize, const P: usize>(
        self,
        opts: PoolOpts<K, S, P, 1>,
    ) -> Tensor<Pool2dShape<B, C, H, W, K, S, P, 1>, E, D, T> {
        const {
            static_checks!("avg_pool2d", K, S, P, 1);
            let _ = <PoolLen<H, K, S, P, 1> as Dim>::STATIC;
            let _ = <PoolLen<W, K, S, P, 1> as Dim>::STATIC;
        }
        self.try_avg_pool2d(opts, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Average pooling with the divisor chosen: `count_include_pad = false` divides by the taps
    /// inside the input only. `Err` when a run-time input is smaller than the window.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 1, 1, 1>, f32, Cpu> = Cpu::seeded(0).tensor([[[[4.0]]]]);
    /// let y = x.try_avg_pool2d(PoolOpts::<3, 1, 1>, false).unwrap();
    /// assert_eq!(y.to_vec(), vec![4.0]); // one tap inside, 8 in the padding
    /// ```
    pub fn try_avg_pool2d<const K: usize, const S: usize, const P: usize>(
        self,
        _opts: PoolOpts<K, S, P, 1>,
        count_include_pad: bool,
    ) -> Result<Tensor<Pool2dShape<B, C, H, W, K, S, P, 1>, E, D, T>> {
        const {
            static_checks!("avg_pool2d", K, S, P, 1);
        }
        Ok(self.pool2d::<K, S, P, 1>(Kind::Avg { count_include_pad }, "avg_pool2d", false)?.0)
    }

    /// Average pooling to an `OH x OW` output whatever the input size (PyTorch's
    /// `F.adaptive_avg_pool2d`): output cell `i` covers input rows `floor(i H / OH)` to
    /// `ceil((i + 1) H / OH)`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize, Const<3>, usize, usize), f32, Cpu> = Cpu::seeded(0).ones_like(&(2, Const, 13, 9));
    /// let y: Tensor<(usize, Const<3>, Const<7>, Const<7>), f32, Cpu> = x.adaptive_avg_pool2d::<7, 7>();
    /// assert!(y.to_vec().iter().all(|&v| v == 1.0));
    /// ```
    pub fn adaptive_avg_pool2d<const OH: usize, const OW: usize>(
        self,
    ) -> Tensor<(B, C, Const<OH>, Const<OW>), E, D, T> {
        const { assert!(OH > 0 && OW > 0, "adaptive_avg_pool2d: the output size must be at least 1") };
        let (b, c, h, w) = self.shape;
        let g = PoolGeometry {
            planes: b.size() * c.size(),
            input: [h.size(), w.size()],
            output: [OH, OW],
            windows: PoolWindows::Adaptive,
        };
        pool_op(self, g, (b, c, Const, Const), Kind::Avg { count_include_pad: false }, "adaptive_avg_pool2d", false).0
    }

    /// The mean over each channel's plane: `(B, C, H, W)` to `(B, C)`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 2, 1, 2>, f32, Cpu> = Cpu::seeded(0).tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]]);
    /// assert_eq!(x.global_avg_pool2d().to_array(), [[2.0, 2.0]]);
    /// ```
    pub fn global_avg_pool2d(self) -> Tensor<(B, C), E, D, T> {
        self.mean::<(B, C), Axes2<2, 3>>()
    }

    /// The maximum over each channel's plane: `(B, C, H, W)` to `(B, C)`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<1, 2, 1, 2>, f32, Cpu> = Cpu::seeded(0).tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]]);
    /// assert_eq!(x.global_max_pool2d().to_array(), [[3.0, 2.0]]);
    /// ```
    pub fn global_max_pool2d(self) -> Tensor<(B, C), E, D, T> {
        self.max::<(B, C), Axes2<2, 3>>()
    }
}

impl<B: Dim, C: Dim, N: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(B, C, N), E, D, T> {
    fn pool1d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        kind: Kind,
        name: &'static str,
    ) -> Result<Tensor<(B, C, PoolLen<N, K, S, P, L>), E, D, T>> {
        let (b, c, n) = self.shape;
        let on = out_len(name, n.size(), K, S, P, L)?;
        let windows = PoolWindows::Sliding { kernel: [1, K], stride: [1, S], padding: [0, P], dilation: [1, L] };
        let g = PoolGeometry { planes: b.size() * c.size(), input: [1, n.size()], output: [1, on], windows };
        Ok(pool_op(self, g, (b, c, ConvOut::new(on)), kind, name, false).0)
    }

    /// 1-D max pooling (PyTorch's `F.max_pool1d`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[1.0f32, 5.0, 2.0, 0.0]]]);
    /// assert_eq!(x.max_pool1d(PoolOpts::<2, 2>).to_vec(), vec![5.0, 2.0]);
    /// ```
    pub fn max_pool1d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        opts: PoolOpts<K, S, P, L>,
    ) -> Tensor<(B, C, PoolLen<N, K, S, P, L>), E, D, T> {
        const {
            static_checks!("max_pool1d", K, S, P, L);
            let _ = <PoolLen<N, K, S, P, L> as Dim>::STATIC;
        }
        self.try_max_pool1d(opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::max_pool1d`], returning `Err` when a run-time input is smaller than the window.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize, usize, usize), f32, Cpu> = Cpu::seeded(0).zeros_like(&(1, 1, 2));
    /// assert!(x.try_max_pool1d(PoolOpts::<3, 1>).is_err());
    /// ```
    pub fn try_max_pool1d<const K: usize, const S: usize, const P: usize, const L: usize>(
        self,
        _opts: PoolOpts<K, S, P, L>,
    ) -> Result<Tensor<(B, C, PoolLen<N, K, S, P, L>), E, D, T>> {
        const {
            static_checks!("max_pool1d", K, S, P, L);
        }
        self.pool1d::<K, S, P, L>(Kind::Max, "max_pool1d")
    }

    /// 1-D average pooling (PyTorch's `F.avg_pool1d`, `count_include_pad=True`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[1.0f32, 5.0, 2.0, 0.0]]]);
    /// assert_eq!(x.avg_pool1d(PoolOpts::<2, 2>).to_vec(), vec![3.0, 1.0]);
    /// ```
    pub fn avg_pool1d<const K: usize, const S: usize, const P: usize>(
        self,
        opts: PoolOpts<K, S, P, 1>,
    ) -> Tensor<(B, C, PoolLen<N, K, S, P, 1>), E, D, T> {
        const {
            static_checks!("avg_pool1d", K, S, P, 1);
            let _ = <PoolLen<N, K, S, P, 1> as Dim>::STATIC;
        }
        self.try_avg_pool1d(opts, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::avg_pool1d`] with the divisor chosen; `Err` when a run-time input is smaller
    /// than the window.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[[2.0f32, 4.0]]]);
    /// assert_eq!(x.try_avg_pool1d(PoolOpts::<2, 2, 1>, false).unwrap().to_vec(), vec![2.0, 4.0]);
    /// ```
    pub fn try_avg_pool1d<const K: usize, const S: usize, const P: usize>(
        self,
        _opts: PoolOpts<K, S, P, 1>,
        count_include_pad: bool,
    ) -> Result<Tensor<(B, C, PoolLen<N, K, S, P, 1>), E, D, T>> {
        const {
            static_checks!("avg_pool1d", K, S, P, 1);
        }
        self.pool1d::<K, S, P, 1>(Kind::Avg { count_include_pad }, "avg_pool1d")
    }
}
