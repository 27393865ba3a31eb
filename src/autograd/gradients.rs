//! Gradient storage, keyed by tensor id, holding buffers of any float dtype.

use crate::compat::prelude::*;
use crate::compat::{HashMap, HashSet};
use crate::device::{Device, Layout};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Dims, Shape};
use crate::tensor::Tensor;
use core::any::Any;

/// Identifies a tensor value. Ids grow over time, so an op's output always has a larger id than its
/// inputs: sorting by id is a topological order of the recorded graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueId(u64);

impl UniqueId {
    /// A fresh id.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::autograd::UniqueId;
    /// assert!(UniqueId::next() < UniqueId::next());
    /// ```
    pub fn next() -> Self {
        #[cfg(target_has_atomic = "64")]
        {
            use core::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(1);
            UniqueId(COUNTER.fetch_add(1, Ordering::Relaxed))
        }
        // 32-bit targets without 64-bit atomics (Cortex-M): a lock, since a 32-bit counter
        // could wrap and break the id order backward relies on.
        #[cfg(not(target_has_atomic = "64"))]
        {
            static COUNTER: crate::compat::Mutex<u64> = crate::compat::Mutex::new(1);
            let mut next = COUNTER.lock();
            *next += 1;
            UniqueId(*next - 1)
        }
    }
}

#[derive(Clone, Debug)]
enum Keep {
    All,
    Only(HashSet<UniqueId>),
}

/// The gradients of a backward pass: one buffer per tensor id, each with that tensor's shape.
///
/// Gradients made by [`Tensor::alloc_grads`] keep only the tensors they were allocated for (the
/// parameters); [`Gradients::leaky`] keeps every intermediate too. Reusing a `Gradients` for
/// several backward passes adds the gradients up (gradient accumulation).
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let w: Tensor<Rank1<3>, f64, Cpu> = dev.tensor([1.0, 2.0, 3.0]);
/// let g = w.alloc_grads();
/// let g = w.trace(g).square().sum::<Rank0, _>().backward();
/// assert_eq!(g.get(&w).to_vec(), vec![2.0, 4.0, 6.0]);
/// // a second pass into the same gradients accumulates
/// let g = w.trace(g).square().sum::<Rank0, _>().backward();
/// assert_eq!(g.get(&w).to_vec(), vec![4.0, 8.0, 12.0]);
/// ```
pub struct Gradients<D: Device> {
    grads: HashMap<UniqueId, Box<dyn Any + Send + Sync>>,
    keep: Keep,
    _device: core::marker::PhantomData<fn() -> D>,
}

impl<D: Device> Default for Gradients<D> {
    fn default() -> Self {
        Self::leaky()
    }
}

impl<D: Device> core::fmt::Debug for Gradients<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gradients").field("tensors", &self.grads.len()).field("keep", &self.keep).finish()
    }
}

impl<D: Device> Gradients<D> {
    /// Gradients that keep every tensor's gradient, intermediates included.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f64]);
    /// let y = x.trace(Gradients::leaky()).exp();
    /// let y2 = y.clone();
    /// let g = y.sum::<Rank0, _>().backward();
    /// assert!(g.contains(&y2)); // intermediates are kept
    /// ```
    pub fn leaky() -> Self {
        Self { grads: HashMap::new(), keep: Keep::All, _device: core::marker::PhantomData }
    }

    /// Gradients that keep only the tensors later passed to [`Gradients::keep`] (or allocated by
    /// [`Tensor::alloc_grads`]).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f64]);
    /// let mut g = Gradients::only_kept();
    /// g.keep(&x);
    /// let y = x.trace(g).exp();
    /// let y2 = y.clone();
    /// let g = y.sum::<Rank0, _>().backward();
    /// assert!(g.contains(&x) && !g.contains(&y2));
    /// ```
    pub fn only_kept() -> Self {
        Self { grads: HashMap::new(), keep: Keep::Only(HashSet::new()), _device: core::marker::PhantomData }
    }

    /// Keeps `t`'s gradient after the backward pass, allocating it as zeros.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let (a, b) = (dev.tensor([1.0f64]), dev.tensor([2.0f64]));
    /// let mut g = a.alloc_grads();
    /// g.keep(&b);
    /// assert!(g.contains(&a) && g.contains(&b));
    /// ```
    pub fn keep<S: Shape, E: Float, T>(&mut self, t: &Tensor<S, E, D, T>) {
        if let Keep::Only(set) = &mut self.keep {
            set.insert(t.id);
        }
        self.get_or_zeros::<E>(&t.device, t.id, t.shape.numel());
    }

