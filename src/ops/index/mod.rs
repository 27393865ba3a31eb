//! Indexing along an axis: gather, scatter_add, index_select, embedding lookup, masked_fill,
//! one_hot, flip, roll, tril/triu, strided slices, split_at (static sizes), split and chunk.
//!
//! Two primitives carry the gradients: `gather` (whose backward is a scatter-add) and
//! `scatter_add` (whose backward is a gather). index_select, embedding, flip and roll are
//! gathers with a broadcast index, so they are differentiable with no code of their own.
//! Index tensors are integers ([`IndexDtype`]: i64 as in PyTorch, or i32/u8), never taped; an
//! index outside its axis is [`Error::IndexOutOfRange`] from the `try_*` forms.

use crate::autograd::{Merge, OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::{Device, Layout};
use crate::dtypes::{Dtype, Float, IndexDtype};
use crate::error::{Error, Result};
use crate::shapes::{AppendDim, Axis, AxisDim, Const, Diff, Dim, Dims, ReplaceDim, Shape};
use crate::tensor::{Tensor, TensorFactory};
use alloc::sync::Arc;

/// `[outer, n, inner]` around `axis`.
pub(crate) fn fold3(dims: &Dims, axis: usize) -> [usize; 3] {
    let d = dims.as_slice();
    [d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product()]
}

pub(crate) fn layout3(d: [usize; 3]) -> Layout {
    Layout::contiguous(Dims::from_slice(&d))
}

/// True when `a` and `b` agree on every axis but `axis` (sizes known at compile time only).
pub(crate) const fn static_dims_agree_except(a: &[Option<usize>], b: &[Option<usize>], axis: usize) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if let (Some(x), Some(y)) = (a[i], b[i])
            && i != axis
            && x != y
        {
            return false;
        }
        i += 1;
    }
    true
}

/// Where a gather's index comes from, for tracing: a tensor the caller was given (its id), or
/// one computed from the gathered data itself (sort, topk), which a graph cannot hold yet.
#[derive(Clone, Copy)]
pub(crate) enum IndexSource {
    Tensor(crate::autograd::UniqueId),
    FromData,
}

/// The gather primitive: `x` (any view) along `axis`, with `index` (a contiguous buffer)
/// viewed as `il` (`[outer, m, inner]`), into a tensor of `shape`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gather_op<S: Shape, S2: Shape, E: Float, I: IndexDtype, D: Device, T: Tape<D>>(
    x: Tensor<S, E, D, T>,
    axis: usize,
    index: Arc<D::Storage<I>>,
    index_source: IndexSource,
    il: Layout,
    shape: S2,
    name: &'static str,
) -> Result<Tensor<S2, E, D, T>> {
    let d3 = fold3(&x.dims(), axis);
    let xd = x.device.contiguous(x.data.clone(), &x.layout());
    let y = x.device.gather(&xd, &layout3(d3), &index, &il)?;
    let (x, tape) = x.split_tape();
    let dev = x.device.clone();
    let out = Tensor::from_storage(dev.clone(), y, shape);
    if T::TAPED {
        crate::autograd::capture(&tape, &x);
        let (xid, oid, nx) = (x.id, out.id, x.shape.numel());
        let record = match index_source {
            IndexSource::Tensor(iid) => {
                let whole = Layout::contiguous(Dims::from_slice(&[D::storage_len(&index)]));
                tape.capture(iid, &dev, &index, &whole);
                OpRecord::new(name, vec![xid, iid], oid, shape.dims())
                    .exports(crate::export::Op::Gather { dims: d3, index: il }, E::DTYPE)
            }
            IndexSource::FromData => OpRecord::new(name, vec![xid], oid, shape.dims()),
        };
        tape.add_backward_op(record, move |grads| {
            let mut result = Ok(());
            grads.backward_step::<E, 1>(&dev, oid, [(xid, nx)], |gy, [gx]| {
                result = dev.scatter_add(gy, &index, &il, gx, d3[1]);
            });
            result
        });
    }
    Ok(out.put_tape(tape))
}

