//! The tensor type.

mod create;
use crate::compat::prelude::*;
pub use create::{TensorFactory, ToArray};
mod display;

pub use create::FromArray;

use crate::autograd::{Gradients, NoTape, OwnedTape, Tape, UniqueId};
use crate::device::{Cpu, Device, Layout};
use crate::dtypes::{Dtype, Float};
use crate::error::Result;
use crate::shapes::{Dims, Rank0, Shape};
use alloc::sync::Arc;

/// An n-dimensional array whose shape `S`, element type `E` and device `D` are types, and whose
/// tape `T` says whether its ops are recorded for autograd.
///
/// Storage is reference counted: `clone`, broadcast, permute, narrow and reshape of a contiguous
/// tensor share it and copy nothing. An op on a tensor that holds the only reference to its buffer
/// writes its result in place.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
/// let b = a.clone().exp().sum::<Rank1<2>, _>();
/// assert_eq!(b.dims().as_slice(), &[2]);
/// ```
pub struct Tensor<S, E: Dtype, D: Device = Cpu, T = NoTape> {
    pub(crate) id: UniqueId,
    pub(crate) data: Arc<D::Storage<E>>,
    pub(crate) shape: S,
    pub(crate) strides: Dims,
    pub(crate) offset: usize,
    pub(crate) device: D,
    pub(crate) tape: T,
}

impl<S: Clone, E: Dtype, D: Device, T: Clone> Clone for Tensor<S, E, D, T> {
    /// A handle to the same value (same id, shared storage, shared tape).
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            data: self.data.clone(),
            shape: self.shape.clone(),
            strides: self.strides,
            offset: self.offset,
            device: self.device.clone(),
            tape: self.tape.clone(),
        }
    }
}

impl<S: Shape, E: Dtype, D: Device, T> Tensor<S, E, D, T> {
    /// The tensor's own contiguous buffer, for an in-place update that keeps the id (an
    /// optimiser step): copied first when shared with another tensor or strided.
    pub(crate) fn storage_mut(&mut self) -> &mut D::Storage<E> {
        let layout = self.layout();
        if !layout.is_whole_buffer(D::storage_len(&*self.data)) || Arc::get_mut(&mut self.data).is_none() {
            let values = self.device.download(&self.data, &layout);
            self.data = Arc::new(self.device.upload(values));
            self.strides = self.shape.strides();
            self.offset = 0;
        }
        Arc::get_mut(&mut self.data).expect("a buffer of its own")
    }

    /// The tensor's values as a contiguous buffer of its own (no copy when it already is one).
    pub(crate) fn into_storage(mut self) -> D::Storage<E> {
        self.storage_mut();
        match Arc::try_unwrap(self.data) {
            Ok(storage) => storage,
            Err(_) => unreachable!("storage_mut made the buffer unique"),
        }
    }
}

impl<S: Shape, E: Dtype, D: Device> Tensor<S, E, D, NoTape> {
    /// A contiguous tensor over `storage` with a fresh id and no tape.
    pub(crate) fn from_storage(device: D, storage: D::Storage<E>, shape: S) -> Self {
        Self::from_arc(device, Arc::new(storage), shape)
    }
    pub(crate) fn from_arc(device: D, data: Arc<D::Storage<E>>, shape: S) -> Self {
        Self { id: UniqueId::next(), data, strides: shape.strides(), shape, offset: 0, device, tape: NoTape }
    }
}