    /// The gradient of `t`, with `t`'s shape.
    ///
    /// # Panics
    /// When the backward pass did not reach `t`; [`Gradients::try_get`] returns an `Err` instead.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f64, 2.0]]);
    /// let g = x.leaky_trace().sum::<Rank0, _>().backward();
    /// let gx: Tensor<Rank2<1, 2>, f64, Cpu> = g.get(&x);
    /// assert_eq!(gx.to_array(), [[1.0, 1.0]]);
    /// ```
    pub fn get<S: Shape, E: Float, T>(&self, t: &Tensor<S, E, D, T>) -> Tensor<S, E, D> {
        self.try_get(t).expect("Gradients::get: no gradient for this tensor")
    }

    /// The gradient of `t`, or [`Error::NoGradient`].
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let (x, other) = (dev.tensor([1.0f64]), dev.tensor([1.0f64]));
    /// let g = x.leaky_trace().sum::<Rank0, _>().backward();
    /// assert!(g.try_get(&x).is_ok());
    /// assert_eq!(g.try_get(&other).unwrap_err(), Error::NoGradient);
    /// ```
    pub fn try_get<S: Shape, E: Float, T>(&self, t: &Tensor<S, E, D, T>) -> Result<Tensor<S, E, D>> {
        let g = self.storage::<E>(t.id).ok_or(Error::NoGradient)?;
        let data = t.device.download(g, &Layout::contiguous(t.shape.dims()));
        Ok(Tensor::from_storage(t.device.clone(), t.device.upload(data), t.shape))
    }

    /// True when a gradient for `t` is held.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32]);
    /// assert!(x.alloc_grads().contains(&x));
    /// ```
    pub fn contains<S, E: Float, T>(&self, t: &Tensor<S, E, D, T>) -> bool {
        self.grads.contains_key(&t.id)
    }

    /// Drops every held gradient, as PyTorch's `zero_grad()` (whose default sets them to `None`):
    /// the next backward pass starts from zero. Which tensors are kept does not change, and the
    /// freed buffers go back to the device's cache for that pass.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f64]);
    /// let mut g = x.leaky_trace().square().sum::<Rank0, _>().backward();
    /// g.zero_grad();
    /// assert!(!g.contains(&x));
    /// let g = x.trace(g).square().sum::<Rank0, _>().backward();
    /// assert_eq!(g.get(&x).to_vec(), vec![2.0]); // not 4: the first pass was dropped
    /// ```
    pub fn zero_grad(&mut self) {
        self.grads.clear();
    }

    /// The raw buffer of the gradient with this id.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32, 2.0]);
    /// let g = x.leaky_trace().sum::<Rank0, _>().backward();
    /// assert_eq!(g.storage::<f32>(x.id()).unwrap().as_slice(), &[1.0, 1.0]);
    /// ```
    pub fn storage<E: Float>(&self, id: UniqueId) -> Option<&D::Storage<E>> {
        self.grads.get(&id)?.downcast_ref()
    }

    /// Replaces the gradient of `id` (gradient clipping).
    pub(crate) fn replace<E: Float>(&mut self, id: UniqueId, storage: D::Storage<E>) {
        self.grads.insert(id, Box::new(storage));
    }

    pub(crate) fn get_or_zeros<E: Float>(&mut self, dev: &D, id: UniqueId, len: usize) -> &mut D::Storage<E> {
        let entry = self.grads.entry(id).or_insert_with(|| Box::new(dev.alloc_zeros::<E>(len)));
        entry.downcast_mut::<D::Storage<E>>().expect("a tensor id was used with two dtypes")
    }

    fn is_kept(&self, id: UniqueId) -> bool {
        match &self.keep {
            Keep::All => true,
            Keep::Only(set) => set.contains(&id),
        }
    }

    /// Drops the gradients of everything that is not kept.
    pub(crate) fn retain_kept(&mut self) {
        if let Keep::Only(set) = &self.keep {
            self.grads.retain(|id, _| set.contains(id));
        }
    }

    /// Joins two gradient sets (when two tapes merge).
    pub(crate) fn absorb(&mut self, other: Gradients<D>) {
        self.keep = match (core::mem::replace(&mut self.keep, Keep::All), other.keep) {
            (Keep::Only(mut a), Keep::Only(b)) => {
                a.extend(b);
                Keep::Only(a)
            }
            _ => Keep::All,
        };
        for (id, g) in other.grads {
            self.grads.entry(id).or_insert(g);
        }
    }

    /// One step of the backward pass: `f(gy, [gx_0, ..])` with the gradient of an op's output and
    /// mutable gradients of its inputs (zeros when new). Skipped when no gradient reached the output.
    ///
    /// An input listed twice (`x * x`) gets a scratch buffer for its second slot, added back after.
    pub(crate) fn backward_step<E: Float, const N: usize>(
        &mut self,
        dev: &D,
        out: UniqueId,
        ins: [(UniqueId, usize); N],
        f: impl FnOnce(&D::Storage<E>, [&mut D::Storage<E>; N]),
    ) {
        self.step::<E>(dev, out, &ins, true, |gy, bufs, _| {
            let mut refs = bufs.iter_mut();
            f(gy, core::array::from_fn(|_| refs.next().expect("one buffer per input")));
        });
    }

