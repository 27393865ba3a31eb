//! Creating tensors on a device, and reading them back as arrays.

use super::Tensor;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::shapes::{Const, ConstShape, Rank0, Rank1, Rank2, Rank3, Rank4, Shape};
use half::{bf16, f16};

/// Nested arrays whose nesting gives a static shape: `[[E; 3]; 2]` is a `Rank2<2, 3>`.
pub trait FromArray<E: Dtype> {
    /// The shape of the array.
    type Shape: ConstShape;
    /// The elements in row-major order.
    fn flatten(self) -> Vec<E>;
}

macro_rules! from_array {
    ($($t:ty),*) => {$(
        impl<const A: usize> FromArray<$t> for [$t; A] {
            type Shape = Rank1<A>;
            fn flatten(self) -> Vec<$t> { self.to_vec() }
        }
        impl<const A: usize, const B: usize> FromArray<$t> for [[$t; B]; A] {
            type Shape = Rank2<A, B>;
            fn flatten(self) -> Vec<$t> { self.iter().flatten().copied().collect() }
        }
        impl<const A: usize, const B: usize, const C: usize> FromArray<$t> for [[[$t; C]; B]; A] {
            type Shape = Rank3<A, B, C>;
            fn flatten(self) -> Vec<$t> { self.iter().flatten().flatten().copied().collect() }
        }
        impl<const A: usize, const B: usize, const C: usize, const D: usize> FromArray<$t> for [[[[$t; D]; C]; B]; A] {
            type Shape = Rank4<A, B, C, D>;
            fn flatten(self) -> Vec<$t> { self.iter().flatten().flatten().flatten().copied().collect() }
        }
    )*};
}
from_array!(f32, f64, f16, bf16, i32, i64, u8, bool);