impl<S: Shape, E: Dtype, D: Device, T> Tensor<S, E, D, T> {
    /// The shape value.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<(usize, Const<3>), f32, Cpu> = Cpu::seeded(0).zeros_like(&(2, Const));
    /// assert_eq!(t.shape().0, 2);
    /// ```
    pub fn shape(&self) -> &S {
        &self.shape
    }
    /// The sizes of the dims.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert_eq!(t.dims().as_slice(), &[2, 3]);
    /// ```
    pub fn dims(&self) -> Dims {
        self.shape.dims()
    }
    /// The number of elements.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert_eq!(t.numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    /// The device the data lives on.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let t: Tensor<Rank1<2>, f32, Cpu> = dev.zeros();
    /// let u: Tensor<Rank1<2>, f32, Cpu> = t.device().ones();
    /// assert_eq!(u.to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn device(&self) -> &D {
        &self.device
    }
    /// The id gradients are keyed by.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank1<2>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert_eq!(t.clone().id(), t.id());
    /// assert_ne!(t.detach().id(), t.id());
    /// ```
    pub fn id(&self) -> UniqueId {
        self.id
    }
    /// Sizes, strides and offset of the view.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert_eq!(t.t().layout().strides.as_slice(), &[1, 3]);
    /// ```
    pub fn layout(&self) -> Layout {
        Layout { dims: self.shape.dims(), strides: self.strides, offset: self.offset }
    }
    /// True when the elements are stored row-major without gaps.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let t: Tensor<Rank2<2, 3>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// assert!(t.is_contiguous());
    /// assert!(!t.t().is_contiguous());
    /// ```
    pub fn is_contiguous(&self) -> bool {
        self.layout().is_contiguous()
    }
    /// The elements in row-major order.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let t: Tensor<Rank2<2, 2>, f32, Cpu> = dev.tensor([[1.0, 2.0], [3.0, 4.0]]);
    /// assert_eq!(t.permute::<_, Axes2<1, 0>>().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
    /// ```
    pub fn to_vec(&self) -> Vec<E> {
        self.device.download(&self.data, &self.layout())
    }

    /// A copy of the value on another device (`Cpu` to `Cuda` and back), contiguous, with no
    /// tape: the copy starts a new graph (trace it again to differentiate on the new device).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let (a, b) = (Cpu::seeded(0), Cpu::seeded(1));
    /// let x: Tensor<Rank2<2, 3>, f32, Cpu> = a.randn();
    /// let y = x.clone().t().to_device(&b);
    /// assert_eq!(y.to_vec(), x.t().to_vec());
    /// ```
    pub fn to_device<D2: Device>(&self, dev: &D2) -> Tensor<S, E, D2> {
        Tensor::from_storage(dev.clone(), dev.upload(self.to_vec()), self.shape)
    }

    /// Separates the tape from the value.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank1<2>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// let (value, tape) = x.leaky_trace().split_tape();
    /// let again = value.put_tape(tape);
    /// assert_eq!(again.numel(), 2);
    /// ```
    pub fn split_tape(self) -> (Tensor<S, E, D, NoTape>, T) {
        (
            Tensor {
                id: self.id,
                data: self.data,
                shape: self.shape,
                strides: self.strides,
                offset: self.offset,
                device: self.device,
                tape: NoTape,
            },
            self.tape,
        )
    }

    /// The same value carrying `tape`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x: Tensor<Rank1<2>, f32, Cpu> = Cpu::seeded(0).zeros();
    /// let t = x.leaky_trace();
    /// let y = x.clone().put_tape(t.tape().clone()) + t;
    /// assert_eq!(y.tape().recorded_ops().len(), 1);
    /// ```
    pub fn put_tape<T2>(self, tape: T2) -> Tensor<S, E, D, T2> {
        Tensor {
            id: self.id,
            data: self.data,
            shape: self.shape,
            strides: self.strides,
            offset: self.offset,
            device: self.device,
            tape,
        }
    }

    /// The same value without a tape, under a new id: gradients do not flow through it.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<2>, f64, Cpu> = dev.tensor([1.0, 2.0]);
    /// let t = x.leaky_trace();
    /// let y = t.clone() * t.detach();     // d/dx (x * const) = const
    /// let g = y.sum::<Rank0, _>().backward();
    /// assert_eq!(g.get(&x).to_vec(), vec![1.0, 2.0]);
    /// ```
    pub fn detach(&self) -> Tensor<S, E, D, NoTape> {
        let mut t = self.clone_without_tape();
        t.id = UniqueId::next();
        t
    }

    /// The same value (same id) without a tape.
    pub(crate) fn clone_without_tape(&self) -> Tensor<S, E, D, NoTape> {
        Tensor {
            id: self.id,
            data: self.data.clone(),
            shape: self.shape,
            strides: self.strides,
            offset: self.offset,
            device: self.device.clone(),
            tape: NoTape,
        }
    }
}