    /// [`Gradients::backward_step`] for a kernel that can write a gradient as well as add to one:
    /// `f(gy, [gx_0, ..], [accumulate_0, ..])`, where a buffer whose flag is `false` is new, its
    /// contents unspecified, and the kernel must write every element. This saves zero-filling a
    /// buffer and reading it back, two of the four memory passes of a typical backward kernel.
    pub(crate) fn backward_step_write<E: Float, const N: usize>(
        &mut self,
        dev: &D,
        out: UniqueId,
        ins: [(UniqueId, usize); N],
        f: impl FnOnce(&D::Storage<E>, [&mut D::Storage<E>; N], [bool; N]),
    ) {
        self.step::<E>(dev, out, &ins, false, |gy, bufs, acc| {
            let mut refs = bufs.iter_mut();
            f(
                gy,
                core::array::from_fn(|_| refs.next().expect("one buffer per input")),
                core::array::from_fn(|i| acc[i]),
            );
        });
    }

    /// [`Gradients::backward_step`] for any number of inputs (stack).
    pub(crate) fn backward_step_many<E: Float>(
        &mut self,
        dev: &D,
        out: UniqueId,
        ins: &[(UniqueId, usize)],
        f: impl FnOnce(&D::Storage<E>, &mut [D::Storage<E>]),
    ) {
        self.step::<E>(dev, out, ins, true, |gy, bufs, _| f(gy, bufs));
    }

    /// [`Gradients::backward_step_write`] for any number of inputs.
    pub(crate) fn backward_step_many_write<E: Float>(
        &mut self,
        dev: &D,
        out: UniqueId,
        ins: &[(UniqueId, usize)],
        f: impl FnOnce(&D::Storage<E>, &mut [D::Storage<E>], &[bool]),
    ) {
        self.step::<E>(dev, out, ins, false, f);
    }

    /// The backward step behind the four above. A new buffer is zero-filled when `zero_new`;
    /// otherwise it is left unspecified and its `accumulate` flag is `false`.
    fn step<E: Float>(
        &mut self,
        dev: &D,
        out: UniqueId,
        ins: &[(UniqueId, usize)],
        zero_new: bool,
        f: impl FnOnce(&D::Storage<E>, &mut [D::Storage<E>], &[bool]),
    ) {
        let Some(gy) = self.grads.remove(&out) else { return };
        let gy = *gy.downcast::<D::Storage<E>>().expect("a tensor id was used with two dtypes");
        let is_dup = |i: usize| ins[..i].iter().any(|(j, _)| *j == ins[i].0);
        let mut bufs: Vec<D::Storage<E>> = Vec::with_capacity(ins.len());
        let mut accumulate = Vec::with_capacity(ins.len());
        for (i, &(id, len)) in ins.iter().enumerate() {
            let taken = if is_dup(i) { None } else { self.grads.remove(&id) };
            accumulate.push(taken.is_some() || zero_new);
            bufs.push(match taken {
                Some(b) => *b.downcast::<D::Storage<E>>().expect("a tensor id was used with two dtypes"),
                None if zero_new => dev.alloc_zeros::<E>(len),
                None => dev.alloc_for_overwrite::<E>(len),
            });
        }
        f(&gy, &mut bufs, &accumulate);
        // Put the inputs back; a duplicate's scratch buffer is added to its first slot.
        let mut scratch = Vec::new();
        for (i, buf) in bufs.into_iter().enumerate() {
            if is_dup(i) {
                scratch.push((ins[i].0, buf));
            } else {
                self.grads.insert(ins[i].0, Box::new(buf));
            }
        }
        for (id, buf) in scratch {
            let len = D::storage_len(&buf);
            let l = Layout::contiguous(Dims::from_slice(&[len]));
            dev.copy_into(&buf, &l, self.get_or_zeros::<E>(dev, id, len), &l, true);
        }
        if self.is_kept(out) {
            self.grads.insert(out, Box::new(gy));
        }
    }

    /// Seeds the gradient of the tensor `backward` starts from.
    pub(crate) fn seed<E: Float>(&mut self, dev: &D, id: UniqueId, len: usize) {
        let g = self.get_or_zeros::<E>(dev, id, len);
        let one = dev.upload(vec![E::one(); len]);
        let l = Layout::contiguous(Dims::from_slice(&[len]));
        dev.copy_into(&one, &l, g, &l, true);
    }
}
