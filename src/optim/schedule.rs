//! Learning-rate schedules, as `torch.optim.lr_scheduler`'s: each is a closed form of the
//! epoch (the number of [`Scheduler::step`] calls so far) and the base rate, so a schedule
//! resumes at any epoch; [`SequentialLr`] chains them (warm-up, then cosine). [`ReduceLrOnPlateau`]
//! follows a metric instead.

use super::{Algorithm, Optimizer};
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::Device;
use core::f64::consts::PI;

/// A learning rate as a function of the epoch and the base rate.
pub trait Schedule: Send + Sync {
    /// The rate at `epoch` (0 is the rate set when the scheduler is made).
    fn lr_at(&self, epoch: usize, base_lr: f64) -> f64;
    /// The momentum at `epoch`, for schedules that cycle it (one-cycle); `None` leaves it.
    fn momentum_at(&self, epoch: usize) -> Option<f64> {
        let _ = epoch;
        None
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn lr_at(&self, epoch: usize, base_lr: f64) -> f64 {
        (**self).lr_at(epoch, base_lr)
    }
    fn momentum_at(&self, epoch: usize) -> Option<f64> {
        (**self).momentum_at(epoch)
    }
}

/// The base rate throughout.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConstantLr;

impl Schedule for ConstantLr {
    fn lr_at(&self, _: usize, base: f64) -> f64 {
        base
    }
}

/// `base * gamma^(epoch / step_size)` (`StepLR`).
#[derive(Clone, Copy, Debug)]
pub struct StepLr {
    /// Epochs between decays.
    pub step_size: usize,
    /// The decay factor.
    pub gamma: f64,
}

impl Schedule for StepLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        base * math::powi(self.gamma, (epoch / self.step_size.max(1)) as i32)
    }
}

/// `base * gamma^(milestones passed)` (`MultiStepLR`).
#[derive(Clone, Debug)]
pub struct MultiStepLr {
    /// The epochs at which the rate decays, ascending.
    pub milestones: Vec<usize>,
    /// The decay factor.
    pub gamma: f64,
}

impl Schedule for MultiStepLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        base * math::powi(self.gamma, self.milestones.iter().filter(|&&m| m <= epoch).count() as i32)
    }
}

/// `base * gamma^epoch` (`ExponentialLR`).
#[derive(Clone, Copy, Debug)]
pub struct ExponentialLr {
    /// The decay factor per epoch.
    pub gamma: f64,
}

impl Schedule for ExponentialLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        base * math::powi(self.gamma, epoch as i32)
    }
}

/// Half a cosine from the base rate down to `eta_min` over `t_max` epochs, then back up
/// (`CosineAnnealingLR`).
#[derive(Clone, Copy, Debug)]
pub struct CosineAnnealingLr {
    /// Epochs from the base rate to `eta_min`.
    pub t_max: usize,
    /// The lowest rate.
    pub eta_min: f64,
}

fn cosine(eta_min: f64, base: f64, t: f64, period: f64) -> f64 {
    eta_min + (base - eta_min) * (1.0 + math::cos(PI * t / period)) / 2.0
}

impl Schedule for CosineAnnealingLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        cosine(self.eta_min, base, epoch as f64, self.t_max.max(1) as f64)
    }
}

/// Cosine annealing restarted every period, the period growing by `t_mult` each time
/// (`CosineAnnealingWarmRestarts`, SGDR).
#[derive(Clone, Copy, Debug)]
pub struct CosineAnnealingWarmRestarts {
    /// The first period.
    pub t_0: usize,
    /// The growth of the period at each restart (1: constant).
    pub t_mult: usize,
    /// The lowest rate.
    pub eta_min: f64,
}

impl Schedule for CosineAnnealingWarmRestarts {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        let (mut t_cur, mut t_i) = (epoch, self.t_0.max(1));
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i *= self.t_mult.max(1);
        }
        cosine(self.eta_min, base, t_cur as f64, t_i as f64)
    }
}

/// A factor going linearly from `start_factor` to `end_factor` over `total_iters` epochs, then
/// staying (`LinearLR`; linear warm-up from a small start factor).
#[derive(Clone, Copy, Debug)]
pub struct LinearLr {
    /// The factor at epoch 0.
    pub start_factor: f64,
    /// The factor from `total_iters` on.
    pub end_factor: f64,
    /// Epochs of the ramp.
    pub total_iters: usize,
}

impl LinearLr {
    /// A linear warm-up from `start_factor` of the base rate to all of it in `epochs`.
    pub fn warmup(start_factor: f64, epochs: usize) -> Self {
        Self { start_factor, end_factor: 1.0, total_iters: epochs }
    }
}