impl<S: Shape, E: Dtype, D: Device> Tensor<S, E, D, NoTape> {
    /// Starts recording into `grads`: ops on the result are differentiated, and their gradients
    /// accumulate into `grads`. Integer tensors can carry a tape too (an embedding's indices), so
    /// that the parameters they touch are differentiated.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let w = Cpu::seeded(0).tensor([1.0f64, 2.0]);
    /// let g = w.trace(w.alloc_grads()).sum::<Rank0, _>().backward();
    /// assert_eq!(g.get(&w).to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn trace(&self, grads: Gradients<D>) -> Tensor<S, E, D, OwnedTape<D>> {
        self.clone().put_tape(OwnedTape::new(grads))
    }
    /// Records onto an existing tape (shared with every other tensor traced on it): the way to
    /// differentiate with respect to several parameters at once.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let w = dev.tensor([[2.0f64]]);
    /// let b = dev.tensor([1.0f64]);
    /// let mut grads = w.alloc_grads();
    /// grads.keep(&b);
    /// let tape = OwnedTape::new(grads);
    /// let x = dev.tensor([[3.0f64]]);
    /// let y = x.matmul(w.trace_on(&tape)) + b.trace_on(&tape).broadcast::<_, Axis<0>>();
    /// let g = y.sum::<Rank0, _>().backward();
    /// assert_eq!((g.get(&w).to_vec(), g.get(&b).to_vec()), (vec![3.0], vec![1.0]));
    /// ```
    pub fn trace_on(&self, tape: &OwnedTape<D>) -> Tensor<S, E, D, OwnedTape<D>> {
        self.clone().put_tape(tape.clone())
    }
}

impl<S: Shape, E: Float, D: Device> Tensor<S, E, D, NoTape> {
    /// Starts recording into fresh gradients that keep every intermediate gradient.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([3.0f64]);
    /// let g = x.leaky_trace().square().sum::<Rank0, _>().backward();
    /// assert_eq!(g.get(&x).to_vec(), vec![6.0]);
    /// ```
    pub fn leaky_trace(&self) -> Tensor<S, E, D, OwnedTape<D>> {
        self.trace(Gradients::leaky())
    }
    /// Gradients that hold (zeros for) this tensor and keep only it and others added with
    /// [`Gradients::keep`].
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let w = Cpu::seeded(0).tensor([1.0f32]);
    /// let g = w.alloc_grads();
    /// assert_eq!(g.get(&w).to_vec(), vec![0.0]);
    /// ```
    pub fn alloc_grads(&self) -> Gradients<D> {
        let mut g = Gradients::only_kept();
        g.keep(self);
        g
    }
}

impl<E: Float, D: Device> Tensor<Rank0, E, D, OwnedTape<D>> {
    /// Runs the recorded backward closures from this scalar and returns the gradients.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<3>, f64, Cpu> = dev.tensor([1.0, 2.0, 3.0]);
    /// let g = x.leaky_trace().square().sum::<Rank0, _>().backward();
    /// assert_eq!(g.get(&x).to_vec(), vec![2.0, 4.0, 6.0]);
    /// ```
    pub fn backward(self) -> Gradients<D> {
        self.try_backward().expect("backward")
    }