/// The index of a 1-D tensor broadcast to `[outer, m, inner]`.
fn broadcast_index(m: usize, d3: [usize; 3], offset: usize, stride: usize) -> Layout {
    Layout { dims: Dims::from_slice(&[d3[0], m, d3[2]]), strides: Dims::from_slice(&[0, stride, 0]), offset }
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// PyTorch's `torch.gather(x, I, index)`: `out[.., j, ..] = x[.., index[.., j, ..], ..]` along
    /// axis `I`. The index has the input's shape except along `I`; the output has the index's.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// let picked = x.gather(Axis::<1>, &dev.tensor([[2i64], [0]]));
    /// assert_eq!(picked.to_array(), [[3.0], [4.0]]);
    /// ```
    pub fn gather<const I: usize, S2: Shape, Idx: IndexDtype>(
        self,
        axis: Axis<I>,
        index: &Tensor<S2, Idx, D>,
    ) -> Tensor<S2, E, D, T> {
        const {
            assert!(S::RANK == S2::RANK, "gather: the index must have the input's rank");
            assert!(I < S::RANK, "gather: the axis is out of range for this shape");
            assert!(
                static_dims_agree_except(&S::STATIC_DIMS, &S2::STATIC_DIMS, I),
                "gather: the index's dims must equal the input's on every axis but the gathered one"
            );
        }
        self.try_gather(axis, index).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::gather`], returning `Err` when the index's other dims differ from the input's
    /// or an index is outside the axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[1.0f32, 2.0], [3.0, 4.0]]);
    /// assert!(matches!(x.try_gather(Axis::<1>, &dev.tensor([[2i64], [0]])), Err(Error::IndexOutOfRange { index: 2, .. })));
    /// ```
    pub fn try_gather<const I: usize, S2: Shape, Idx: IndexDtype>(
        self,
        _axis: Axis<I>,
        index: &Tensor<S2, Idx, D>,
    ) -> Result<Tensor<S2, E, D, T>> {
        let (xd, id) = (self.dims(), index.dims());
        if I >= xd.len() || xd.len() != id.len() || (0..xd.len()).any(|d| d != I && xd[d] != id[d]) {
            return Err(Error::ShapeMismatch { op: "gather", lhs: xd.to_vec(), rhs: id.to_vec() });
        }
        let idata = index.device.contiguous(index.data.clone(), &index.layout());
        let il = layout3(fold3(&id, I));
        gather_op(self, I, idata, IndexSource::Tensor(index.id), il, index.shape, "gather")
    }

    /// PyTorch's `x.index_select(I, index)`: the slices `index[0], index[1], ..` along axis `I`,
    /// in that order (repeats allowed).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// let y = x.index_select(Axis::<0>, &dev.tensor([2i64, 0, 2]));
    /// assert_eq!(y.to_array(), [[5.0, 6.0], [1.0, 2.0], [5.0, 6.0]]);
    /// ```
    pub fn index_select<const I: usize, M: Dim, Idx: IndexDtype>(
        self,
        axis: Axis<I>,
        index: &Tensor<(M,), Idx, D>,
    ) -> Tensor<S::Output, E, D, T>
    where
        S: ReplaceDim<Axis<I>, M>,
    {
        self.try_index_select(axis, index).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::index_select`], returning `Err` when an index is outside the axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([1.0f32, 2.0]);
    /// assert!(x.try_index_select(Axis::<0>, &dev.tensor([0i64, 5])).is_err());
    /// ```
    pub fn try_index_select<const I: usize, M: Dim, Idx: IndexDtype>(
        self,
        _axis: Axis<I>,
        index: &Tensor<(M,), Idx, D>,
    ) -> Result<Tensor<S::Output, E, D, T>>
    where
        S: ReplaceDim<Axis<I>, M>,
    {
        let m = index.shape.0;
        let d3 = fold3(&self.dims(), I);
        let idata = index.device.contiguous(index.data.clone(), &index.layout());
        let il = broadcast_index(m.size(), d3, 0, 1);
        let shape = self.shape.replace(m);
        gather_op(self, I, idata, IndexSource::Tensor(index.id), il, shape, "index_select")
    }

    /// `x` with `src` added at `index` along axis `I` (PyTorch's `x.scatter_add(I, index, src)`):
    /// `out[.., index[.., j, ..], ..] += src[.., j, ..]`. Differentiable in `x` and `src`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<3>, f32, Cpu> = dev.zeros();
    /// let y = x.scatter_add(Axis::<0>, &dev.tensor([0i64, 2, 0]), dev.tensor([1.0f32, 2.0, 3.0]));
    /// assert_eq!(y.to_array(), [4.0, 0.0, 2.0]);
    /// ```
    pub fn scatter_add<const I: usize, S2: Shape, Idx: IndexDtype, R: Tape<D>>(
        self,
        axis: Axis<I>,
        index: &Tensor<S2, Idx, D>,
        src: Tensor<S2, E, D, R>,
    ) -> Tensor<S, E, D, <T as Merge<D, R>>::Output>
    where
        T: Merge<D, R>,
    {
        const {
            assert!(S::RANK == S2::RANK, "scatter_add: the index must have the input's rank");
            assert!(I < S::RANK, "scatter_add: the axis is out of range for this shape");
            assert!(
                static_dims_agree_except(&S::STATIC_DIMS, &S2::STATIC_DIMS, I),
                "scatter_add: the index's dims must equal the input's on every axis but the scattered one"
            );
        }
        self.try_scatter_add(axis, index, src).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::scatter_add`], returning `Err` when shapes differ or an index is outside the axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<3>, f32, Cpu> = dev.zeros();
    /// assert!(x.try_scatter_add(Axis::<0>, &dev.tensor([3i64]), dev.tensor([1.0f32])).is_err());
    /// ```
    pub fn try_scatter_add<const I: usize, S2: Shape, Idx: IndexDtype, R: Tape<D>>(
        self,
        _axis: Axis<I>,
        index: &Tensor<S2, Idx, D>,
        src: Tensor<S2, E, D, R>,
    ) -> Result<Tensor<S, E, D, <T as Merge<D, R>>::Output>>
    where
        T: Merge<D, R>,
    {
        let (xd, id) = (self.dims(), index.dims());
        if I >= xd.len() || xd.len() != id.len() || (0..xd.len()).any(|d| d != I && xd[d] != id[d]) {
            return Err(Error::ShapeMismatch { op: "scatter_add", lhs: xd.to_vec(), rhs: id.to_vec() });
        }
        let d3 = fold3(&xd, I);
        let il = layout3(fold3(&id, I));
        let idata = index.device.contiguous(index.data.clone(), &index.layout());
        let sdata = src.device.contiguous(src.data.clone(), &src.layout());
        let dev = self.device.clone();
        let mut y = dev.alloc_zeros::<E>(self.numel());
        let flat = Layout::contiguous(Dims::from_slice(&[self.numel()]));
        dev.copy_into(&self.device.contiguous(self.data.clone(), &self.layout()), &flat, &mut y, &flat, false);
        dev.scatter_add(&sdata, &idata, &il, &mut y, d3[1])?;
        let (x, tx) = self.split_tape();
        let (s, ts) = src.split_tape();
        let tape = tx.merge(ts);
        let out = Tensor::from_storage(dev.clone(), y, x.shape);
        if <<T as Merge<D, R>>::Output as Tape<D>>::TAPED {
            let (xid, sid, oid, nx, ns) = (x.id, s.id, out.id, x.shape.numel(), s.shape.numel());
            tape.add_backward_op(OpRecord::new("scatter_add", vec![xid, sid], oid, x.shape.dims()), move |grads| {
                let mut result = Ok(());
                grads.backward_step::<E, 2>(&dev, oid, [(xid, nx), (sid, ns)], |gy, [gx, gs]| {
                    let flat = Layout::contiguous(Dims::from_slice(&[nx]));
                    dev.copy_into(gy, &flat, gx, &flat, true);
                    result = dev.gather(gy, &layout3(d3), &idata, &il).map(|g| {
                        let fl = Layout::contiguous(Dims::from_slice(&[ns]));
                        dev.copy_into(&g, &fl, gs, &fl, true);
                    });
                });
                result
            });
        }
        Ok(out.put_tape(tape))
    }

    /// `value` where `mask` is true, `x` elsewhere (PyTorch's `masked_fill`); the gradient flows to
    /// the kept elements only.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x = dev.tensor([1.0f32, 2.0, 3.0]);
    /// let mask = dev.tensor([false, true, false]);
    /// assert_eq!(x.masked_fill(&mask, f64::NEG_INFINITY).to_array(), [1.0, f32::NEG_INFINITY, 3.0]);
    /// ```
    pub fn masked_fill(self, mask: &Tensor<S, bool, D>, value: f64) -> Self {
        self.try_masked_fill(mask, value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::masked_fill`], returning `Err` when run-time shapes differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(3,));
    /// let mask: Tensor<(usize,), bool, Cpu> = dev.zeros_like(&(2,));
    /// assert!(x.try_masked_fill(&mask, 1.0).is_err());
    /// ```
    pub fn try_masked_fill(self, mask: &Tensor<S, bool, D>, value: f64) -> Result<Self> {
        let fill = self.device.full_like(&self.shape, E::cast_f64(value));
        // The tape rides on the constant so that the result's tape type is `T`; the recorded op
        // still names `x`, so its gradient flows.
        let (x, tape) = self.split_tape();
        mask.try_choose(fill.put_tape(tape), x)
    }

    /// The elements in reverse order along axis `I` (PyTorch's `flip`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.flip(Axis::<1>).to_array(), [[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]);
    /// ```
    pub fn flip<const I: usize>(self, axis: Axis<I>) -> Self
    where
        S: ReplaceDim<Axis<I>, usize>,
    {
        let n = self.dims()[I];
        let order: Vec<i64> = (0..n as i64).rev().collect();
        self.reorder(axis, order)
    }

    /// The elements shifted by `shift` along axis `I`, wrapping around (PyTorch's `roll`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32, 2.0, 3.0, 4.0]);
    /// assert_eq!(x.clone().roll(Axis::<0>, 1).to_array(), [4.0, 1.0, 2.0, 3.0]);
    /// assert_eq!(x.roll(Axis::<0>, -1).to_array(), [2.0, 3.0, 4.0, 1.0]);
    /// ```
    pub fn roll<const I: usize>(self, axis: Axis<I>, shift: i64) -> Self
    where
        S: ReplaceDim<Axis<I>, usize>,
    {
        let n = self.dims()[I] as i64;
        let order: Vec<i64> = (0..n).map(|j| (j - shift).rem_euclid(n.max(1))).collect();
        self.reorder(axis, order)
    }

    /// The slices along axis `I` in the order `order` (a permutation of `0..n`).
    fn reorder<const I: usize>(self, axis: Axis<I>, order: Vec<i64>) -> Self
    where
        S: ReplaceDim<Axis<I>, usize>,
    {
        let index = self.device.from_vec(order, (self.dims()[I],));
        let y = self.index_select(axis, &index);
        // Same sizes, the original dim type back (the id is kept, so gradients still flow).
        y.try_realize::<S>().unwrap_or_else(|e| unreachable!("reordering keeps the sizes: {e}"))
    }

    /// The elements `start, start + step, ..` before `end` along axis `I` (PyTorch's
    /// `x[.., start:end:step]`), as a view: no copy. `Err` when the range exceeds the axis or
    /// `step` is 0.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]);
    /// assert_eq!(x.clone().try_slice(Axis::<0>, 1, 6, 2).unwrap().to_vec(), vec![1.0, 3.0, 5.0]);
    /// assert!(x.try_slice(Axis::<0>, 0, 7, 1).is_err());
    /// ```
    pub fn try_slice<const I: usize>(
        self,
        axis: Axis<I>,
        start: usize,
        end: usize,
        step: usize,
    ) -> Result<Tensor<S::Output, E, D, T>>
    where
        S: ReplaceDim<Axis<I>, usize>,
    {
        let size = self.dims()[I];
        if step == 0 || start > end || end > size {
            return Err(Error::InvalidSize {
                op: "slice",
                reason: format!("{start}..{end} step {step} does not fit axis {I} of size {size}"),
            });
        }
        let len = (end - start).div_ceil(step);
        if step == 1 {
            return self.try_narrow(axis, start, len);
        }
        Ok(self.narrow_strided::<I, usize>(start, len, step))
    }

    /// Pieces of `size` along axis `I` (the last one shorter when `size` does not divide the
    /// axis), as PyTorch's `split`. Each piece can be used on its own; gradients come back
    /// together. `Err` when `size` is 0.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32, 2.0, 3.0, 4.0, 5.0]);
    /// let parts = x.try_split(Axis::<0>, 2).unwrap();
    /// let sizes: Vec<usize> = parts.iter().map(|p| p.numel()).collect();
    /// assert_eq!(sizes, vec![2, 2, 1]);
    /// ```
    pub fn try_split<const I: usize>(self, axis: Axis<I>, size: usize) -> Result<Vec<Tensor<S::Output, E, D, T>>>
    where
        S: ReplaceDim<Axis<I>, usize>,
        T: Clone,
    {
        let n = self.dims()[I];
        if size == 0 {
            return Err(Error::InvalidSize { op: "split", reason: "a split size of 0".into() });
        }
        (0..n.div_ceil(size)).map(|k| self.clone().try_narrow(axis, k * size, size.min(n - k * size))).collect()
    }

    /// The first `at` elements along axis `I` and the rest, as two tensors (PyTorch's
    /// `split([at, n - at], I)`). With a static axis and a `Const` split point both sizes are
    /// static, and a point past the end is a build error; `Err` from the run-time check otherwise.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank2<2, 5>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// let (a, b) = x.split_at(Axis::<1>, Const::<2>);
    /// let (_, _): (Tensor<Rank2<2, 2>, f32, Cpu>, Tensor<Rank2<2, 3>, f32, Cpu>) = (a.realize(), b.realize());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn split_at<const I: usize, K: Dim>(
        self,
        axis: Axis<I>,
        at: K,
    ) -> (
        Tensor<<S as ReplaceDim<Axis<I>, K>>::Output, E, D, T>,
        Tensor<<S as ReplaceDim<Axis<I>, Diff<S::At, K>>>::Output, E, D, T>,
    )
    where
        S: AxisDim<Axis<I>> + ReplaceDim<Axis<I>, K> + ReplaceDim<Axis<I>, Diff<S::At, K>>,
        T: Clone,
    {
        const {
            let _ = <Diff<S::At, K> as Dim>::STATIC;
        }
        self.try_split_at(axis, at).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::split_at`], returning `Err` when `at` is past the end of the axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<(usize,), f32, Cpu> = Cpu::seeded(0).zeros_like(&(3,));
    /// assert!(x.try_split_at(Axis::<0>, 4usize).is_err());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn try_split_at<const I: usize, K: Dim>(
        self,
        axis: Axis<I>,
        at: K,
    ) -> Result<(
        Tensor<<S as ReplaceDim<Axis<I>, K>>::Output, E, D, T>,
        Tensor<<S as ReplaceDim<Axis<I>, Diff<S::At, K>>>::Output, E, D, T>,
    )>
    where
        S: AxisDim<Axis<I>> + ReplaceDim<Axis<I>, K> + ReplaceDim<Axis<I>, Diff<S::At, K>>,
        T: Clone,
    {
        let n = self.shape.at().size();
        if at.size() > n {
            return Err(Error::InvalidSize {
                op: "split_at",
                reason: format!("{} is past the end of axis {I} of size {n}", at.size()),
            });
        }
        let rest = Diff::<S::At, K>::new(n - at.size());
        Ok((self.clone().try_narrow(axis, 0, at)?, self.try_narrow(axis, at.size(), rest)?))
    }

    /// `chunks` pieces of (nearly) equal size along axis `I`, as PyTorch's `chunk` (which may
    /// return fewer when the axis is short). `Err` when `chunks` is 0.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0, 4.0]]);
    /// let parts = x.try_chunk(Axis::<1>, 2).unwrap();
    /// assert_eq!(parts[1].to_vec(), vec![3.0, 4.0]);
    /// ```
    pub fn try_chunk<const I: usize>(self, axis: Axis<I>, chunks: usize) -> Result<Vec<Tensor<S::Output, E, D, T>>>
    where
        S: ReplaceDim<Axis<I>, usize>,
        T: Clone,
    {
        if chunks == 0 {
            return Err(Error::InvalidSize { op: "chunk", reason: "0 chunks".into() });
        }
        let n = self.dims()[I];
        self.try_split(axis, n.div_ceil(chunks).max(1))
    }

    /// The lower triangle of the last two axes: elements with `col - row > diagonal` become 0
    /// (PyTorch's `tril`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).ones();
    /// assert_eq!(x.tril(0).to_array(), [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]);
    /// ```
    pub fn tril(self, diagonal: i64) -> Self {
        self.triangle(|row, col| col - row <= diagonal)
    }

    /// The upper triangle of the last two axes: elements with `col - row < diagonal` become 0
    /// (PyTorch's `triu`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).ones();
    /// assert_eq!(x.triu(1).to_array(), [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]);
    /// ```
    pub fn triu(self, diagonal: i64) -> Self {
        self.triangle(|row, col| col - row >= diagonal)
    }

    fn triangle(self, keep: impl Fn(i64, i64) -> bool) -> Self {
        const { assert!(S::RANK >= 2, "tril/triu: the tensor needs at least two axes") };
        let d = self.dims();
        let (rows, cols) = (d[d.len() - 2], d[d.len() - 1]);
        let mask: Vec<E> = (0..self.numel())
            .map(|i| {
                let (r, c) = ((i / cols) % rows, i % cols);
                if keep(r as i64, c as i64) { E::one() } else { E::zero() }
            })
            .collect();
        let mask = self.device.from_vec(mask, self.shape);
        self * mask
    }
}

impl<V: Dim, M: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(V, M), E, D, T> {
    /// Rows of this `(vocabulary, features)` table picked by `indices` of any shape (PyTorch's
    /// `F.embedding`): the output is `indices`' shape plus the feature dim. The backward adds
    /// each output row's gradient into the row it came from (only the rows used are written).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let table = dev.tensor([[0.0f32, 0.0], [1.0, 1.0], [2.0, 2.0]]);
    /// let tokens: Tensor<Rank2<2, 2>, i64, Cpu> = dev.tensor([[1, 2], [0, 1]]);
    /// let e: Tensor<Rank3<2, 2, 2>, f32, Cpu> = table.embedding(&tokens);
    /// assert_eq!(e.to_array(), [[[1.0, 1.0], [2.0, 2.0]], [[0.0, 0.0], [1.0, 1.0]]]);
    /// ```
    pub fn embedding<S2: AppendDim<M>, Idx: IndexDtype>(
        self,
        indices: &Tensor<S2, Idx, D>,
    ) -> Tensor<S2::Output, E, D, T> {
        self.try_embedding(indices).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::embedding`], returning `Err` when an index is outside the table.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let table: Tensor<Rank2<3, 4>, f32, Cpu> = dev.zeros();
    /// assert!(table.try_embedding(&dev.tensor([0i64, 3])).is_err());
    /// ```
    pub fn try_embedding<S2: AppendDim<M>, Idx: IndexDtype>(
        self,
        indices: &Tensor<S2, Idx, D>,
    ) -> Result<Tensor<S2::Output, E, D, T>> {
        let shape = indices.shape.append(self.shape.1);
        let idata = indices.device.contiguous(indices.data.clone(), &indices.layout());
        let d3 = fold3(&self.dims(), 0);
        let il = broadcast_index(indices.numel(), d3, 0, 1);
        gather_op(self, 0, idata, IndexSource::Tensor(indices.id), il, shape, "embedding")
    }
}

impl<S: Shape, Idx: IndexDtype, D: Device> Tensor<S, Idx, D> {
    /// One-hot rows: `N` classes along a new last axis, 1 at each index (PyTorch's
    /// `F.one_hot`, in a float dtype; no gradient).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let labels = Cpu::seeded(0).tensor([2i64, 0]);
    /// let y: Tensor<Rank2<2, 3>, f32, Cpu> = labels.one_hot::<3, f32>();
    /// assert_eq!(y.to_array(), [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]);
    /// ```
    pub fn one_hot<const N: usize, E: Dtype>(&self) -> Tensor<S::Output, E, D>
    where
        S: AppendDim<Const<N>>,
    {
        self.try_one_hot(Const::<N>).unwrap_or_else(|e| panic!("{e}"))
    }

    /// One-hot rows with the class count as a dim (`usize` for a run-time count); `Err` when an
    /// index is outside `0..classes`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let labels = Cpu::seeded(0).tensor([2i64, 0]);
    /// assert!(labels.try_one_hot::<_, f32>(2usize).is_err());
    /// ```
    pub fn try_one_hot<N: Dim, E: Dtype>(&self, classes: N) -> Result<Tensor<S::Output, E, D>>
    where
        S: AppendDim<N>,
    {
        let n = classes.size();
        let mut data = vec![E::default(); self.numel() * n];
        for (row, v) in self.to_vec().into_iter().enumerate() {
            match v.to_index() {
                Some(i) if i < n => data[row * n + i] = E::cast_f64(1.0),
                _ => return Err(Error::IndexOutOfRange { op: "one_hot", index: v.as_f64() as i64, size: n }),
            }
        }
        self.device.try_from_vec(data, self.shape.append(classes))
    }
}
