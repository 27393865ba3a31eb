//! The update rules: each algorithm's per-element maths, written once. A device's fused kernel
//! applies a rule to every element of a parameter in one pass (`Device::fused_update`), with the
//! state in the accumulation type (f32 for f16/bf16 parameters).
//!
//! Every formula follows `torch.optim`'s single-tensor implementation, operation for operation,
//! so that trajectories match PyTorch's.

use crate::compat::math;
use crate::dtypes::Float;

/// An update of one element from its gradient and its state values.
pub trait UpdateRule: Send + Sync {
    /// State values per element (at most 4): Adam keeps 2, or 3 with AMSGrad; plain SGD none.
    fn slots(&self) -> usize;
    /// The new value of `p`, given its gradient `g`; `state` (length `slots()`) is updated in
    /// place.
    fn update<A: Float>(&self, p: A, g: A, state: &mut [A]) -> A;
}

#[inline(always)]
fn c<A: Float>(v: f64) -> A {
    A::cast_f64(v)
}

/// The gradient with the L2 penalty `weight_decay * p` added (torch.optim's coupled decay).
#[inline(always)]
fn l2<A: Float>(g: A, p: A, weight_decay: f64) -> A {
    if weight_decay != 0.0 { g + p * c(weight_decay) } else { g }
}

/// SGD with momentum, dampening, Nesterov and L2 weight decay. State: the momentum buffer
/// (none without momentum).
#[derive(Clone, Copy, Debug)]
pub struct SgdRule {
    pub(crate) lr: f64,
    pub(crate) momentum: f64,
    pub(crate) dampening: f64,
    pub(crate) weight_decay: f64,
    pub(crate) nesterov: bool,
    /// The parameter's first step: the buffer starts as the gradient (PyTorch's `clone`).
    pub(crate) first: bool,
}

impl UpdateRule for SgdRule {
    fn slots(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let mut g = l2(g, p, self.weight_decay);
        if self.momentum != 0.0 {
            let buf = if self.first { g } else { s[0] * c(self.momentum) + g * c(1.0 - self.dampening) };
            s[0] = buf;
            g = if self.nesterov { g + buf * c(self.momentum) } else { buf };
        }
        p - g * c(self.lr)
    }
}

/// Adam and AdamW (decoupled decay), with AMSGrad. State: first moment, second moment, and the
/// running maximum of the second moment (used with AMSGrad only).
#[derive(Clone, Copy, Debug)]
pub struct AdamRule {
    pub(crate) lr: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
    pub(crate) decoupled: bool,
    pub(crate) amsgrad: bool,
    /// `lr / (1 - beta1^t)`.
    pub(crate) step_size: f64,
    /// `sqrt(1 - beta2^t)`.
    pub(crate) bias_correction2_sqrt: f64,
}

impl AdamRule {
    pub(crate) fn at_step(mut self, t: u64) -> Self {
        let t = t as i32;
        self.step_size = self.lr / (1.0 - math::powi(self.beta1, t));
        self.bias_correction2_sqrt = math::sqrt(1.0 - math::powi(self.beta2, t));
        self
    }
}

impl UpdateRule for AdamRule {
    fn slots(&self) -> usize {
        2 + usize::from(self.amsgrad)
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let (p, g) = if self.decoupled {
            (p * c(1.0 - self.lr * self.weight_decay), g)
        } else {
            (p, l2(g, p, self.weight_decay))
        };
        // m.lerp_(g, 1 - beta1): m + (1 - beta1) (g - m)
        s[0] = s[0] + (g - s[0]) * c(1.0 - self.beta1);
        s[1] = s[1] * c(self.beta2) + g * g * c(1.0 - self.beta2);
        let second = if self.amsgrad {
            s[2] = s[2].max(s[1]);
            s[2]
        } else {
            s[1]
        };
        let denom = second.sqrt() / c(self.bias_correction2_sqrt) + c(self.eps);
        p - s[0] / denom * c(self.step_size)
    }
}

/// RMSprop, plain or centered, with momentum. State: the square average, the gradient average
/// (centered), the momentum buffer.
#[derive(Clone, Copy, Debug)]
pub struct RmspropRule {
    pub(crate) lr: f64,
    pub(crate) alpha: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
    pub(crate) momentum: f64,
    pub(crate) centered: bool,
}

impl UpdateRule for RmspropRule {
    fn slots(&self) -> usize {
        3
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let g = l2(g, p, self.weight_decay);
        s[0] = s[0] * c(self.alpha) + g * g * c(1.0 - self.alpha);
        let avg = if self.centered {
            s[1] = s[1] + (g - s[1]) * c(1.0 - self.alpha);
            (s[0] - s[1] * s[1]).sqrt() + c(self.eps)
        } else {
            s[0].sqrt() + c(self.eps)
        };
        if self.momentum > 0.0 {
            s[2] = s[2] * c(self.momentum) + g / avg;
            p - s[2] * c(self.lr)
        } else {
            p - g / avg * c(self.lr)
        }
    }
}

/// Adagrad with learning-rate decay. State: the sum of squared gradients.
#[derive(Clone, Copy, Debug)]
pub struct AdagradRule {
    /// `lr / (1 + (t - 1) lr_decay)`.
    pub(crate) clr: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
}

impl UpdateRule for AdagradRule {
    fn slots(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let g = l2(g, p, self.weight_decay);
        s[0] = s[0] + g * g;
        p - g / (s[0].sqrt() + c(self.eps)) * c(self.clr)
    }
}

/// Adadelta. State: the square average of gradients and of updates.
#[derive(Clone, Copy, Debug)]
pub struct AdadeltaRule {
    pub(crate) lr: f64,
    pub(crate) rho: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: f64,
}

impl UpdateRule for AdadeltaRule {
    fn slots(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let g = l2(g, p, self.weight_decay);
        s[0] = s[0] * c(self.rho) + g * g * c(1.0 - self.rho);
        let std = (s[0] + c(self.eps)).sqrt();
        let delta = (s[1] + c(self.eps)).sqrt() / std * g;
        s[1] = s[1] * c(self.rho) + delta * delta * c(1.0 - self.rho);
        p - delta * c(self.lr)
    }
}

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
/// interpolated momentum, with decoupled weight decay. State: the momentum.
#[derive(Clone, Copy, Debug)]
pub struct LionRule {
    pub(crate) lr: f64,
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) weight_decay: f64,
}

impl UpdateRule for LionRule {
    fn slots(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update<A: Float>(&self, p: A, g: A, s: &mut [A]) -> A {
        let p = p * c(1.0 - self.lr * self.weight_decay);
        let mix = s[0] * c(self.beta1) + g * c(1.0 - self.beta1);
        let sign = if mix > A::zero() {
            A::one()
        } else if mix < A::zero() {
            -A::one()
        } else {
            A::zero()
        };
        s[0] = s[0] * c(self.beta2) + g * c(1.0 - self.beta2);
        p - sign * c(self.lr)
    }
}
