//! Normalisation layers: `LayerNorm`, `RMSNorm`, `GroupNorm`, `BatchNorm1d`, `BatchNorm2d`, as
//! PyTorch's, with its default initialisation (scale 1, shift 0, running variance 1).

use super::linear::on_tape;
use super::{BuildOn, Module, ModuleMut, same_in_training, tensor_params};
use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Const, Dim, LastDim, Rank0, Rank1, Shape};
use crate::tensor::{Tensor, TensorFactory};

/// A `(M,)` vector of ones or zeros.
fn filled<const M: usize, E: Float, D: Device>(dev: &D, v: f64) -> Tensor<Rank1<M>, E, D> {
    dev.full_like(&(Const::<M>,), E::cast_f64(v))
}

/// A per-feature parameter as the `(X,)` vector an input with feature dim `X` needs (same tensor,
/// same id; `Err` when the sizes differ).
fn as_feature<X: Dim, const M: usize, E: Float, D: Device, T: Tape<D>>(
    p: &Tensor<Rank1<M>, E, D>,
    tape: &T,
    op: &'static str,
) -> Result<Tensor<(X,), E, D, T>> {
    on_tape(p, tape).try_realize::<(X,)>().map_err(|_| Error::ShapeMismatch { op, lhs: vec![M], rhs: vec![] })
}

/// Layer normalisation over the last axis of size `M` (`nn.LayerNorm(M)`, eps 1e-5).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::LayerNorm;
/// let ln = LayerNorm::<4>::build(&Cpu::seeded(0));
/// let y = ln.forward(Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0, 4.0]]));
/// assert!(y.to_vec().iter().sum::<f32>().abs() < 1e-5);
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm<const M: usize, E: Float = f32, D: Device = Cpu> {
    /// Scale, `(M,)`.
    pub weight: Tensor<Rank1<M>, E, D>,
    /// Shift, `(M,)`.
    pub bias: Tensor<Rank1<M>, E, D>,
    /// Added to the variance.
    pub eps: f64,
}

impl<const M: usize, E: Float, D: Device> BuildOn<D> for LayerNorm<M, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self { weight: filled(dev, 1.0), bias: filled(dev, 0.0), eps: 1e-5 })
    }
}
tensor_params!([const M: usize, E: Float, D: Device] LayerNorm<M, E, D> { weight: Parameter, bias: Parameter });

impl<const M: usize, S: LastDim, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for LayerNorm<M, E, D> {
    type Output = Tensor<S, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        const {
            if let Some(n) = <S::Last as Dim>::STATIC {
                assert!(n == M, "LayerNorm<M>: the input's last dim is not M");
            }
        }
        let tape = x.tape().clone();
        let w = as_feature::<S::Last, M, E, D, T>(&self.weight, &tape, "LayerNorm")?;
        let b = as_feature::<S::Last, M, E, D, T>(&self.bias, &tape, "LayerNorm")?;
        x.try_layer_norm(w, b, self.eps)
    }
}
same_in_training!([const M: usize, E: Float, D: Device] LayerNorm<M, E, D>);

/// Root-mean-square normalisation over the last axis of size `M` (`nn.RMSNorm(M)`; eps 1e-6
/// here, where PyTorch's default is the dtype's machine epsilon).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::RMSNorm;
/// let n = RMSNorm::<2>::build(&Cpu::seeded(0));
/// let y = n.forward(Cpu::seeded(0).tensor([[3.0f32, 4.0]])).to_vec();
/// assert!((y[0] * y[0] + y[1] * y[1] - 2.0).abs() < 1e-4);
/// ```
#[derive(Clone, Debug)]
pub struct RMSNorm<const M: usize, E: Float = f32, D: Device = Cpu> {
    /// Scale, `(M,)`.
    pub weight: Tensor<Rank1<M>, E, D>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<const M: usize, E: Float, D: Device> BuildOn<D> for RMSNorm<M, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self { weight: filled(dev, 1.0), eps: 1e-6 })
    }
}
tensor_params!([const M: usize, E: Float, D: Device] RMSNorm<M, E, D> { weight: Parameter });

