//! Gradient checking and property-test strategies, for tensile's own tests and for users who
//! check their ops and modules (enable the `testing` feature).
//!
//! [`gradcheck`] compares the gradients autograd computes against central finite differences in
//! f64, element by element.
//!
//! ```
//! use tensile::prelude::*;
//! use tensile::testing::{gradcheck, GradcheckConfig};
//!
//! let dev = Cpu::seeded(0);
//! let x: Tensor<Rank1<4>, f64, Cpu> = dev.randn();
//! // the function checked: a scalar of a taped input
//! gradcheck(|x| (x.clone() * x.sin()).sum::<Rank0, _>(), &x, GradcheckConfig::default()).unwrap();
//! ```
//!
//! With proptest, over random values and sizes:
//!
//! ```
//! use proptest::prelude::*;
//! use tensile::prelude::*;
//! use tensile::testing::{gradcheck, tensor_of, GradcheckConfig};
//!
//! proptest!(ProptestConfig::with_cases(8), |(x in (1usize..5).prop_flat_map(|n| tensor_of((n,), -2.0..2.0)))| {
//!     gradcheck(|x| x.tanh().sum::<Rank0, _>(), &x, GradcheckConfig::default()).unwrap();
//! });
//! ```

use crate::autograd::OwnedTape;
use crate::device::Cpu;
use crate::shapes::{Rank0, Shape};
use crate::tensor::{Tensor, TensorFactory};
use proptest::strategy::{Strategy, ValueTree};
use std::fmt;

/// Step and tolerances of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckConfig {
    /// The finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradcheckConfig {
    /// `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`, as `torch.autograd.gradcheck`.
    fn default() -> Self {
        Self { eps: 1e-6, atol: 1e-5, rtol: 1e-3 }
    }
}

/// Where the analytic and the numeric gradient disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckError {
    /// Which input (0 for the first).
    pub input: usize,
    /// The element, in row-major order.
    pub index: usize,
    /// What autograd computed.
    pub analytic: f64,
    /// What the finite differences give.
    pub numeric: f64,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: input {} element {}: autograd gives {}, finite differences give {}",
            self.input, self.index, self.analytic, self.numeric
        )
    }
}

impl std::error::Error for GradcheckError {}

type Taped<S> = Tensor<S, f64, Cpu, OwnedTape<Cpu>>;

fn value<S: Shape>(t: &Tensor<S, f64, Cpu, OwnedTape<Cpu>>) -> f64 {
    t.to_vec()[0]
}

fn compare(input: usize, analytic: &[f64], numeric: &[f64], cfg: GradcheckConfig) -> Result<(), GradcheckError> {
    for (index, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        if (a - n).abs() > cfg.atol + cfg.rtol * n.abs() || a.is_nan() != n.is_nan() {
            return Err(GradcheckError { input, index, analytic: a, numeric: n });
        }
    }
    Ok(())
}

fn numeric_grad(x: &[f64], eps: f64, mut eval: impl FnMut(Vec<f64>) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut plus = x.to_vec();
            plus[i] += eps;
            let mut minus = x.to_vec();
            minus[i] -= eps;
            (eval(plus) - eval(minus)) / (2.0 * eps)
        })
        .collect()
}

/// Checks the gradient of a scalar function of one tensor against central finite differences.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::testing::{gradcheck, GradcheckConfig};
/// let x = Cpu::seeded(0).tensor([0.5f64, -1.0]);
/// gradcheck(|x| x.exp().sum::<Rank0, _>(), &x, GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck<S: Shape>(
    f: impl Fn(Taped<S>) -> Taped<Rank0>,
    x: &Tensor<S, f64, Cpu>,
    cfg: GradcheckConfig,
) -> Result<(), GradcheckError> {
    let dev = x.device().clone();
    let g = f(x.leaky_trace()).backward();
    let analytic = g.try_get(x).map(|t| t.to_vec()).unwrap_or_else(|_| vec![0.0; x.numel()]);
    let numeric = numeric_grad(&x.to_vec(), cfg.eps, |v| value(&f(dev.from_vec(v, *x.shape()).leaky_trace())));
    compare(0, &analytic, &numeric, cfg)
}

/// Checks the gradients of a scalar function of two tensors (both recorded on one tape).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::testing::{gradcheck2, GradcheckConfig};
/// let dev = Cpu::seeded(0);
/// let (a, b) = (dev.tensor([[1.0f64, 2.0]]), dev.tensor([[0.5f64], [-1.0]]));
/// gradcheck2(|a, b| a.matmul(b).sum::<Rank0, _>(), &a, &b, GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck2<S1: Shape, S2: Shape>(
    f: impl Fn(Taped<S1>, Taped<S2>) -> Taped<Rank0>,
    a: &Tensor<S1, f64, Cpu>,
    b: &Tensor<S2, f64, Cpu>,
    cfg: GradcheckConfig,
) -> Result<(), GradcheckError> {
    let dev = a.device().clone();
    let run = |a: &Tensor<S1, f64, Cpu>, b: &Tensor<S2, f64, Cpu>| {
        let ta = a.leaky_trace();
        let tb = b.clone().put_tape(ta.tape().clone());
        f(ta, tb)
    };
    let g = run(a, b).backward();
    let ga = g.try_get(a).map(|t| t.to_vec()).unwrap_or_else(|_| vec![0.0; a.numel()]);
    let gb = g.try_get(b).map(|t| t.to_vec()).unwrap_or_else(|_| vec![0.0; b.numel()]);
    let na = numeric_grad(&a.to_vec(), cfg.eps, |v| value(&run(&dev.from_vec(v, *a.shape()), b)));
    let nb = numeric_grad(&b.to_vec(), cfg.eps, |v| value(&run(a, &dev.from_vec(v, *b.shape()))));
    compare(0, &ga, &na, cfg)?;
    compare(1, &gb, &nb, cfg)
}

/// A proptest strategy for f64 tensors of `shape` with elements drawn from `range`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::testing::{sample, tensor_of};
/// let t = sample(tensor_of((2usize, 3usize), -1.0..1.0), 7);
/// assert!(t.to_vec().iter().all(|v| (-1.0..1.0).contains(v)));
/// ```
pub fn tensor_of<S: Shape>(shape: S, range: core::ops::Range<f64>) -> impl Strategy<Value = Tensor<S, f64, Cpu>> {
    proptest::collection::vec(range, shape.numel()).prop_map(move |v| Cpu::seeded(0).from_vec(v, shape))
}

/// Draws one value from a strategy with a fixed seed (handy outside `proptest!`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::testing::{sample, tensor_of};
/// let a = sample(tensor_of((4usize,), 0.0..1.0), 1);
/// let b = sample(tensor_of((4usize,), 0.0..1.0), 1);
/// assert_eq!(a.to_vec(), b.to_vec());
/// ```
pub fn sample<T: Strategy>(strategy: T, seed: u64) -> T::Value {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &bytes),
    );
    strategy.new_tree(&mut runner).expect("strategy").current()
}