impl Schedule for LinearLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        let done = epoch.min(self.total_iters) as f64 / self.total_iters.max(1) as f64;
        base * (self.start_factor + (self.end_factor - self.start_factor) * done)
    }
}

/// The one-cycle policy (`OneCycleLR`): from `max_lr / div_factor` up to `max_lr` over the
/// first `pct_start` of `total_steps`, then down to `max_lr / div_factor / final_div_factor`;
/// cosine or linear annealing, in two phases or three. With `cycle_momentum` (the default) the
/// momentum (SGD's, RMSprop's, or Adam's first beta) moves the other way, between
/// `max_momentum` and `base_momentum`. The base rate is not used.
#[derive(Clone, Copy, Debug)]
pub struct OneCycleLr {
    /// The peak rate.
    pub max_lr: f64,
    /// The number of steps in the cycle.
    pub total_steps: usize,
    /// The fraction of the cycle spent rising (0.3).
    pub pct_start: f64,
    /// `max_lr / initial rate` (25).
    pub div_factor: f64,
    /// `initial rate / final rate` (1e4).
    pub final_div_factor: f64,
    /// Cosine annealing (true, the default) or linear.
    pub cosine: bool,
    /// Rise, fall back to the initial rate, then anneal to the final rate.
    pub three_phase: bool,
    /// Cycle the momentum inversely to the rate (true).
    pub cycle_momentum: bool,
    /// The momentum at the peak rate (0.85).
    pub base_momentum: f64,
    /// The momentum at the lowest rates (0.95).
    pub max_momentum: f64,
}

impl OneCycleLr {
    /// One cycle of `total_steps` peaking at `max_lr`, with PyTorch's other defaults.
    pub fn new(max_lr: f64, total_steps: usize) -> Self {
        Self {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            cosine: true,
            three_phase: false,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }

    /// The phases: (last step, (rate, momentum) at the start, at the end).
    fn phases(&self) -> Vec<(f64, (f64, f64), (f64, f64))> {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let (lo, hi) = (self.base_momentum, self.max_momentum);
        let rise_end = self.pct_start * self.total_steps as f64 - 1.0;
        let last = self.total_steps as f64 - 1.0;
        if self.three_phase {
            vec![
                (rise_end, (initial, hi), (self.max_lr, lo)),
                (2.0 * rise_end, (self.max_lr, lo), (initial, hi)),
                (last, (initial, hi), (min, hi)),
            ]
        } else {
            vec![(rise_end, (initial, hi), (self.max_lr, lo)), (last, (self.max_lr, lo), (min, hi))]
        }
    }

    /// (rate, momentum) at `epoch`.
    fn at(&self, epoch: usize) -> (f64, f64) {
        let anneal = |from: f64, to: f64, pct: f64| {
            if self.cosine { to + (from - to) / 2.0 * (math::cos(PI * pct) + 1.0) } else { (to - from) * pct + from }
        };
        let phases = self.phases();
        let step = epoch as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, from, to)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let pct = (step - start_step) / (end_step - start_step);
                return (anneal(from.0, to.0, pct), anneal(from.1, to.1, pct));
            }
            start_step = end_step;
        }
        unreachable!("the last phase always answers")
    }
}

impl Schedule for OneCycleLr {
    fn lr_at(&self, epoch: usize, _: f64) -> f64 {
        self.at(epoch).0
    }
    fn momentum_at(&self, epoch: usize) -> Option<f64> {
        self.cycle_momentum.then(|| self.at(epoch).1)
    }
}

/// Schedules one after another (`SequentialLR`): `schedules[i]` runs from `milestones[i - 1]`,
/// counting its epochs from there. Linear warm-up then cosine:
///
/// ```
/// use tensile::optim::{CosineAnnealingLr, LinearLr, Schedule, SequentialLr};
/// let s = SequentialLr::new(vec![Box::new(LinearLr::warmup(0.1, 5)), Box::new(CosineAnnealingLr { t_max: 20, eta_min: 0.0 })], vec![5]);
/// assert!((s.lr_at(0, 1.0) - 0.1).abs() < 1e-12);
/// assert!((s.lr_at(5, 1.0) - 1.0).abs() < 1e-12);
/// assert!(s.lr_at(25, 1.0).abs() < 1e-12);
/// ```
pub struct SequentialLr {
    schedules: Vec<Box<dyn Schedule>>,
    milestones: Vec<usize>,
}

impl SequentialLr {
    /// `schedules.len() - 1` ascending milestones; panics otherwise.
    pub fn new(schedules: Vec<Box<dyn Schedule>>, milestones: Vec<usize>) -> Self {
        assert_eq!(milestones.len() + 1, schedules.len(), "SequentialLr: one milestone between each two schedules");
        assert!(milestones.windows(2).all(|w| w[0] <= w[1]), "SequentialLr: milestones must ascend");
        Self { schedules, milestones }
    }