impl<const M: usize, S: LastDim, E: Float, D: Device, T: Tape<D>> Module<Tensor<S, E, D, T>> for RMSNorm<M, E, D> {
    type Output = Tensor<S, E, D, T>;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output> {
        const {
            if let Some(n) = <S::Last as Dim>::STATIC {
                assert!(n == M, "RMSNorm<M>: the input's last dim is not M");
            }
        }
        let w = as_feature::<S::Last, M, E, D, T>(&self.weight, x.tape(), "RMSNorm")?;
        x.try_rms_norm(w, self.eps)
    }
}
same_in_training!([const M: usize, E: Float, D: Device] RMSNorm<M, E, D>);

/// Group normalisation of `C` channels in `G` groups (`nn.GroupNorm(G, C)`, eps 1e-5), over
/// `(batch, C, ..)` inputs of rank 3 or 4.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::GroupNorm;
/// let gn = GroupNorm::<2, 4>::build(&Cpu::seeded(0));
/// let x: Tensor<Rank4<2, 4, 3, 3>, f32, Cpu> = Cpu::seeded(0).randn();
/// assert_eq!(gn.forward(x).dims().as_slice(), &[2, 4, 3, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct GroupNorm<const G: usize, const C: usize, E: Float = f32, D: Device = Cpu> {
    /// Scale per channel.
    pub weight: Tensor<Rank1<C>, E, D>,
    /// Shift per channel.
    pub bias: Tensor<Rank1<C>, E, D>,
    /// Added to the variance.
    pub eps: f64,
}

impl<const G: usize, const C: usize, E: Float, D: Device> BuildOn<D> for GroupNorm<G, C, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        const { assert!(G > 0 && C.is_multiple_of(G), "GroupNorm<G, C>: G must divide C") };
        Ok(Self { weight: filled(dev, 1.0), bias: filled(dev, 0.0), eps: 1e-5 })
    }
}
tensor_params!([const G: usize, const C: usize, E: Float, D: Device] GroupNorm<G, C, E, D> { weight: Parameter, bias: Parameter });

/// Batch normalisation over `C` channels (`nn.BatchNorm1d(C)` / `nn.BatchNorm2d(C)`: momentum
/// 0.1, eps 1e-5). Training mode normalises with the batch's statistics and folds them into the
/// running ones; inference uses the running statistics.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::BatchNorm2d;
/// let dev = Cpu::seeded(0);
/// let mut bn = BatchNorm2d::<3>::build(&dev);
/// let x: Tensor<Rank4<8, 3, 4, 4>, f32, Cpu> = dev.randn();
/// let _ = bn.forward_mut(x.clone());            // updates the running statistics
/// assert!(bn.running_mean.to_vec().iter().any(|&m| m != 0.0));
/// let _ = bn.forward(x);                        // uses them
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm<const C: usize, E: Float = f32, D: Device = Cpu> {
    /// Scale per channel.
    pub weight: Tensor<Rank1<C>, E, D>,
    /// Shift per channel.
    pub bias: Tensor<Rank1<C>, E, D>,
    /// Running mean per channel (a buffer).
    pub running_mean: Tensor<Rank1<C>, E, D>,
    /// Running unbiased variance per channel (a buffer).
    pub running_var: Tensor<Rank1<C>, E, D>,
    /// Training steps taken (an int64 buffer, saved as PyTorch saves it).
    pub num_batches_tracked: Tensor<Rank0, i64, D>,
    /// Weight of the newest batch in the running statistics.
    pub momentum: f64,
    /// Added to the variance.
    pub eps: f64,
}

/// `nn.BatchNorm1d(C)`: inputs `(batch, C)` or `(batch, C, length)`.
pub type BatchNorm1d<const C: usize, E = f32, D = Cpu> = BatchNorm<C, E, D>;
/// `nn.BatchNorm2d(C)`: inputs `(batch, C, h, w)`.
pub type BatchNorm2d<const C: usize, E = f32, D = Cpu> = BatchNorm<C, E, D>;

impl<const C: usize, E: Float, D: Device> BuildOn<D> for BatchNorm<C, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self {
            weight: filled(dev, 1.0),
            bias: filled(dev, 0.0),
            running_mean: filled(dev, 0.0),
            running_var: filled(dev, 1.0),
            num_batches_tracked: dev.scalar(0),
            momentum: 0.1,
            eps: 1e-5,
        })
    }
}
tensor_params!([const C: usize, E: Float, D: Device] BatchNorm<C, E, D> {
    weight: Parameter,
    bias: Parameter,
    running_mean: Buffer,
    running_var: Buffer,
    num_batches_tracked: NonFloat,
});

