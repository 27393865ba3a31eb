//! Devices: where a tensor's storage lives and the kernels that run on it.
//!
//! Kernels take raw storage plus a [`Layout`] (run-time sizes and strides), never typed tensors:
//! the typed front end in `ops/` checks shapes and records the tape, then calls these. The same
//! kernels serve eager mode and, later, the export runtime and other devices.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod geometry;
mod layout;

use crate::compat::prelude::*;
pub use cpu::Cpu;
pub use cpu::ScanKind;
#[cfg(feature = "cuda")]
pub use cuda::Cuda;
pub use geometry::{AttnGeometry, ConvGeometry, PoolGeometry, PoolWindows};
pub use layout::Layout;

use crate::dtypes::{Dtype, Float, IndexDtype};
use crate::error::Result;
use crate::ops::{BinaryOp, CmpOp, ReduceKind, UnaryOp};
use alloc::sync::Arc;

/// A device: storage and the kernels tensile's ops are built from.
///
/// Each kernel writes a fresh contiguous output unless it says otherwise; the `Arc` inputs may be
/// reused in place when the caller holds the only reference (copy-on-write).
pub trait Device: 'static + Clone + core::fmt::Debug + Send + Sync {
    /// A buffer of elements on this device.
    type Storage<E: Dtype>: 'static + Send + Sync;

    /// The number of elements in a buffer.
    fn storage_len<E: Dtype>(s: &Self::Storage<E>) -> usize;
    /// A zero-filled buffer.
    fn alloc_zeros<E: Dtype>(&self, len: usize) -> Self::Storage<E>;
    /// A buffer whose contents are unspecified: the caller writes every element before reading
    /// any (a kernel's output). Cheaper than [`Device::alloc_zeros`]: no fill.
    fn alloc_for_overwrite<E: Dtype>(&self, len: usize) -> Self::Storage<E>;
    /// A buffer holding `data`.
    fn upload<E: Dtype>(&self, data: Vec<E>) -> Self::Storage<E>;
    /// The logical elements of a view, in row-major order.
    fn download<E: Dtype>(&self, s: &Self::Storage<E>, l: &Layout) -> Vec<E>;
    /// `dst[view] = src[view]` (or `+=` when `accumulate`) over the logical elements of two views of equal dims.
    fn copy_into<E: Float>(
        &self,
        src: &Self::Storage<E>,
        sl: &Layout,
        dst: &mut Self::Storage<E>,
        dl: &Layout,
        accumulate: bool,
    );
    /// A contiguous copy of a view (or the storage itself when it is already contiguous and unshared).
    fn contiguous<E: Dtype>(&self, s: Arc<Self::Storage<E>>, l: &Layout) -> Arc<Self::Storage<E>>;
    /// Element-wise conversion between dtypes.
    fn cast<A: Dtype, B: Dtype>(&self, s: &Self::Storage<A>, l: &Layout) -> Self::Storage<B>;

    /// `y = op(x)`.
    fn unary<E: Float, O: UnaryOp>(&self, op: &O, x: Arc<Self::Storage<E>>, l: &Layout) -> Self::Storage<E>;
    /// `gx += gy * op'(x)` (`gx = ..` when `!accumulate`); `gx` and `gy` are contiguous in
    /// `l`'s dims.
    #[allow(clippy::too_many_arguments)]
    fn unary_backward<E: Float, O: UnaryOp>(
        &self,
        op: &O,
        x: &Self::Storage<E>,
        l: &Layout,
        y: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        gx: &mut Self::Storage<E>,
        accumulate: bool,
    );
    /// `y = op(a, b)` for two views of equal dims.
    fn binary<E: Float, O: BinaryOp>(
        &self,
        op: &O,
        a: Arc<Self::Storage<E>>,
        al: &Layout,
        b: Arc<Self::Storage<E>>,
        bl: &Layout,
    ) -> Self::Storage<E>;
    /// `ga += gy * d op/da`, `gb += gy * d op/db` (each only when asked for; `=` instead of `+=`
    /// for a side whose `accumulate` flag is `false`).
    #[allow(clippy::too_many_arguments)]
    fn binary_backward<E: Float, O: BinaryOp>(
        &self,
        op: &O,
        a: &Self::Storage<E>,
        al: &Layout,
        b: &Self::Storage<E>,
        bl: &Layout,
        gy: &Self::Storage<E>,
        ga: Option<&mut Self::Storage<E>>,
        gb: Option<&mut Self::Storage<E>>,
        accumulate: [bool; 2],
    );
    /// Reduces a view over `axes` (sorted); the output is contiguous in the kept dims.
    fn reduce<E: Float>(&self, kind: ReduceKind, x: &Self::Storage<E>, l: &Layout, axes: &[usize]) -> Self::Storage<E>;
    /// Adds the gradient of a reduction into `gx` (contiguous in `l`'s dims), or writes it
    /// there when `!accumulate`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_backward<E: Float>(
        &self,
        kind: ReduceKind,
        x: &Self::Storage<E>,
        l: &Layout,
        axes: &[usize],
        y: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        gx: &mut Self::Storage<E>,
        accumulate: bool,
    );
    /// Batched matrix product over rank-3 views `[batch, m, k] x [batch, k, n] -> [batch, m, n]`
    /// (a batch stride of 0 broadcasts); `c += a b` when `accumulate`, else `c = a b`.
    #[allow(clippy::too_many_arguments)]
    fn matmul<E: Float>(
        &self,
        a: &Self::Storage<E>,
        al: &Layout,
        b: &Self::Storage<E>,
        bl: &Layout,
        c: &mut Self::Storage<E>,
        cl: &Layout,
        accumulate: bool,
    );
    /// `op(a, b)` as a bool tensor, for two views of equal dims.
    fn compare<E: Dtype, O: CmpOp>(
        &self,
        op: &O,
        a: &Self::Storage<E>,
        al: &Layout,
        b: &Self::Storage<E>,
        bl: &Layout,
    ) -> Self::Storage<bool>;
    /// `cond ? a : b` element-wise over views of equal dims.
    #[allow(clippy::too_many_arguments)]
    fn select_where<E: Dtype>(
        &self,
        cond: &Self::Storage<bool>,
        cl: &Layout,
        a: &Self::Storage<E>,
        al: &Layout,
        b: &Self::Storage<E>,
        bl: &Layout,
    ) -> Self::Storage<E>;
    /// Softmax (`log`: log-softmax) along the last axis of a contiguous view, one row at a time.
    fn softmax_rows<E: Float>(&self, x: &Self::Storage<E>, l: &Layout, log: bool) -> Self::Storage<E>;
    /// Adds the gradient of [`Device::softmax_rows`] into `gx` (writes it when `!accumulate`),
    /// from its output `y`; rows of `row`.
    fn softmax_rows_backward<E: Float>(
        &self,
        y: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        gx: &mut Self::Storage<E>,
        row: usize,
        log: bool,
        accumulate: bool,
    );
    /// `y = x ⋆ w` (`y += x ⋆ w` when `accumulate`), a 2-D convolution over contiguous buffers
    /// laid out as `g` says (PyTorch's cross-correlation, NCHW).
    fn conv2d<E: Float>(
        &self,
        x: &Self::Storage<E>,
        w: &Self::Storage<E>,
        g: &ConvGeometry,
        y: &mut Self::Storage<E>,
        accumulate: bool,
    );
    /// `gx +=` the gradient of [`Device::conv2d`] with respect to `x`, given `gy` (also the
    /// forward of a transposed convolution).
    fn conv2d_input_grad<E: Float>(
        &self,
        gy: &Self::Storage<E>,
        w: &Self::Storage<E>,
        g: &ConvGeometry,
        gx: &mut Self::Storage<E>,
    );
    /// `gw +=` the gradient of [`Device::conv2d`] with respect to `w`, given `gy`.
    fn conv2d_weight_grad<E: Float>(
        &self,
        x: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        g: &ConvGeometry,
        gw: &mut Self::Storage<E>,
    );
    /// Max pooling: the output and, per output, the index of the chosen tap in its flattened
    /// input plane; `x` contiguous.
    fn max_pool2d<E: Float>(&self, x: &Self::Storage<E>, g: &PoolGeometry) -> (Self::Storage<E>, Self::Storage<i64>);
    /// [`Device::max_pool2d`]'s output alone (inference, where no backward pass needs the
    /// indices); a device without a faster kernel computes both and drops the indices.
    fn max_pool2d_values<E: Float>(&self, x: &Self::Storage<E>, g: &PoolGeometry) -> Self::Storage<E> {
        self.max_pool2d(x, g).0
    }
    /// `gx[plane, indices] += gy` (the gradient of [`Device::max_pool2d`]).
    fn max_pool2d_backward<E: Float>(
        &self,
        indices: &Self::Storage<i64>,
        gy: &Self::Storage<E>,
        g: &PoolGeometry,
        gx: &mut Self::Storage<E>,
    );
    /// Average pooling (sliding or adaptive windows); `x` contiguous.
    fn avg_pool2d<E: Float>(&self, x: &Self::Storage<E>, g: &PoolGeometry, count_include_pad: bool)
    -> Self::Storage<E>;
    /// `gx +=` the gradient of [`Device::avg_pool2d`].
    fn avg_pool2d_backward<E: Float>(
        &self,
        gy: &Self::Storage<E>,
        g: &PoolGeometry,
        count_include_pad: bool,
        gx: &mut Self::Storage<E>,
    );
    /// `out[o, j, i] = x[o, index[o, j, i], i]` over rank-3 views `[outer, n, inner]` (`x`) and
    /// `[outer, m, inner]` (`index`, possibly broadcast); the output is contiguous. `Err` when an
    /// index is outside `0..n`.
    fn gather<E: Dtype, I: IndexDtype>(
        &self,
        x: &Self::Storage<E>,
        xl: &Layout,
        index: &Self::Storage<I>,
        il: &Layout,
    ) -> Result<Self::Storage<E>>;
    /// `dst[o, index[o, j, i], i] += src[o, j, i]`, with `src` contiguous `[outer, m, inner]` and
    /// `dst` contiguous `[outer, n, inner]`; `Err` (and `dst` unchanged) when an index is outside `0..n`.
    fn scatter_add<E: Float, I: IndexDtype>(
        &self,
        src: &Self::Storage<E>,
        index: &Self::Storage<I>,
        il: &Layout,
        dst: &mut Self::Storage<E>,
        n: usize,
    ) -> Result<()>;
    /// The indices of the `k` largest (`largest`) or smallest elements along the middle axis of a
    /// rank-3 view, in order, ties in their original order; contiguous `[outer, k, inner]`.
    fn topk_indices<E: Float>(&self, x: &Self::Storage<E>, xl: &Layout, k: usize, largest: bool) -> Self::Storage<i64>;
    /// Running sums or products along the middle axis of a contiguous `[outer, n, inner]` buffer,
    /// from the end when `reverse`.
    fn scan<E: Float>(&self, kind: ScanKind, x: &Self::Storage<E>, dims: [usize; 3], reverse: bool)
    -> Self::Storage<E>;
    /// Adds the gradient of a running product into `gx` (all contiguous `[outer, n, inner]`).
    fn cumprod_backward<E: Float>(
        &self,
        x: &Self::Storage<E>,
        y: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        dims: [usize; 3],
        gx: &mut Self::Storage<E>,
    );
    /// Normalises each `row`-long row of a contiguous buffer: `(x - mean) / sqrt(var + eps)`
    /// (layer norm; without `- mean` and with the mean square when `!center`: RMS norm), times
    /// the per-column `w` and plus `b` when given. Returns the output and the statistics the
    /// backward needs (each row's mean, then each row's reciprocal deviation).
    fn norm_rows<E: Float>(
        &self,
        x: &Self::Storage<E>,
        row: usize,
        eps: f64,
        center: bool,
        w: Option<&Self::Storage<E>>,
        b: Option<&Self::Storage<E>>,
    ) -> (Self::Storage<E>, Self::Storage<f64>);
    /// Adds the gradients of [`Device::norm_rows`] into `gx` and, when given, `gw` and `gb`;
    /// `accumulate` says for each of the three whether to add (`true`) or write (`false`).
    #[allow(clippy::too_many_arguments)]
    fn norm_rows_backward<E: Float>(
        &self,
        x: &Self::Storage<E>,
        row: usize,
        center: bool,
        stats: &Self::Storage<f64>,
        w: Option<&Self::Storage<E>>,
        gy: &Self::Storage<E>,
        gx: &mut Self::Storage<E>,
        accumulate: [bool; 3],
        gw: Option<&mut Self::Storage<E>>,
        gb: Option<&mut Self::Storage<E>>,
    );
    /// Fused scaled dot-product attention ([`AttnGeometry`]) of contiguous `q`, `k` and `v`, with
    /// `keep` (contiguous `[queries, keys]`, shared by every head) masking pairs out: the output
    /// `[heads, queries, value_depth]` and, when `keep_weights`, the attention weights
    /// `[heads, queries, keys]` that [`Device::attention_backward`] reads. `None` where this
    /// device has no fused kernel for `E`: attention is then composed of matmul and softmax.
    #[allow(clippy::type_complexity)]
    fn attention<E: Float>(
        &self,
        g: &AttnGeometry,
        q: &Self::Storage<E>,
        k: &Self::Storage<E>,
        v: &Self::Storage<E>,
        keep: Option<&Self::Storage<bool>>,
        keep_weights: bool,
    ) -> Option<(Self::Storage<E>, Option<Self::Storage<E>>)> {
        let _ = (g, q, k, v, keep, keep_weights);
        None
    }
    /// Writes the gradients of [`Device::attention`] for `q`, `k` and `v` into `grads` (adds
    /// them, for each of the three whose `accumulate` is `true`), given the output's gradient
    /// `gy` and the kept attention `weights`. Called only on a device whose
    /// [`Device::attention`] returned a result, so a device without the fused kernel never
    /// reaches this default.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward<E: Float>(
        &self,
        g: &AttnGeometry,
        q: &Self::Storage<E>,
        k: &Self::Storage<E>,
        v: &Self::Storage<E>,
        weights: &Self::Storage<E>,
        gy: &Self::Storage<E>,
        grads: [&mut Self::Storage<E>; 3],
        accumulate: [bool; 3],
    ) {
        let _ = (g, q, k, v, weights, gy, grads, accumulate);
        unreachable!("attention_backward on a device whose attention() gave no fused result")
    }
    /// Cross-entropy of each `row`-long row of logits (contiguous) against its class in
    /// `target`: per-row losses `logsumexp(x) - x[target]`, and each row's log-sum-exp for the
    /// backward. `Err` when a target is not a class.
    fn cross_entropy_rows<E: Float, I: IndexDtype>(
        &self,
        x: &Self::Storage<E>,
        row: usize,
        target: &Self::Storage<I>,
    ) -> Result<(Self::Storage<E>, Self::Storage<f64>)>;
    /// Adds the gradient of [`Device::cross_entropy_rows`] into `gx` (writes it when
    /// `!accumulate`): row `r` gets `gy[r] * (softmax(x_r) - onehot(target_r))`.
    #[allow(clippy::too_many_arguments)]
    fn cross_entropy_rows_backward<E: Float, I: IndexDtype>(
        &self,
        x: &Self::Storage<E>,
        row: usize,
        target: &Self::Storage<I>,
        lse: &Self::Storage<f64>,
        gy: &Self::Storage<E>,
        gx: &mut Self::Storage<E>,
        accumulate: bool,
    ) -> Result<()>;
    /// Uniform samples in `[lo, hi)` from the device's generator.
    fn sample_uniform<E: Float>(&self, len: usize, lo: f64, hi: f64) -> Self::Storage<E>;
    /// Normal samples from the device's generator.
    fn sample_normal<E: Float>(&self, len: usize, mean: f64, std: f64) -> Self::Storage<E>;

    /// One optimiser step over a contiguous parameter, in place and in one pass: every element
    /// is updated by `rule` from its gradient and its `R::SLOTS` state values (one buffer per
    /// slot, in the accumulation type). With `master`, the parameter's value is read from and
    /// written to that higher-precision copy, and rounded into `param`.
    fn fused_update<E: Float, R: crate::optim::UpdateRule>(
        &self,
        rule: &R,
        param: &mut Self::Storage<E>,
        grad: &Self::Storage<E>,
        state: &mut [Self::Storage<E::Acc>],
        master: Option<&mut Self::Storage<E::Acc>>,
    );
}