    /// [`Tensor::backward`], returning an error from a backward closure instead of panicking.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([2.0f64]);
    /// let g = x.leaky_trace().exp().sum::<Rank0, _>().try_backward().unwrap();
    /// assert!((g.get(&x).to_vec()[0] - 2f64.exp()).abs() < 1e-12);
    /// ```
    pub fn try_backward(self) -> Result<Gradients<D>> {
        let (t, tape) = self.split_tape();
        let mut rec = tape.take_recording();
        rec.grads.seed::<E>(&t.device, t.id, 1);
        rec.ops.sort_by_key(|(r, _)| core::cmp::Reverse(r.output));
        for (_, op) in rec.ops {
            op(&mut rec.grads)?;
        }
        rec.grads.retain_kept();
        Ok(rec.grads)
    }
}

impl<S: Shape, E: Float, D: Device, T> Tensor<S, E, D, T> {
    /// This tensor, or [`Error::NonFinite`](crate::Error::NonFinite) when an element is NaN or
    /// infinite: the check to put on a loss when a diverging run should stop with an error.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let ok = dev.tensor([1.0f32, 2.0]);
    /// assert!(ok.ensure_finite().is_ok());
    /// let bad = dev.tensor([1.0f32, 0.0]).ln() * 0.0; // ln 0 = -inf, and -inf * 0 = NaN
    /// assert_eq!(bad.ensure_finite().unwrap_err(), Error::NonFinite { op: "ensure_finite" });
    /// ```
    pub fn ensure_finite(self) -> Result<Self> {
        if self.to_vec().iter().all(|v| v.is_finite()) {
            Ok(self)
        } else {
            Err(crate::Error::NonFinite { op: "ensure_finite" })
        }
    }
}

impl<S: Shape, E: Dtype, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// The tape (a clone of the handle).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32]);
    /// let y = x.leaky_trace().sin();
    /// assert_eq!(y.tape().recorded_ops()[0].name, "sin");
    /// ```
    pub fn tape(&self) -> &T {
        &self.tape
    }
}

impl<S: Shape, E: Dtype, D: Device> Tensor<S, E, D, NoTape> {
    /// Converts to any element type (for integers: truncating; for bool: non-zero is true).
    /// No gradient crosses this conversion; use `to_dtype` between floats to keep the tape.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let t: Tensor<Rank1<3>, f32, Cpu> = dev.tensor([0.0, 1.7, -2.2]);
    /// assert_eq!(t.cast::<i32>().to_vec(), vec![0, 1, -2]);
    /// assert_eq!(t.cast::<bool>().to_vec(), vec![false, true, true]);
    /// ```
    pub fn cast<E2: Dtype>(&self) -> Tensor<S, E2, D, NoTape> {
        Tensor::from_storage(self.device.clone(), self.device.cast::<E, E2>(&self.data, &self.layout()), self.shape)
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    fn buffer_address<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> usize {
        t.data.as_slice().as_ptr() as usize
    }

    #[test]
    #[cfg_attr(miri, ignore = "long arrays: minutes under Miri, and no unsafe code here")]
    fn an_unshared_buffer_is_reused_in_place() {
        let x: Tensor<Rank1<70_000>, f32, Cpu> = Cpu::seeded(0).ones();
        let addr = buffer_address(&x);
        let y = x.exp().sqrt() * 2.0;
        assert_eq!(buffer_address(&y), addr);
        assert!(y.to_vec().iter().all(|&v| (v - 2.0 * 0.5f32.exp()).abs() < 1e-6));
        let z = y.clone() + y.clone();
        // both operands shared the buffer: the sum needed a new one
        assert_ne!(buffer_address(&z), addr);
    }

    #[test]
    #[cfg_attr(miri, ignore = "long arrays: minutes under Miri, and no unsafe code here")]
    fn a_taped_input_is_not_overwritten() {
        let x: Tensor<Rank1<70_000>, f32, Cpu> = Cpu::seeded(0).ones();
        let addr = buffer_address(&x);
        let y = x.leaky_trace().exp();
        assert_ne!(buffer_address(&y), addr);
        assert!(x.to_vec().iter().all(|&v| v == 1.0));
    }
}
