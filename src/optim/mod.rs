//! Optimisers, as PyTorch's `torch.optim`: the same algorithms with the same hyper-parameters
//! give the same parameter trajectories.
//!
//! An [`Optimizer`] holds an [`Algorithm`] (its hyper-parameters: [`Sgd`], [`Adam`], [`AdamW`],
//! [`Rmsprop`], [`Adagrad`], [`Adadelta`], [`Lion`]) and each parameter's state, keyed by the
//! parameter's `state_dict` name. [`Optimizer::step`] updates every parameter of a model that
//! has a gradient, skipping frozen ones, with one fused pass per parameter (the per-element
//! maths is in [`rules`], written once). State is kept in the accumulation type, so f16/bf16
//! parameters have f32 moments; [`Optimizer::with_master_weights`] also keeps an f32 copy of
//! each such parameter.
//!
//! ```
//! use tensile::prelude::*;
//! use tensile::nn::{self, Linear, ReLU};
//! use tensile::optim::{Adam, Optimizer};
//!
//! let dev = Cpu::seeded(0);
//! let mut model = <(Linear<2, 8>, ReLU, Linear<8, 1>)>::build(&dev);
//! let mut opt = Optimizer::new(Adam::new(0.01));
//! let x: Tensor<(usize, Const<2>), f32, Cpu> = dev.randn_like(&(16, Const));
//! let target = x.clone().sum::<(usize,), Axis<1>>().try_reshape_like(&(16, Const::<1>)).unwrap();
//! let mut losses = Vec::new();
//! for _ in 0..50 {
//!     let y = model.forward(x.trace(nn::alloc_grads(&model)));
//!     let loss = nn::loss::mse_loss(y, target.clone(), nn::loss::Reduction::Mean);
//!     losses.push(loss.to_array());
//!     let grads = loss.backward();
//!     opt.step(&mut model, &grads).unwrap();
//! }
//! assert!(losses[49] < 0.1 * losses[0]);
//! ```

pub mod rules;
mod schedule;
mod state;

use crate::compat::math;
use crate::compat::prelude::*;
pub use rules::UpdateRule;
pub use schedule::{
    ConstantLr, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearLr, MultiStepLr, OneCycleLr,
    ReduceLrOnPlateau, Schedule, Scheduler, SequentialLr, StepLr,
};

use crate::autograd::Gradients;
use crate::compat::HashMap;
use crate::device::{Cpu, Device};
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::nn::{Params, TensorKind, Visitor, VisitorMut};
use crate::shapes::{Rank0, Shape};
use crate::tensor::Tensor;
use core::any::Any;
use core::marker::PhantomData;
use rules::{AdadeltaRule, AdagradRule, AdamRule, LionRule, RmspropRule, SgdRule};

/// An optimisation algorithm: its hyper-parameters, and the per-element rule of one step.
pub trait Algorithm: Clone + Send + Sync + 'static {
    /// The per-element update.
    type Rule: UpdateRule;
    /// PyTorch's class name (`"Adam"`), saved with the state.
    const NAME: &'static str;
    /// The state slots, named as PyTorch names them (`"exp_avg"`); the first
    /// [`Algorithm::slots`] are kept.
    const SLOT_NAMES: &'static [&'static str];
    /// State values per element with these settings (the rule's [`UpdateRule::slots`]).
    fn slots(&self) -> usize {
        Self::SLOT_NAMES.len()
    }
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (schedules do).
    fn set_lr(&mut self, lr: f64);
    /// The weight decay.
    fn weight_decay(&self) -> f64;
    /// The rule for a parameter's step `t` (counted from 1), with this group's rate and decay.
    fn rule(&self, t: u64, lr: f64, weight_decay: f64) -> Self::Rule;
    /// The state's initial value (Adagrad's `initial_accumulator_value`; 0 otherwise).
    fn initial_state(&self) -> f64 {
        0.0
    }
    /// Sets the momentum, for schedules that cycle it (SGD's and RMSprop's momentum, Adam's and
    /// Lion's first beta; nothing for the others).
    fn set_momentum(&mut self, momentum: f64) {
        let _ = momentum;
    }
}