    /// The schedule running at `epoch`, and the epoch counted from its start.
    fn locate(&self, epoch: usize) -> (usize, usize) {
        let i = self.milestones.iter().filter(|&&m| m <= epoch).count();
        (i, epoch - if i == 0 { 0 } else { self.milestones[i - 1] })
    }
}

impl Schedule for SequentialLr {
    fn lr_at(&self, epoch: usize, base: f64) -> f64 {
        let (i, local) = self.locate(epoch);
        self.schedules[i].lr_at(local, base)
    }
    fn momentum_at(&self, epoch: usize) -> Option<f64> {
        let (i, local) = self.locate(epoch);
        self.schedules[i].momentum_at(local)
    }
}

/// Drives an optimiser's learning rate by a [`Schedule`]: made with the optimiser's current
/// rate as the base (and setting the epoch-0 rate, as PyTorch's schedulers do), then one
/// [`Scheduler::step`] per epoch (or per batch, for per-step schedules such as one-cycle).
///
/// ```
/// use tensile::optim::{Optimizer, Scheduler, Sgd, StepLr};
/// let mut opt: Optimizer<Sgd> = Optimizer::new(Sgd::new(0.1));
/// let mut sched = Scheduler::new(StepLr { step_size: 2, gamma: 0.5 }, &mut opt);
/// let mut rates = vec![opt.lr()];
/// for _ in 0..4 {
///     sched.step(&mut opt);
///     rates.push(opt.lr());
/// }
/// assert_eq!(rates, [0.1, 0.1, 0.05, 0.05, 0.025]);
/// ```
pub struct Scheduler<S: Schedule> {
    /// The schedule.
    pub schedule: S,
    base_lr: f64,
    epoch: usize,
}

impl<S: Schedule> Scheduler<S> {
    /// Starts `schedule` from the optimiser's current rate.
    pub fn new<A: Algorithm, D: Device>(schedule: S, opt: &mut Optimizer<A, D>) -> Self {
        Self::resume(schedule, opt.lr(), 0, opt)
    }

    /// Continues `schedule` at `epoch` with the base rate it started from (after loading a
    /// checkpoint), setting the optimiser's rate for that epoch.
    pub fn resume<A: Algorithm, D: Device>(schedule: S, base_lr: f64, epoch: usize, opt: &mut Optimizer<A, D>) -> Self {
        let s = Self { schedule, base_lr, epoch };
        s.apply(opt);
        s
    }

    /// The next epoch: sets the optimiser's rate (and momentum, for schedules that cycle it).
    pub fn step<A: Algorithm, D: Device>(&mut self, opt: &mut Optimizer<A, D>) {
        self.epoch += 1;
        self.apply(opt);
    }

    fn apply<A: Algorithm, D: Device>(&self, opt: &mut Optimizer<A, D>) {
        opt.set_lr(self.schedule.lr_at(self.epoch, self.base_lr));
        if let Some(m) = self.schedule.momentum_at(self.epoch) {
            opt.algorithm.set_momentum(m);
        }
    }

    /// Epochs stepped so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The rate the schedule started from.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }
}

/// Divides the rate by `1 / factor` when a metric (to minimise) has not improved by a relative
/// `threshold` for more than `patience` epochs (`ReduceLROnPlateau`, mode `min`).
///
/// ```
/// use tensile::optim::{Optimizer, ReduceLrOnPlateau, Sgd};
/// let mut opt: Optimizer<Sgd> = Optimizer::new(Sgd::new(1.0));
/// let mut plateau = ReduceLrOnPlateau::default();
/// plateau.patience = 1;
/// for loss in [3.0, 2.0, 2.0, 2.0] {
///     plateau.step(loss, &mut opt);
/// }
/// assert!((opt.lr() - 0.1).abs() < 1e-12); // two epochs without improvement > patience 1
/// ```
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    /// The factor applied to the rate (0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated (10).
    pub patience: usize,
    /// Relative improvement that counts (1e-4).
    pub threshold: f64,
    /// Epochs to wait after a reduction (0).
    pub cooldown: usize,
    /// The lowest rate (0).
    pub min_lr: f64,
    /// Reductions smaller than this are skipped (1e-8).
    pub eps: f64,
    best: f64,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        Self {
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            best: f64::INFINITY,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }
}

impl ReduceLrOnPlateau {
    /// One epoch's metric.
    pub fn step<A: Algorithm, D: Device>(&mut self, metric: f64, opt: &mut Optimizer<A, D>) {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.patience {
            let old = opt.lr();
            let new = (old * self.factor).max(self.min_lr);
            if old - new > self.eps {
                opt.set_lr(new);
            }
            self.cooldown_left = self.cooldown;
            self.bad_epochs = 0;
        }
    }
}