/// The input with its channel dim as `Const<C>` (a build error for a static dim of another
/// size, `Err` for a run-time one).
fn channels_const<S1: Shape, S2: Shape, const C: usize, E: Float, D: Device, T: Tape<D>>(
    x: Tensor<S1, E, D, T>,
    op: &'static str,
) -> Result<Tensor<S2, E, D, T>> {
    let got = x.dims()[1];
    if got != C {
        return Err(Error::ShapeMismatch { op, lhs: vec![C], rhs: vec![got] });
    }
    x.try_realize::<S2>()
}

macro_rules! channel_layers {
    ($shape:ty, $const_shape:ty, [$($d:ident),*]) => {
        impl<const C: usize, N: Dim, X: Dim, $($d: Dim,)* E: Float, D: Device, T: Tape<D>> Module<Tensor<$shape, E, D, T>>
            for BatchNorm<C, E, D>
        {
            type Output = Tensor<$const_shape, E, D, T>;
            fn try_forward(&self, x: Tensor<$shape, E, D, T>) -> Result<Self::Output> {
                const {
                    if let Some(n) = X::STATIC {
                        assert!(n == C, "BatchNorm<C>: the input's channel dim (dim 1) is not C");
                    }
                }
                let x = channels_const::<_, $const_shape, C, E, D, T>(x, "BatchNorm")?;
                let tape = x.tape().clone();
                Ok(x.batch_norm_eval(
                    &self.running_mean,
                    &self.running_var,
                    on_tape(&self.weight, &tape),
                    on_tape(&self.bias, &tape),
                    self.eps,
                ))
            }
        }

        impl<const C: usize, N: Dim, X: Dim, $($d: Dim,)* E: Float, D: Device, T: Tape<D>> ModuleMut<Tensor<$shape, E, D, T>>
            for BatchNorm<C, E, D>
        {
            type Output = Tensor<$const_shape, E, D, T>;
            fn try_forward_mut(&mut self, x: Tensor<$shape, E, D, T>) -> Result<Self::Output> {
                const {
                    if let Some(n) = X::STATIC {
                        assert!(n == C, "BatchNorm<C>: the input's channel dim (dim 1) is not C");
                    }
                }
                let x = channels_const::<_, $const_shape, C, E, D, T>(x, "BatchNorm")?;
                let tape = x.tape().clone();
                let (y, stats) = x.batch_norm_train(on_tape(&self.weight, &tape), on_tape(&self.bias, &tape), self.eps);
                let m = self.momentum;
                self.running_mean = self.running_mean.clone().mul_scalar(1.0 - m) + stats.mean.mul_scalar(m);
                self.running_var = self.running_var.clone().mul_scalar(1.0 - m) + stats.var.mul_scalar(m);
                let steps = self.num_batches_tracked.to_vec()[0];
                self.num_batches_tracked = self.num_batches_tracked.device().scalar(steps + 1);
                Ok(y)
            }
        }
    };
}
channel_layers!((N, X), (N, Const<C>), []);
channel_layers!((N, X, L), (N, Const<C>, L), [L]);
channel_layers!((N, X, H, W), (N, Const<C>, H, W), [H, W]);

macro_rules! group_norm_layers {
    ($shape:ty, $const_shape:ty, [$($d:ident),*]) => {
        impl<const G: usize, const C: usize, N: Dim, X: Dim, $($d: Dim,)* E: Float, D: Device, T: Tape<D>>
            Module<Tensor<$shape, E, D, T>> for GroupNorm<G, C, E, D>
        {
            type Output = Tensor<$const_shape, E, D, T>;
            fn try_forward(&self, x: Tensor<$shape, E, D, T>) -> Result<Self::Output> {
                const {
                    if let Some(n) = X::STATIC {
                        assert!(n == C, "GroupNorm<G, C>: the input's channel dim (dim 1) is not C");
                    }
                }
                let x = channels_const::<_, $const_shape, C, E, D, T>(x, "GroupNorm")?;
                let tape = x.tape().clone();
                x.try_group_norm::<G, T, T>(on_tape(&self.weight, &tape), on_tape(&self.bias, &tape), self.eps)
            }
        }
    };
}
group_norm_layers!((N, X, L), (N, Const<C>, L), [L]);
group_norm_layers!((N, X, H, W), (N, Const<C>, H, W), [H, W]);
same_in_training!([const G: usize, const C: usize, E: Float, D: Device] GroupNorm<G, C, E, D>);
