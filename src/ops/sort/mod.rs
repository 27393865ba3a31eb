//! Sorting and selection along an axis: sort, argsort, topk, argmax/argmin, and max/min with
//! their indices. One kernel finds the indices; the values are a gather by them, so their
//! gradient (a scatter back to the chosen positions) comes from `gather`.

use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::ops::index::IndexSource::FromData;
use crate::ops::index::{fold3, layout3};
use crate::shapes::{Axis, Const, Dim, ReduceShape, ReplaceDim, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// The indices of the `k` largest (or smallest) elements along axis `I`, in order, as a
    /// contiguous `[outer, k, inner]` buffer.
    fn top_indices(&self, axis: usize, k: usize, largest: bool) -> Arc<D::Storage<i64>> {
        let d3 = fold3(&self.dims(), axis);
        let x = self.device.contiguous(self.data.clone(), &self.layout());
        Arc::new(self.device.topk_indices(&x, &layout3(d3), k, largest))
    }

    /// The `k` largest (`largest`) or smallest elements along axis `I`, sorted, with their
    /// indices (PyTorch's `topk`). `k` is a `Const` (a static output dim) or a `usize`; `Err` when
    /// it exceeds the axis. The values carry the gradient.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 5.0, 3.0, 4.0]]);
    /// let (v, i) = x.try_topk(Axis::<1>, Const::<2>, true).unwrap();
    /// assert_eq!((v.to_array(), i.to_array()), ([[5.0, 4.0]], [[1, 3]]));
    /// ```
    pub fn try_topk<const I: usize, K: Dim>(
        self,
        _axis: Axis<I>,
        k: K,
        largest: bool,
    ) -> Result<(Tensor<S::Output, E, D, T>, Tensor<S::Output, i64, D>)>
    where
        S: ReplaceDim<Axis<I>, K>,
    {
        let n = self.dims()[I];
        if k.size() > n {
            return Err(Error::InvalidSize {
                op: "topk",
                reason: format!("k = {} exceeds axis {I} of size {n}", k.size()),
            });
        }
        let shape = self.shape.replace(k);
        let idx = self.top_indices(I, k.size(), largest);
        let il = layout3(fold3(&shape.dims(), I));
        let values = crate::ops::index::gather_op(self, I, idx.clone(), FromData, il, shape, "topk")?;
        let indices = Tensor::from_arc(values.device.clone(), idx, shape);
        Ok((values, indices))
    }

    /// [`Tensor::try_topk`] with a static `K`, checked against a static axis at build time.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([3.0f32, 1.0, 2.0]);
    /// let (v, _) = x.topk::<0, 2>(Axis::<0>, false);
    /// assert_eq!(v.to_array(), [1.0, 2.0]);
    /// ```
    pub fn topk<const I: usize, const K: usize>(
        self,
        axis: Axis<I>,
        largest: bool,
    ) -> (Tensor<S::Output, E, D, T>, Tensor<S::Output, i64, D>)
    where
        S: ReplaceDim<Axis<I>, Const<K>>,
    {
        const {
            if let Some(n) = S::STATIC_DIMS[I] {
                assert!(K <= n, "topk: k is larger than the axis");
            }
        }
        self.try_topk(axis, Const::<K>, largest).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The elements sorted along axis `I` (ascending, or descending), stable, with the indices
    /// that sort them (PyTorch's `sort`). The values carry the gradient.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[3.0f32, 1.0, 2.0]]);
    /// let (v, i) = x.sort(Axis::<1>, false);
    /// assert_eq!((v.to_array(), i.to_array()), ([[1.0, 2.0, 3.0]], [[1, 2, 0]]));
    /// ```
    pub fn sort<const I: usize>(self, _axis: Axis<I>, descending: bool) -> (Self, Tensor<S, i64, D>) {
        let n = self.dims()[I];
        let idx = self.top_indices(I, n, descending);
        let shape = self.shape;
        let il = layout3(fold3(&shape.dims(), I));
        let values = crate::ops::index::gather_op(self, I, idx.clone(), FromData, il, shape, "sort")
            .unwrap_or_else(|e| unreachable!("sort indices are in range: {e}"));
        let indices = Tensor::from_arc(values.device.clone(), idx, shape);
        (values, indices)
    }

    /// The indices that sort axis `I` (PyTorch's `argsort`, stable).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([3.0f32, 1.0, 2.0]);
    /// assert_eq!(x.argsort(Axis::<0>, true).to_array(), [0, 2, 1]);
    /// ```
    pub fn argsort<const I: usize>(&self, _axis: Axis<I>, descending: bool) -> Tensor<S, i64, D> {
        let idx = self.top_indices(I, self.dims()[I], descending);
        Tensor::from_arc(self.device.clone(), idx, self.shape)
    }

    /// The index of the largest element along axis `I` (the first one on ties; NaN counts as
    /// largest, as in PyTorch).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 7.0, 3.0], [9.0, 2.0, 9.0]]);
    /// assert_eq!(x.argmax(Axis::<1>).to_array(), [1, 0]);
    /// ```
    pub fn argmax<const I: usize>(&self, _axis: Axis<I>) -> Tensor<S::Reduced, i64, D>
    where
        S: ReduceShape<Axis<I>>,
    {
        Tensor::from_arc(self.device.clone(), self.top_indices(I, 1, true), self.shape.reduced())
    }

    /// The index of the smallest element along axis `I` (the first one on ties).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 7.0, 0.5]]);
    /// assert_eq!(x.argmin(Axis::<1>).to_array(), [2]);
    /// ```
    pub fn argmin<const I: usize>(&self, _axis: Axis<I>) -> Tensor<S::Reduced, i64, D>
    where
        S: ReduceShape<Axis<I>>,
    {
        Tensor::from_arc(self.device.clone(), self.top_indices(I, 1, false), self.shape.reduced())
    }

    /// The maximum along axis `I` and where it is (PyTorch's `x.max(dim)`); the gradient goes to
    /// that one element.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 7.0, 3.0]]);
    /// let (v, i) = x.max_along(Axis::<1>);
    /// assert_eq!((v.to_array(), i.to_array()), ([7.0], [1]));
    /// ```
    pub fn max_along<const I: usize>(self, axis: Axis<I>) -> (Tensor<S::Reduced, E, D, T>, Tensor<S::Reduced, i64, D>)
    where
        S: ReduceShape<Axis<I>> + ReplaceDim<Axis<I>, Const<1>>,
    {
        self.extreme_along(axis, true)
    }

    /// The minimum along axis `I` and where it is (PyTorch's `x.min(dim)`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 7.0, 0.5]]);
    /// let (v, i) = x.min_along(Axis::<1>);
    /// assert_eq!((v.to_array(), i.to_array()), ([0.5], [2]));
    /// ```
    pub fn min_along<const I: usize>(self, axis: Axis<I>) -> (Tensor<S::Reduced, E, D, T>, Tensor<S::Reduced, i64, D>)
    where
        S: ReduceShape<Axis<I>> + ReplaceDim<Axis<I>, Const<1>>,
    {
        self.extreme_along(axis, false)
    }

    fn extreme_along<const I: usize>(
        self,
        axis: Axis<I>,
        largest: bool,
    ) -> (Tensor<S::Reduced, E, D, T>, Tensor<S::Reduced, i64, D>)
    where
        S: ReduceShape<Axis<I>> + ReplaceDim<Axis<I>, Const<1>>,
    {
        let reduced = self.shape.reduced();
        let (v, i) = self.try_topk(axis, Const::<1>, largest).unwrap_or_else(|e| panic!("max/min along an axis: {e}"));
        let v = v.try_reshape_like(&reduced).unwrap_or_else(|e| unreachable!("{e}"));
        let i = Tensor::from_arc(i.device.clone(), i.data, reduced);
        (v, i)
    }
}
