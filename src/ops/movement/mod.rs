//! Ops that move or re-view data: reshape, realize, permute, broadcast, narrow, select, concat,
//! stack. Views share storage; only concat, stack and the reshape of a non-contiguous tensor copy.

use crate::autograd::{Merge, Tape, UniqueId};
use crate::compat::prelude::*;
use crate::device::{Device, Layout};
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::export::Op;
use crate::shapes::{
    Axes, Axis, ConcatShape, Const, ConstShape, Dim, Dims, PermuteShape, PrependDim, ReduceShape, ReduceShapeTo,
    ReplaceDim, Shape,
};
use crate::tensor::Tensor;

/// How a view's gradient goes back to its source.
enum ViewGrad {
    /// Element `i` of the view is element `i` of the source (reshape).
    Same,
    /// The view is the source permuted by this permutation.
    Permute(Dims),
    /// The view repeats the source along these axes.
    Broadcast(&'static [usize]),
    /// The view is this region of the source (narrow, select): the region's layout over a
    /// contiguous source, and the graph op that makes it.
    Region(Layout, Box<Op>),
}

/// Makes a view of `x` with a new shape and layout, recording how its gradient flows back.
fn view<S: Shape, S2: Shape, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S, E, D, T>,
    shape: S2,
    layout: Layout,
    grad: ViewGrad,
) -> Tensor<S2, E, D, T> {
    let (x, tape) = x.split_tape();
    crate::autograd::capture(&tape, &x);
    let out = Tensor {
        id: crate::autograd::UniqueId::next(),
        data: x.data,
        shape,
        strides: layout.strides,
        offset: layout.offset,
        device: x.device.clone(),
        tape: crate::autograd::NoTape,
    };
    if T::TAPED {
        let (dev, xid, oid, xdims, ydims) = (x.device, x.id, out.id, x.shape.dims(), shape.dims());
        let (name, op) = match &grad {
            ViewGrad::Same => ("reshape", Op::Reshape),
            ViewGrad::Permute(p) => ("permute", Op::Permute { perm: p.to_vec() }),
            ViewGrad::Broadcast(axes) => ("broadcast", Op::Broadcast { axes: axes.to_vec() }),
            ViewGrad::Region(_, op) => ("slice", (**op).clone()),
        };
        let record = crate::autograd::OpRecord::new(name, vec![xid], oid, ydims).exports(op, E::DTYPE);
        tape.add_backward_op(record, move |g| {
            g.backward_step::<E, 1>(&dev, oid, [(xid, xdims.numel())], |gy, [gx]| {
                let yl = Layout::contiguous(ydims);
                let xl = Layout::contiguous(xdims);
                match &grad {
                    ViewGrad::Same => {
                        let flat = Layout::contiguous(Dims::from_slice(&[xdims.numel()]));
                        dev.copy_into(gy, &flat, gx, &flat, true);
                    }
                    ViewGrad::Permute(perm) => {
                        let mut inverse = *perm;
                        for (i, &p) in perm.as_slice().iter().enumerate() {
                            inverse[p] = i;
                        }
                        dev.copy_into(gy, &yl.permuted(inverse.as_slice()), gx, &xl, true);
                    }
                    ViewGrad::Broadcast(axes) => {
                        let summed = dev.reduce(super::ReduceKind::Sum, gy, &yl, axes);
                        dev.copy_into(&summed, &xl, gx, &xl, true);
                    }
                    ViewGrad::Region(region, _) => dev.copy_into(gy, &yl, gx, region, true),
                }
            });
            Ok(())
        });
    }
    out.put_tape(tape)
}

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Reshapes to a static shape with the same element count, checked at build time.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// let r: Tensor<Rank2<3, 2>, f32, Cpu> = t.reshape();
    /// assert_eq!(r.to_array(), [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// ```
    pub fn reshape<S2: ConstShape>(self) -> Tensor<S2, E, D, T> {
        const {
            if let Some(n) = S::NUMEL {
                assert!(n == S2::NUMEL_CONST, "reshape: the new shape has a different number of elements");
            }
        }
        self.try_reshape_like(&S2::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reshapes to `shape` (run-time dims allowed); an `Err` when the element count differs.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<(usize,), f32, Cpu> = Cpu::seeded(0).arange(6);
    /// assert_eq!(t.clone().try_reshape_like(&(2usize, 3usize)).unwrap().dims().as_slice(), &[2, 3]);
    /// assert!(t.try_reshape_like(&(4usize, 2usize)).is_err());
    /// ```
    pub fn try_reshape_like<S2: Shape>(self, shape: &S2) -> Result<Tensor<S2, E, D, T>> {
        if self.numel() != shape.numel() {
            return Err(Error::InvalidSize {
                op: "reshape",
                reason: format!(
                    "cannot reshape {:?} ({} elements) into {:?} ({} elements)",
                    self.dims(),
                    self.numel(),
                    shape.dims(),
                    shape.numel()
                ),
            });
        }
        let x = self.contiguous();
        let layout = Layout { dims: shape.dims(), strides: shape.strides(), offset: x.offset };
        Ok(view(x, *shape, layout, ViewGrad::Same))
    }

    /// Merges every axis after the first into one (PyTorch's `flatten(1)`). The new dim is the
    /// computed [`Prod`](crate::shapes::Prod) of the merged dims, static when they are, so a layer
    /// after it is checked at build time. No copy when the tensor is contiguous.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank4<2, 3, 4, 5>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// let f = x.flatten();
    /// assert_eq!(f.dims().as_slice(), &[2, 60]);
    /// let f: Tensor<Rank2<2, 60>, f32, Cpu> = f.realize();
    /// ```
    pub fn flatten(self) -> Tensor<S::Flattened, E, D, T>
    where
        S: crate::shapes::FlattenShape,
    {
        let shape = self.shape.flattened();
        self.try_reshape_like(&shape).unwrap_or_else(|e| unreachable!("flatten keeps the element count: {e}"))
    }

    /// A contiguous tensor with the same values (the same tensor when it already is one).
    ///
    /// The copy keeps the id: its values, in logical order, are the source's, so gradients
    /// recorded against either are the same buffer.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0], [3.0, 4.0]]).t();
    /// assert!(!t.is_contiguous());
    /// let c = t.contiguous();
    /// assert!(c.is_contiguous());
    /// assert_eq!(c.to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn contiguous(mut self) -> Self {
        if self.is_contiguous() {
            return self;
        }
        self.data = self.device.contiguous(self.data.clone(), &self.layout());
        self.strides = self.shape.strides();
        self.offset = 0;
        self
    }

    /// Reorders the axes: axis `i` of the result is axis `Ax::LIST[i]` of `self`. No copy.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank3<2, 3, 4>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// let p = t.permute::<_, Axes3<2, 0, 1>>();
    /// assert_eq!(p.dims().as_slice(), &[4, 2, 3]);
    /// ```
    pub fn permute<Dst: Shape, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        S: PermuteShape<Ax, Permuted = Dst>,
    {
        let shape = self.shape.permuted();
        let layout = self.layout().permuted(Ax::LIST);
        view(self, shape, layout, ViewGrad::Permute(Dims::from_slice(Ax::LIST)))
    }

    /// Repeats the tensor along new axes `Ax` to the static shape `Dst`. No copy.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let b = Cpu::seeded(0).tensor([1.0f32, 2.0]);
    /// let m: Tensor<Rank2<3, 2>, f32, Cpu> = b.broadcast::<_, Axis<0>>();
    /// assert_eq!(m.to_vec(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// ```
    pub fn broadcast<Dst, Ax: Axes>(self) -> Tensor<Dst, E, D, T>
    where
        Dst: ConstShape + ReduceShapeTo<S, Ax>,
    {
        self.broadcast_like::<Dst, Ax>(&Dst::default())
    }

    /// Repeats the tensor along new axes `Ax` to the shape `dst`. No copy.
    ///
    /// # Panics
    /// When a run-time dim of `dst` outside `Ax` differs from this tensor's; see
    /// [`Tensor::try_broadcast_like`].
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let b: Tensor<(usize,), f32, Cpu> = Cpu::seeded(0).arange(2);
    /// let m = b.broadcast_like::<_, Axis<0>>(&(3usize, 2usize));
    /// assert_eq!(m.to_vec(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    /// ```
    pub fn broadcast_like<Dst, Ax: Axes>(self, dst: &Dst) -> Tensor<Dst, E, D, T>
    where
        Dst: ReduceShapeTo<S, Ax>,
    {
        self.try_broadcast_like::<Dst, Ax>(dst).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Repeats the tensor along new axes `Ax` to the shape `dst`; an `Err` when the other dims of
    /// `dst` differ from this tensor's at run time.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let b: Tensor<(usize,), f32, Cpu> = Cpu::seeded(0).arange(3);
    /// assert!(b.clone().try_broadcast_like::<_, Axis<0>>(&(2usize, 3usize)).is_ok());
    /// assert!(b.try_broadcast_like::<_, Axis<0>>(&(2usize, 4usize)).is_err());
    /// ```
    pub fn try_broadcast_like<Dst, Ax: Axes>(self, dst: &Dst) -> Result<Tensor<Dst, E, D, T>>
    where
        Dst: ReduceShapeTo<S, Ax>,
    {
        if dst.reduced_to() != self.shape {
            return Err(Error::ShapeMismatch { op: "broadcast", lhs: self.dims().to_vec(), rhs: dst.dims().to_vec() });
        }
        let layout = self.layout().broadcast(dst.dims(), Ax::LIST);
        Ok(view(self, *dst, layout, ViewGrad::Broadcast(Ax::LIST)))
    }

    /// The sub-tensor `start..start + len` along axis `I`; `len` may be a `Const` or a `usize`.
    /// No copy.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// let n = t.clone().try_narrow(Axis::<1>, 1, Const::<2>).unwrap();
    /// assert_eq!(n.to_array(), [[2.0, 3.0], [5.0, 6.0]]);
    /// assert!(t.try_narrow(Axis::<1>, 2, 2usize).is_err());
    /// ```
    pub fn try_narrow<const I: usize, New: Dim>(
        self,
        _axis: Axis<I>,
        start: usize,
        len: New,
    ) -> Result<Tensor<S::Output, E, D, T>>
    where
        S: ReplaceDim<Axis<I>, New>,
    {
        let size = self.dims()[I];
        if start.checked_add(len.size()).is_none_or(|end| end > size) {
            return Err(Error::InvalidSize {
                op: "narrow",
                reason: format!("a range of {} from {start} exceeds axis {I} of size {size}", len.size()),
            });
        }
        Ok(self.narrow_strided::<I, New>(start, len, 1))
    }

    /// `len` elements from `start`, `step` apart, along axis `I` (checked by the caller): a view.
    pub(crate) fn narrow_strided<const I: usize, New: Dim>(
        self,
        start: usize,
        len: New,
        step: usize,
    ) -> Tensor<S::Output, E, D, T>
    where
        S: ReplaceDim<Axis<I>, New>,
    {
        let shape = self.shape.replace(len);
        let layout = self.layout().narrowed(I, start, len.size(), step);
        let region = Layout::contiguous(self.dims()).narrowed(I, start, len.size(), step);
        view(self, shape, layout, ViewGrad::Region(region, Box::new(Op::Narrow { axis: I, start, step })))
    }

    /// [`Tensor::try_narrow`], panicking when the range exceeds the axis.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([1.0f32, 2.0, 3.0, 4.0]);
    /// assert_eq!(t.narrow(Axis::<0>, 1, Const::<2>).to_array(), [2.0, 3.0]);
    /// ```
    pub fn narrow<const I: usize, New: Dim>(self, axis: Axis<I>, start: usize, len: New) -> Tensor<S::Output, E, D, T>
    where
        S: ReplaceDim<Axis<I>, New>,
    {
        self.try_narrow(axis, start, len).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Index `index` along axis `I`, removing that axis. No copy.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(t.clone().try_select(Axis::<0>, 1).unwrap().to_vec(), vec![4.0, 5.0, 6.0]);
    /// assert!(matches!(t.try_select(Axis::<0>, 2), Err(Error::IndexOutOfRange { .. })));
    /// ```
    pub fn try_select<const I: usize>(self, _axis: Axis<I>, index: usize) -> Result<Tensor<S::Reduced, E, D, T>>
    where
        S: ReduceShape<Axis<I>>,
    {
        let size = self.dims()[I];
        if index >= size {
            return Err(Error::IndexOutOfRange { op: "select", index: index as i64, size });
        }
        let shape = self.shape.reduced();
        let layout = self.layout().selected(I, index);
        let region = Layout::contiguous(self.dims()).selected(I, index);
        Ok(view(self, shape, layout, ViewGrad::Region(region, Box::new(Op::Select { axis: I, index }))))
    }

    /// [`Tensor::try_select`], panicking when the index is out of range.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0], [3.0, 4.0]]);
    /// assert_eq!(t.select(Axis::<1>, 0).to_array(), [1.0, 3.0]);
    /// ```
    pub fn select<const I: usize>(self, axis: Axis<I>, index: usize) -> Tensor<S::Reduced, E, D, T>
    where
        S: ReduceShape<Axis<I>>,
    {
        self.try_select(axis, index).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Concatenates along axis `I`. The axis becomes the computed dim [`Sum`](crate::shapes::Sum)
    /// of the two; every other dim must have the same type, and at run time the same size (`Err`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let a = dev.tensor([[1.0f32, 2.0]]);
    /// let b = dev.tensor([[3.0f32, 4.0], [5.0, 6.0]]);
    /// let c = a.try_concat_along(b, Axis::<0>).unwrap();
    /// assert_eq!(c.dims().as_slice(), &[3, 2]);
    /// let c: Tensor<Rank2<3, 2>, f32, Cpu> = c.realize();
    /// assert_eq!(c.to_array(), [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn try_concat_along<const I: usize, S2: Shape, R: Tape<D>>(
        self,
        rhs: Tensor<S2, E, D, R>,
        _axis: Axis<I>,
    ) -> Result<Tensor<S::Output, E, D, <T as Merge<D, R>>::Output>>
    where
        S: ConcatShape<S2, Axis<I>>,
        T: Merge<D, R>,
    {
        let (ad, bd) = (self.dims(), rhs.dims());
        let others_agree = (0..ad.len()).all(|d| d == I || ad[d] == bd[d]);
        if !others_agree {
            return Err(Error::ShapeMismatch { op: "concat", lhs: ad.to_vec(), rhs: bd.to_vec() });
        }
        let shape = self.shape.concat_shape(&rhs.shape);
        let out_dims = shape.dims();
        let region = |start: usize, dims: Dims| {
            let mut l = Layout::contiguous(out_dims);
            l.offset = start * l.strides[I];
            l.dims = dims;
            l
        };
        let (ra, rb) = (region(0, ad), region(ad[I], bd));
        let (al, bl) = (self.layout(), rhs.layout());
        let (a, ta) = self.split_tape();
        let (b, tb) = rhs.split_tape();
        let tape = ta.merge(tb);
        let dev = a.device.clone();
        let mut out = dev.alloc_zeros::<E>(out_dims.numel());
        dev.copy_into(&a.data, &al, &mut out, &ra, false);
        dev.copy_into(&b.data, &bl, &mut out, &rb, false);
        let out = Tensor::from_storage(dev.clone(), out, shape);
        if <<T as Merge<D, R>>::Output as Tape<D>>::TAPED {
            crate::autograd::capture(&tape, &a);
            crate::autograd::capture(&tape, &b);
            let (aid, bid, oid) = (a.id, b.id, out.id);
            let record = crate::autograd::OpRecord::new("concat", vec![aid, bid], oid, out_dims)
                .exports(Op::Concat { axis: I }, E::DTYPE);
            tape.add_backward_op(record, move |g| {
                g.backward_step::<E, 2>(&dev, oid, [(aid, ad.numel()), (bid, bd.numel())], |gy, [ga, gb]| {
                    dev.copy_into(gy, &ra, ga, &Layout::contiguous(ad), true);
                    dev.copy_into(gy, &rb, gb, &Layout::contiguous(bd), true);
                });
                Ok(())
            });
        }
        Ok(out.put_tape(tape))
    }

    /// [`Tensor::try_concat_along`], panicking when run-time dims differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let c = dev.tensor([1.0f32]).concat_along(dev.tensor([2.0f32, 3.0]), Axis::<0>);
    /// assert_eq!(c.to_vec(), vec![1.0, 2.0, 3.0]);
    /// ```
    pub fn concat_along<const I: usize, S2: Shape, R: Tape<D>>(
        self,
        rhs: Tensor<S2, E, D, R>,
        axis: Axis<I>,
    ) -> Tensor<S::Output, E, D, <T as Merge<D, R>>::Output>
    where
        S: ConcatShape<S2, Axis<I>>,
        T: Merge<D, R>,
    {
        self.try_concat_along(rhs, axis).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<D0: Dim, D1: Dim, E: Float, D: Device, T: Tape<D>> Tensor<(D0, D1), E, D, T> {
    /// The transpose of a matrix. No copy.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0]]);
    /// assert_eq!(t.t().to_array(), [[1.0], [2.0], [3.0]]);
    /// ```
    pub fn t(self) -> Tensor<(D1, D0), E, D, T> {
        self.permute::<_, crate::shapes::Axes2<1, 0>>()
    }
}

/// Stacking tensors of one shape along a new leading axis.
impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Stacks `N` tensors into one with a new leading axis of size `N`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let s = Tensor::stack([dev.tensor([1.0f32, 2.0]), dev.tensor([3.0f32, 4.0])]);
    /// assert_eq!(s.to_array(), [[1.0, 2.0], [3.0, 4.0]]);
    /// ```
    pub fn stack<const N: usize>(items: [Self; N]) -> Tensor<S::Output, E, D, T>
    where
        S: PrependDim<Const<N>>,
    {
        let shape = items[0].shape.prepend(Const::<N>);
        stack_impl(Vec::from(items), shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stacks any number of tensors into one with a new leading run-time axis; an `Err` when the
    /// list is empty or their run-time shapes differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let v = vec![dev.tensor([1.0f32, 2.0]); 3];
    /// assert_eq!(Tensor::try_stack_vec(v).unwrap().dims().as_slice(), &[3, 2]);
    /// ```
    pub fn try_stack_vec(items: Vec<Self>) -> Result<Tensor<S::Output, E, D, T>>
    where
        S: PrependDim<usize>,
    {
        let Some(first) = items.first() else {
            return Err(Error::InvalidSize { op: "stack", reason: "no tensors to stack".into() });
        };
        let shape = first.shape.prepend(items.len());
        stack_impl(items, shape)
    }
}

fn stack_impl<S: Shape, S2: Shape, E: Float, D: Device, T: Tape<D>>(
    items: Vec<Tensor<S, E, D, T>>,
    shape: S2,
) -> Result<Tensor<S2, E, D, T>> {
    let first = items[0].shape;
    if let Some(bad) = items.iter().find(|t| t.shape != first) {
        return Err(Error::ShapeMismatch { op: "stack", lhs: first.dims().to_vec(), rhs: bad.dims().to_vec() });
    }
    let dev = items[0].device.clone();
    let n = first.numel();
    let flat = Layout::contiguous(Dims::from_slice(&[n]));
    let mut out = dev.alloc_zeros::<E>(n * items.len());
    let mut tape: Option<T> = None;
    let mut ids = Vec::with_capacity(items.len());
    for (i, t) in items.into_iter().enumerate() {
        let l = t.layout();
        let (t, tt) = t.split_tape();
        crate::autograd::capture(&tt, &t);
        let dst = Layout { offset: i * n, ..Layout::contiguous(first.dims()) };
        dev.copy_into(&t.data, &l, &mut out, &dst, false);
        ids.push(t.id);
        tape = Some(match tape {
            None => tt,
            Some(acc) => acc.merge(tt),
        });
    }
    let tape = tape.expect("at least one tensor");
    let out = Tensor::from_storage(dev.clone(), out, shape);
    if T::TAPED {
        let oid = out.id;
        let record =
            crate::autograd::OpRecord::new("stack", ids.clone(), oid, out.shape.dims()).exports(Op::Stack, E::DTYPE);
        tape.add_backward_op(record, move |g| {
            let ins: Vec<(UniqueId, usize)> = ids.iter().map(|&id| (id, n)).collect();
            g.backward_step_many::<E>(&dev, oid, &ins, |gy, gxs| {
                // Each piece's gradient is one contiguous block of the output's.
                for (i, gx) in gxs.iter_mut().enumerate() {
                    dev.copy_into(gy, &Layout { offset: i * n, ..flat }, gx, &flat, true);
                }
            });
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

impl<S: Shape, E: crate::dtypes::Dtype, D: Device> Tensor<S, E, D, crate::autograd::NoTape> {
    /// A view of this tensor repeated along new leading axes, as `shape` (whose trailing axes
    /// are this tensor's): no copy, no gradient. For masks and indices, which have no tape.
    pub(crate) fn expand_leading<S2: Shape>(&self, shape: S2) -> Tensor<S2, E, D> {
        let (new, old) = (shape.dims(), self.dims());
        let lead = new.len() - old.len();
        assert!(new.as_slice()[lead..] == *old.as_slice(), "expand_leading: {old:?} is not the tail of {new:?}");
        let mut strides = Dims::from_slice(&vec![0; new.len()]);
        for d in 0..old.len() {
            strides[lead + d] = self.strides[d];
        }
        Tensor {
            id: crate::autograd::UniqueId::next(),
            data: self.data.clone(),
            shape,
            strides,
            offset: self.offset,
            device: self.device.clone(),
            tape: crate::autograd::NoTape,
        }
    }
}

/// Changing only the shape type works for every dtype (index and mask tensors too).
impl<S: Shape, E: Dtype, D: Device, T> Tensor<S, E, D, T> {
    /// Converts to another shape type of the same rank whose dims have the same sizes (for example
    /// a computed `Sum<Const<2>, Const<3>>` to `Const<5>`, or `usize` to `Const<N>`). Static sizes
    /// are checked at build time; run-time sizes give an `Err`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    /// let b: Tensor<Rank2<1, 3>, f32, Cpu> = dev.ones();
    /// let c: Tensor<Rank2<3, 3>, f32, Cpu> = a.concat_along(b, Axis::<0>).realize();
    /// let d: Tensor<(usize, usize), f32, Cpu> = c.realize();
    /// assert!(d.try_realize::<Rank2<4, 3>>().is_err());
    /// ```
    pub fn realize<S2: Shape>(self) -> Tensor<S2, E, D, T> {
        const {
            assert!(S::RANK == S2::RANK, "realize: the target shape has a different rank");
            assert!(
                crate::shapes::static_dims_agree(&S::STATIC_DIMS, &S2::STATIC_DIMS),
                "realize: a static dim of the target differs from this shape's (see the types below: \
                 a concat, reshape or flatten result declared with the wrong size?)"
            );
        }
        self.try_realize().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::realize`] with run-time checking only.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<(usize,), f32, Cpu> = Cpu::seeded(0).arange(3);
    /// assert!(t.clone().try_realize::<Rank1<3>>().is_ok());
    /// assert!(t.try_realize::<Rank1<4>>().is_err());
    /// ```
    pub fn try_realize<S2: Shape>(self) -> Result<Tensor<S2, E, D, T>> {
        let Some(shape) = S2::from_dims(self.dims().as_slice()) else {
            return Err(Error::InvalidSize {
                op: "realize",
                reason: format!("dims {:?} do not fit `{}`", self.dims(), core::any::type_name::<S2>()),
            });
        };
        // Same values, same layout, same id: only the type changes, so gradients need no op.
        Ok(Tensor {
            id: self.id,
            data: self.data,
            shape,
            strides: self.strides,
            offset: self.offset,
            device: self.device,
            tape: self.tape,
        })
    }
}