/// Stochastic gradient descent (`torch.optim.SGD`): momentum, dampening, Nesterov, L2 decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Sgd {
    /// SGD with learning rate `lr` and PyTorch's other defaults (no momentum, no decay).
    pub fn new(lr: f64) -> Self {
        Self { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

/// Adam (`torch.optim.Adam`), with AMSGrad and L2 weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate (PyTorch's default 1e-3).
    pub lr: f64,
    /// Decay of the first and second moments (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (0).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment.
    pub amsgrad: bool,
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay (default 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate (1e-3).
    pub lr: f64,
    /// Decay of the moments (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// Decoupled decay: each step multiplies the parameter by `1 - lr * weight_decay` (1e-2).
    pub weight_decay: f64,
    /// Use the running maximum of the second moment.
    pub amsgrad: bool,
}

impl AdamW {
    /// AdamW with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 1e-2, amsgrad: false }
    }
}

/// RMSprop (`torch.optim.RMSprop`), plain or centered, with momentum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rmsprop {
    /// Learning rate (1e-2).
    pub lr: f64,
    /// Smoothing of the square average (0.99).
    pub alpha: f64,
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// L2 penalty (0).
    pub weight_decay: f64,
    /// Momentum (0).
    pub momentum: f64,
    /// Normalise by the variance instead of the raw second moment.
    pub centered: bool,
}

impl Rmsprop {
    /// RMSprop with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0, centered: false }
    }
}

/// Adagrad (`torch.optim.Adagrad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate (1e-2).
    pub lr: f64,
    /// Decay of the learning rate per step (0).
    pub lr_decay: f64,
    /// L2 penalty (0).
    pub weight_decay: f64,
    /// The sum of squares starts here (0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator (1e-10).
    pub eps: f64,
}

impl Adagrad {
    /// Adagrad with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, lr_decay: 0.0, weight_decay: 0.0, initial_accumulator_value: 0.0, eps: 1e-10 }
    }
}

/// Adadelta (`torch.optim.Adadelta`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adadelta {
    /// Scale of the update (PyTorch's default 1.0).
    pub lr: f64,
    /// Smoothing of the averages (0.9).
    pub rho: f64,
    /// Added inside the square roots (1e-6).
    pub eps: f64,
    /// L2 penalty (0).
    pub weight_decay: f64,
}

impl Adadelta {
    /// Adadelta with `lr` and PyTorch's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, rho: 0.9, eps: 1e-6, weight_decay: 0.0 }
    }
}

/// Lion (Chen et al. 2023): the sign of an interpolated momentum, decoupled decay. Not in
/// `torch.optim`; checked against the paper's algorithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lion {
    /// Learning rate (the paper's default 1e-4; about 10x smaller than Adam's).
    pub lr: f64,
    /// Interpolation for the update and decay of the momentum (0.9, 0.99).
    pub betas: (f64, f64),
    /// Decoupled weight decay (0).
    pub weight_decay: f64,
}

impl Lion {
    /// Lion with learning rate `lr` and the paper's other defaults.
    pub fn new(lr: f64) -> Self {
        Self { lr, betas: (0.9, 0.99), weight_decay: 0.0 }
    }
}

macro_rules! lr_access {
    () => {
        fn lr(&self) -> f64 {
            self.lr
        }
        fn set_lr(&mut self, lr: f64) {
            self.lr = lr;
        }
        fn weight_decay(&self) -> f64 {
            self.weight_decay
        }
    };
}

impl Algorithm for Sgd {
    type Rule = SgdRule;
    const NAME: &'static str = "SGD";
    const SLOT_NAMES: &'static [&'static str] = &["momentum_buffer"];
    lr_access!();
    fn slots(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }
    fn set_momentum(&mut self, momentum: f64) {
        self.momentum = momentum;
    }
    fn rule(&self, t: u64, lr: f64, weight_decay: f64) -> SgdRule {
        SgdRule {
            lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay,
            nesterov: self.nesterov,
            first: t == 1,
        }
    }
}

