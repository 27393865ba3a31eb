//! One property test per differentiable op (one module per op family): autograd's gradient
//! against central finite differences in f64, over random values and (for run-time dims) random sizes.
//!
//! Each op's output is reduced with random weights (`Σ w·y`) so that every output element's
//! gradient is checked, not only their sum.

mod conv_pool;
mod elementwise_reduce_movement;
mod index_sort_scan;
mod norm_loss_attention;

use proptest::prelude::*;
use tensile::prelude::*;
use tensile::testing::{GradcheckConfig, tensor_of};

pub type Taped<S> = Tensor<S, f64, Cpu, OwnedTape<Cpu>>;
pub type M = (usize, usize);

pub fn cfg() -> GradcheckConfig {
    GradcheckConfig::default()
}

/// `Σ w·y` for fixed weights `w`.
pub fn weighted<S: Shape>(y: Taped<S>, w: &Tensor<S, f64, Cpu>) -> Taped<Rank0>
where
    Taped<S>: SumAll<S>,
{
    (y * w.clone()).sum_all()
}

pub trait SumAll<S: Shape> {
    fn sum_all(self) -> Taped<Rank0>;
}
macro_rules! sum_all {
    ($($s:ty),*) => {$(
        impl SumAll<$s> for Taped<$s> {
            fn sum_all(self) -> Taped<Rank0> {
                self.sum::<Rank0, _>()
            }
        }
    )*};
}
sum_all!((usize,), (usize, usize), (usize, usize, usize), (usize, usize, usize, usize));

/// A random matrix shape and, for it, an input in `range` and output weights.
pub fn matrix(range: core::ops::Range<f64>) -> impl Strategy<Value = (Tensor<M, f64, Cpu>, Tensor<M, f64, Cpu>)> {
    (1usize..5, 1usize..5).prop_flat_map(move |s| (tensor_of(s, range.clone()), tensor_of(s, -1.0..1.0)))
}

pub fn sized<S: Shape>(shape: S) -> impl Strategy<Value = Tensor<S, f64, Cpu>> {
    tensor_of(shape, -2.0..2.0)
}