/// Tensor creation, for every device.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
/// let b: Tensor<(usize, Const<3>), f32, Cpu> = dev.ones_like(&(4, Const));
/// let c = dev.tensor([[1.0f32, 2.0], [3.0, 4.0]]);
/// let d: Tensor<(usize,), f32, Cpu> = dev.arange(5);
/// let e: Tensor<Rank1<4>, f64, Cpu> = dev.randn();
/// assert_eq!((a.numel(), b.numel(), c.numel(), d.to_vec()[4], e.numel()), (6, 12, 4, 4.0, 4));
/// ```
// `from_vec` builds a tensor on this device, so it takes the device as `self`.
#[allow(clippy::wrong_self_convention)]
pub trait TensorFactory: Device {
    /// Zeros of a static shape.
    fn zeros<S: ConstShape, E: Dtype>(&self) -> Tensor<S, E, Self> {
        self.zeros_like(&S::default())
    }
    /// Zeros of the given shape.
    fn zeros_like<S: Shape, E: Dtype>(&self, shape: &S) -> Tensor<S, E, Self> {
        Tensor::from_storage(self.clone(), Device::alloc_zeros(self, shape.numel()), *shape)
    }
    /// Ones of a static shape.
    fn ones<S: ConstShape, E: Dtype>(&self) -> Tensor<S, E, Self> {
        self.full(E::cast_f64(1.0))
    }
    /// Ones of the given shape.
    fn ones_like<S: Shape, E: Dtype>(&self, shape: &S) -> Tensor<S, E, Self> {
        self.full_like(shape, E::cast_f64(1.0))
    }
    /// `value` everywhere, static shape.
    fn full<S: ConstShape, E: Dtype>(&self, value: E) -> Tensor<S, E, Self> {
        self.full_like(&S::default(), value)
    }
    /// `value` everywhere, given shape.
    fn full_like<S: Shape, E: Dtype>(&self, shape: &S, value: E) -> Tensor<S, E, Self> {
        Tensor::from_storage(self.clone(), self.upload(vec![value; shape.numel()]), *shape)
    }
    /// A scalar tensor.
    fn scalar<E: Dtype>(&self, value: E) -> Tensor<Rank0, E, Self> {
        self.full_like(&(), value)
    }
    /// A tensor from nested arrays; the nesting is the shape.
    fn tensor<E: Dtype, A: FromArray<E>>(&self, array: A) -> Tensor<A::Shape, E, Self> {
        let shape = A::Shape::default();
        Tensor::from_storage(self.clone(), self.upload(array.flatten()), shape)
    }
    /// A tensor of `shape` from row-major data; an `Err` when the lengths differ.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let t = dev.try_from_vec(vec![1.0f32, 2.0, 3.0, 4.0], (2usize, Const::<2>)).unwrap();
    /// assert_eq!(t.to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    /// assert!(dev.try_from_vec(vec![1.0f32; 3], (2usize, Const::<2>)).is_err());
    /// ```
    fn try_from_vec<S: Shape, E: Dtype>(&self, data: Vec<E>, shape: S) -> Result<Tensor<S, E, Self>> {
        if data.len() != shape.numel() {
            return Err(Error::DataLength { op: "from_vec", expected: shape.numel(), found: data.len() });
        }
        Ok(Tensor::from_storage(self.clone(), self.upload(data), shape))
    }
    /// [`TensorFactory::try_from_vec`], panicking on a length mismatch.
    fn from_vec<S: Shape, E: Dtype>(&self, data: Vec<E>, shape: S) -> Tensor<S, E, Self> {
        self.try_from_vec(data, shape).expect("from_vec")
    }
    /// `0, 1, .., n-1`.
    fn arange<E: Dtype>(&self, n: usize) -> Tensor<(usize,), E, Self> {
        self.from_vec((0..n).map(|i| E::cast_f64(i as f64)).collect(), (n,))
    }
    /// `0, 1, .., N-1` with a static length.
    fn arange_const<const N: usize, E: Dtype>(&self) -> Tensor<Rank1<N>, E, Self> {
        self.from_vec((0..N).map(|i| E::cast_f64(i as f64)).collect(), (Const::<N>,))
    }
    /// Uniform samples in `[0, 1)`, static shape.
    fn rand<S: ConstShape, E: Float>(&self) -> Tensor<S, E, Self> {
        self.uniform_like(&S::default(), 0.0, 1.0)
    }
    /// Uniform samples in `[0, 1)`, given shape.
    fn rand_like<S: Shape, E: Float>(&self, shape: &S) -> Tensor<S, E, Self> {
        self.uniform_like(shape, 0.0, 1.0)
    }
    /// Uniform samples in `[lo, hi)`.
    fn uniform_like<S: Shape, E: Float>(&self, shape: &S, lo: f64, hi: f64) -> Tensor<S, E, Self> {
        Tensor::from_storage(self.clone(), self.sample_uniform(shape.numel(), lo, hi), *shape)
    }
    /// Standard normal samples, static shape.
    fn randn<S: ConstShape, E: Float>(&self) -> Tensor<S, E, Self> {
        self.normal_like(&S::default(), 0.0, 1.0)
    }
    /// Standard normal samples, given shape.
    fn randn_like<S: Shape, E: Float>(&self, shape: &S) -> Tensor<S, E, Self> {
        self.normal_like(shape, 0.0, 1.0)
    }
    /// Normal samples with the given mean and standard deviation.
    fn normal_like<S: Shape, E: Float>(&self, shape: &S, mean: f64, std: f64) -> Tensor<S, E, Self> {
        Tensor::from_storage(self.clone(), self.sample_normal(shape.numel(), mean, std), *shape)
    }
}

impl<D: Device> TensorFactory for D {}

/// Reading a statically shaped tensor back as nested arrays.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let t = dev.tensor([[1, 2], [3, 4]]);
/// assert_eq!(t.to_array(), [[1, 2], [3, 4]]);
/// ```
pub trait ToArray {
    /// The nested array type.
    type Array;
    /// The elements as nested arrays.
    fn to_array(&self) -> Self::Array;
}

impl<E: Dtype, D: Device, T> ToArray for Tensor<Rank0, E, D, T> {
    type Array = E;
    fn to_array(&self) -> E {
        self.to_vec()[0]
    }
}
impl<E: Dtype, D: Device, T, const A: usize> ToArray for Tensor<Rank1<A>, E, D, T> {
    type Array = [E; A];
    fn to_array(&self) -> [E; A] {
        let v = self.to_vec();
        core::array::from_fn(|i| v[i])
    }
}
impl<E: Dtype, D: Device, T, const A: usize, const B: usize> ToArray for Tensor<Rank2<A, B>, E, D, T> {
    type Array = [[E; B]; A];
    fn to_array(&self) -> Self::Array {
        let v = self.to_vec();
        core::array::from_fn(|i| core::array::from_fn(|j| v[i * B + j]))
    }
}
impl<E: Dtype, D: Device, T, const A: usize, const B: usize, const C: usize> ToArray
    for Tensor<Rank3<A, B, C>, E, D, T>
{
    type Array = [[[E; C]; B]; A];
    fn to_array(&self) -> Self::Array {
        let v = self.to_vec();
        core::array::from_fn(|i| core::array::from_fn(|j| core::array::from_fn(|k| v[(i * B + j) * C + k])))
    }
}