/// Adam and AdamW share everything but the name and where the weight decay goes.
macro_rules! adam_family {
    ($ty:ty, $name:literal, $decoupled:literal) => {
        impl Algorithm for $ty {
            type Rule = AdamRule;
            const NAME: &'static str = $name;
            const SLOT_NAMES: &'static [&'static str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];
            lr_access!();
            fn slots(&self) -> usize {
                2 + usize::from(self.amsgrad)
            }
            fn set_momentum(&mut self, momentum: f64) {
                self.betas.0 = momentum;
            }
            fn rule(&self, t: u64, lr: f64, weight_decay: f64) -> AdamRule {
                AdamRule {
                    lr,
                    beta1: self.betas.0,
                    beta2: self.betas.1,
                    eps: self.eps,
                    weight_decay,
                    decoupled: $decoupled,
                    amsgrad: self.amsgrad,
                    step_size: 0.0,
                    bias_correction2_sqrt: 1.0,
                }
                .at_step(t)
            }
        }
    };
}
adam_family!(Adam, "Adam", false);
adam_family!(AdamW, "AdamW", true);

impl Algorithm for Rmsprop {
    type Rule = RmspropRule;
    const NAME: &'static str = "RMSprop";
    const SLOT_NAMES: &'static [&'static str] = &["square_avg", "grad_avg", "momentum_buffer"];
    lr_access!();
    fn set_momentum(&mut self, momentum: f64) {
        self.momentum = momentum;
    }
    fn rule(&self, _: u64, lr: f64, weight_decay: f64) -> RmspropRule {
        RmspropRule {
            lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay,
            momentum: self.momentum,
            centered: self.centered,
        }
    }
}

impl Algorithm for Adagrad {
    type Rule = AdagradRule;
    const NAME: &'static str = "Adagrad";
    const SLOT_NAMES: &'static [&'static str] = &["sum"];
    lr_access!();
    fn rule(&self, t: u64, lr: f64, weight_decay: f64) -> AdagradRule {
        AdagradRule { clr: lr / (1.0 + (t as f64 - 1.0) * self.lr_decay), eps: self.eps, weight_decay }
    }
    fn initial_state(&self) -> f64 {
        self.initial_accumulator_value
    }
}

impl Algorithm for Adadelta {
    type Rule = AdadeltaRule;
    const NAME: &'static str = "Adadelta";
    const SLOT_NAMES: &'static [&'static str] = &["square_avg", "acc_delta"];
    lr_access!();
    fn rule(&self, _: u64, lr: f64, weight_decay: f64) -> AdadeltaRule {
        AdadeltaRule { lr, rho: self.rho, eps: self.eps, weight_decay }
    }
}

impl Algorithm for Lion {
    type Rule = LionRule;
    const NAME: &'static str = "Lion";
    const SLOT_NAMES: &'static [&'static str] = &["exp_avg"];
    lr_access!();
    fn set_momentum(&mut self, momentum: f64) {
        self.betas.0 = momentum;
    }
    fn rule(&self, _: u64, lr: f64, weight_decay: f64) -> LionRule {
        LionRule { lr, beta1: self.betas.0, beta2: self.betas.1, weight_decay }
    }
}

/// Which parameters a group holds: a test on the `state_dict` name and the dims.
pub type GroupFilter = Box<dyn Fn(&str, &[usize]) -> bool + Send + Sync>;

/// A parameter group (PyTorch's `param_groups` entry): the parameters its filter accepts get
/// their own learning-rate scale and weight decay.
pub struct ParamGroup {
    filter: GroupFilter,
    /// This group's learning rate, as a multiple of the optimiser's (schedules scale both).
    pub lr_scale: f64,
    /// This group's weight decay; `None` keeps the algorithm's.
    pub weight_decay: Option<f64>,
}

impl core::fmt::Debug for ParamGroup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ParamGroup")
            .field("lr_scale", &self.lr_scale)
            .field("weight_decay", &self.weight_decay)
            .finish()
    }
}

/// One parameter's state: its step count and `SLOTS` buffers in the accumulation type, plus an
/// optional master copy of the parameter.
struct ParamState {
    step: u64,
    dims: Vec<usize>,
    /// `Slots<D, E::Acc>`, typed by the parameter's dtype.
    slots: Box<dyn Any + Send + Sync>,
}

struct Slots<D: Device, A: Float> {
    values: Vec<D::Storage<A>>,
    master: Option<D::Storage<A>>,
}

/// An optimiser: an [`Algorithm`], parameter groups, and each parameter's state by name.
pub struct Optimizer<A: Algorithm, D: Device = Cpu> {
    /// The algorithm and its hyper-parameters (the learning rate among them).
    pub algorithm: A,
    groups: Vec<ParamGroup>,
    master_weights: bool,
    state: HashMap<String, ParamState>,
    _device: PhantomData<fn() -> D>,
}

impl<A: Algorithm, D: Device> Optimizer<A, D> {
    /// An optimiser with no state yet; every parameter in one group.
    pub fn new(algorithm: A) -> Self {
        Self { algorithm, groups: Vec::new(), master_weights: false, state: HashMap::new(), _device: PhantomData }
    }

    /// Adds a parameter group: parameters whose name and dims pass `filter` (the first group
    /// that matches wins) get `lr_scale` times the learning rate and `weight_decay` (or the
    /// algorithm's when `None`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::optim::{AdamW, Optimizer};
    /// // no weight decay on biases and norm weights (every 1-D parameter), as is usual
    /// let opt: Optimizer<AdamW> = Optimizer::new(AdamW::new(1e-3)).with_group(|_, dims| dims.len() < 2, 1.0, Some(0.0));
    /// ```
    pub fn with_group(
        mut self,
        filter: impl Fn(&str, &[usize]) -> bool + Send + Sync + 'static,
        lr_scale: f64,
        weight_decay: Option<f64>,
    ) -> Self {
        self.groups.push(ParamGroup { filter: Box::new(filter), lr_scale, weight_decay });
        self
    }

    /// Keeps an f32 master copy of every f16/bf16 parameter: updates accumulate there and are
    /// rounded into the parameter, so small steps are not lost to half precision.
    pub fn with_master_weights(mut self, on: bool) -> Self {
        self.master_weights = on;
        self
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.algorithm.lr()
    }

    /// Sets the learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        self.algorithm.set_lr(lr);
    }

    /// The step count of the parameter named `name` (0 before its first update).
    pub fn steps_of(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.step)
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn group_of(&self, name: &str, dims: &[usize]) -> (f64, f64) {
        let lr = self.algorithm.lr();
        let wd = self.algorithm.weight_decay();
        match self.groups.iter().find(|g| (g.filter)(name, dims)) {
            Some(g) => (lr * g.lr_scale, g.weight_decay.unwrap_or(wd)),
            None => (lr, wd),
        }
    }

    /// One step: every parameter of `model` that has a gradient in `grads` is updated in place
    /// (same tensor id); frozen parameters and parameters without a gradient are left as they
    /// are. `Err` when a gradient's size differs from its parameter's or a parameter's dims
    /// changed since its state was made.
    pub fn step<M: Params<D>>(&mut self, model: &mut M, grads: &Gradients<D>) -> Result<()> {
        let mut visit = StepVisitor { opt: self, grads, error: None };
        model.visit_params_mut("", &mut visit);
        visit.error.map_or(Ok(()), Err)
    }
}

struct StepVisitor<'a, A: Algorithm, D: Device> {
    opt: &'a mut Optimizer<A, D>,
    grads: &'a Gradients<D>,
    error: Option<Error>,
}

impl<A: Algorithm, D: Device> VisitorMut<D> for StepVisitor<'_, A, D> {
    fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &mut Tensor<S, E, D>) {
        if kind != TensorKind::Parameter || self.error.is_some() {
            return;
        }
        let Some(grad) = self.grads.storage::<E>(t.id()) else { return };
        if D::storage_len(grad) != t.numel() {
            self.error = Some(Error::ShapeMismatch {
                op: "optimizer step",
                lhs: t.dims().to_vec(),
                rhs: vec![D::storage_len(grad)],
            });
            return;
        }
        let dims = t.dims().to_vec();
        let (lr, wd) = self.opt.group_of(name, &dims);
        let dev = t.device().clone();
        let slots = self.opt.algorithm.slots();
        let init = E::Acc::cast_f64(self.opt.algorithm.initial_state());
        let master = self.opt.master_weights && E::BYTES < 4;
        let entry = self.opt.state.entry(name.to_string()).or_insert_with(|| {
            let n = t.numel();
            let values = (0..slots).map(|_| dev.upload(vec![init; n])).collect();
            let master = master.then(|| dev.upload(t.to_vec().into_iter().map(Float::to_acc).collect()));
            ParamState { step: 0, dims: dims.clone(), slots: Box::new(Slots::<D, E::Acc> { values, master }) }
        });
        if entry.dims != dims {
            self.error = Some(Error::ShapeMismatch { op: "optimizer state", lhs: entry.dims.clone(), rhs: dims });
            return;
        }
        let Some(state) = entry.slots.downcast_mut::<Slots<D, E::Acc>>() else {
            self.error = Some(Error::InvalidSize { op: "optimizer state", reason: format!("`{name}` changed dtype") });
            return;
        };
        if state.values.len() != slots {
            let reason = format!("`{name}` has {} state slots, these settings need {slots}", state.values.len());
            self.error = Some(Error::InvalidSize { op: "optimizer state", reason });
            return;
        }
        entry.step += 1;
        let rule = self.opt.algorithm.rule(entry.step, lr, wd);
        let param = t.storage_mut();
        dev.fused_update(&rule, param, grad, &mut state.values, state.master.as_mut());
    }
}

/// The L2 norm of every parameter gradient of `model` together; when it exceeds `max_norm`,
/// every gradient is scaled by `max_norm / (norm + 1e-6)` (PyTorch's `clip_grad_norm_`).
/// Returns the norm before clipping.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear};
/// let dev = Cpu::seeded(0);
/// let model = Linear::<3, 2>::build(&dev);
/// let x: Tensor<(usize, Const<3>), f32, Cpu> = dev.ones_like(&(4, Const));
/// let mut grads = model.forward(x.trace(nn::alloc_grads(&model))).sum::<Rank0, _>().mul_scalar(100.0).backward();
/// let before = tensile::optim::clip_grad_norm(&model, &mut grads, 1.0);
/// assert!(before > 1.0);
/// assert!((tensile::optim::clip_grad_norm(&model, &mut grads, 1.0) - 1.0).abs() < 1e-4);
/// ```
pub fn clip_grad_norm<D: Device, M: Params<D>>(model: &M, grads: &mut Gradients<D>, max_norm: f64) -> f64 {
    struct SumSquares<'a, D: Device>(&'a Gradients<D>, f64);
    impl<D: Device> Visitor<D> for SumSquares<'_, D> {
        fn visit<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
            if let (TensorKind::Parameter, Ok(g)) = (kind, self.0.try_get(t)) {
                let n = g.numel();
                let flat = g.square().try_reshape_like(&(n,)).unwrap_or_else(|e| unreachable!("{e}"));
                self.1 += flat.sum::<Rank0, _>().to_vec()[0].as_f64();
            }
        }
    }
    let mut total = SumSquares(grads, 0.0);
    model.visit_params("", &mut total);
    let norm = math::sqrt(total.1);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        model.visit_params("", &mut MapGrads(grads, Map::Scale(coef)));
    }
    norm
}

/// Clamps every parameter gradient of `model` to `[-clip, clip]` (PyTorch's `clip_grad_value_`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear};
/// let dev = Cpu::seeded(0);
/// let model = Linear::<3, 2>::build(&dev);
/// let x: Tensor<(usize, Const<3>), f32, Cpu> = dev.ones_like(&(4, Const));
/// let mut grads = model.forward(x.trace(nn::alloc_grads(&model))).sum::<Rank0, _>().backward();
/// tensile::optim::clip_grad_value(&model, &mut grads, 0.5);
/// assert!(grads.get(&model.weight).to_vec().iter().all(|g| g.abs() <= 0.5));
/// ```
pub fn clip_grad_value<D: Device, M: Params<D>>(model: &M, grads: &mut Gradients<D>, clip: f64) {
    model.visit_params("", &mut MapGrads(grads, Map::Clamp(clip)));
}

#[derive(Clone, Copy)]
enum Map {
    Scale(f64),
    Clamp(f64),
}

/// Replaces every parameter gradient by its scaled or clamped value, on the device.
struct MapGrads<'a, D: Device>(&'a mut Gradients<D>, Map);

impl<D: Device> Visitor<D> for MapGrads<'_, D> {
    fn visit<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
        if kind != TensorKind::Parameter {
            return;
        }
        if let Ok(g) = self.0.try_get(t) {
            let mapped = match self.1 {
                Map::Scale(c) => g.mul_scalar(c),
                Map::Clamp(c) => g.clamp(-c, c),
            };
            self.0.replace::<E>(t.id(), mapped.into_storage());
        }
    }
}
