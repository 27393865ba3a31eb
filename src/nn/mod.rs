//! Neural-network modules, as PyTorch's `torch.nn`: a module is a struct whose sizes are const
//! parameters (`Linear<784, 128>`), and a tuple of modules runs them in order (PyTorch's
//! `Sequential`), so a model whose layers do not fit together does not compile.
//!
//! - [`Module::forward`] is inference (evaluation mode: dropout off, batch norm on its running
//!   statistics); [`ModuleMut::forward_mut`] is training mode. Gradients reach the parameters
//!   through the input's tape: trace the input with [`alloc_grads`] and every parameter's
//!   gradient is in the result of `backward()`.
//! - [`Params`] visits every parameter with its PyTorch `state_dict` name (`"0.weight"`), for
//!   counting, optimisers and serialisation.
//! - [`BuildOn`] makes a module on a device with PyTorch's default initialisation:
//!   `Model::build(&dev)`.
//!
//! ```
//! use tensile::prelude::*;
//! use tensile::nn::{self, Linear, ReLU};
//!
//! type Mlp = (Linear<4, 8>, ReLU, Linear<8, 2>);
//! let dev = Cpu::seeded(0);
//! let model = Mlp::build(&dev);
//! assert_eq!(nn::num_params(&model), 4 * 8 + 8 + 8 * 2 + 2);
//!
//! let x: Tensor<(usize, Const<4>), f32, Cpu> = dev.randn_like(&(16, Const));
//! let y = model.forward(x.trace(nn::alloc_grads(&model)));
//! let grads = y.square().mean::<Rank0, _>().backward();
//! assert_eq!(grads.get(&model.0.weight).dims().as_slice(), &[8, 4]);
//! ```

mod activation;
mod attention;
mod bilinear;
mod conv;
mod dropout;
mod embedding;
mod frozen;
pub mod init;
mod linear;
pub mod loss;
mod no_bias;
mod norm;
mod pool;
mod residual;
mod rnn;
pub(crate) mod serialize;
mod transformer;

use crate::compat::prelude::*;
pub use activation::{GELU, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh};
pub use attention::{MultiHeadAttention, Packed};
pub use bilinear::Bilinear;
pub use conv::{Conv1d, Conv2d, ConvTranspose2d, OutPerGroup, PerGroup};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use frozen::Frozen;
pub use linear::Linear;
pub use no_bias::NoBias;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, Flatten, MaxPool2d};
pub use residual::{Combine, Identity, Repeat, Residual, ResidualWith, combine};
pub use rnn::{GRU, LSTM, RnnWeights};
pub use serialize::{SaveLoad, copy_params};
pub use transformer::{
    Activation, Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
    TransformerStack,
};

use crate::autograd::Gradients;
use crate::device::Device;
use crate::dtypes::{Dtype, Float};
use crate::error::Result;
use crate::shapes::Shape;
use crate::tensor::Tensor;

/// A module's forward pass in inference (evaluation) mode.
#[diagnostic::on_unimplemented(
    message = "module `{Self}` cannot take `{X}` as its input",
    label = "this layer's input size (or rank, dtype or device) differs from what the previous layer gives it",
    note = "in a tuple of modules, each layer's output type must be the next layer's input type"
)]
pub trait Module<X> {
    /// The output type.
    type Output;
    /// The forward pass; `Err` when a run-time size does not fit.
    fn try_forward(&self, x: X) -> Result<Self::Output>;
    /// The forward pass, panicking where [`Module::try_forward`] returns `Err`.
    fn forward(&self, x: X) -> Self::Output {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A module's forward pass in training mode (dropout active, batch statistics updated).
#[diagnostic::on_unimplemented(
    message = "module `{Self}` cannot take `{X}` as its input",
    label = "this layer's input size (or rank, dtype or device) differs from what the previous layer gives it"
)]
pub trait ModuleMut<X> {
    /// The output type.
    type Output;
    /// The training-mode forward pass; `Err` when a run-time size does not fit.
    fn try_forward_mut(&mut self, x: X) -> Result<Self::Output>;
    /// The training-mode forward pass, panicking where [`ModuleMut::try_forward_mut`] returns `Err`.
    fn forward_mut(&mut self, x: X) -> Self::Output {
        self.try_forward_mut(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Whether a visited tensor is learned (a parameter) or state (a buffer such as running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Learned: optimisers update it.
    Parameter,
    /// A parameter of a [`Frozen`] module: learned once, not updated now.
    Frozen,
    /// State saved with the model but not learned.
    Buffer,
}

/// Sees every tensor of a module, with its `state_dict` name.
pub trait Visitor<D: Device> {
    /// One float tensor: every parameter, and float buffers such as running statistics.
    fn visit<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &Tensor<S, E, D>);
    /// One integer or bool buffer (batch norm's `num_batches_tracked`). Never a parameter, so
    /// visitors that only care about what is learned keep this default, which skips it.
    fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
        let _ = (name, t);
    }
}

/// Sees every tensor of a module mutably (optimisers, loading).
pub trait VisitorMut<D: Device> {
    /// One float tensor: every parameter, and float buffers such as running statistics.
    fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &mut Tensor<S, E, D>);
    /// One integer or bool buffer; skipped unless overridden (see [`Visitor::visit_non_float`]).
    fn visit_non_float_mut<S: Shape, E: Dtype>(&mut self, name: &str, t: &mut Tensor<S, E, D>) {
        let _ = (name, t);
    }
}

/// A module's tensors, named as PyTorch names them in a `state_dict`.
pub trait Params<D: Device> {
    /// Visits every tensor, names prefixed by `prefix` (`""` at the top, `"0."` inside a tuple).
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V);
    /// Visits every tensor mutably.
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V);
}

/// No tensors: for tracing a function that is not a model (`Tracer::finish(&(), ..)`).
impl<D: Device> Params<D> for () {
    fn visit_params<V: Visitor<D>>(&self, _: &str, _: &mut V) {}
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, _: &str, _: &mut V) {}
}

/// An optional submodule (a stack's final norm): its tensors when present, nothing otherwise,
/// as PyTorch's `state_dict` has no entries for a `None` submodule.
impl<D: Device, M: Params<D>> Params<D> for Option<M> {
    fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
        if let Some(m) = self {
            m.visit_params(prefix, v);
        }
    }
    fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
        if let Some(m) = self {
            m.visit_params_mut(prefix, v);
        }
    }
}

/// Makes a module on a device, initialised as PyTorch initialises it.
pub trait BuildOn<D: Device>: Sized {
    /// The module, or an `Err` from the device.
    fn try_build(dev: &D) -> Result<Self>;
    /// The module.
    fn build(dev: &D) -> Self {
        Self::try_build(dev).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The number of parameter elements, frozen ones included (PyTorch's
/// `sum(p.numel() for p in model.parameters())`).
pub fn num_params<D: Device, M: Params<D>>(m: &M) -> usize {
    count_elements(m, |kind| matches!(kind, TensorKind::Parameter | TensorKind::Frozen))
}

/// The number of parameter elements that training updates (frozen ones left out).
pub fn num_trainable_params<D: Device, M: Params<D>>(m: &M) -> usize {
    count_elements(m, |kind| kind == TensorKind::Parameter)
}

fn count_elements<D: Device, M: Params<D>>(m: &M, counted: fn(TensorKind) -> bool) -> usize {
    struct Count(usize, fn(TensorKind) -> bool);
    impl<D: Device> Visitor<D> for Count {
        fn visit<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
            if (self.1)(kind) {
                self.0 += t.numel();
            }
        }
    }
    let mut c = Count(0, counted);
    m.visit_params("", &mut c);
    c.0
}

/// Every tensor's name, kind and dims, in visiting order: PyTorch's `state_dict` keys, integer
/// buffers (batch norm's `num_batches_tracked`) included.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear, ReLU};
/// let m = <(Linear<2, 3>, ReLU, Linear<3, 1>)>::build(&Cpu::seeded(0));
/// let names: Vec<String> = nn::named_tensors(&m).into_iter().map(|(n, _, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
pub fn named_tensors<D: Device, M: Params<D>>(m: &M) -> Vec<(String, TensorKind, Vec<usize>)> {
    struct Names(Vec<(String, TensorKind, Vec<usize>)>);
    impl<D: Device> Visitor<D> for Names {
        fn visit<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
            self.0.push((name.to_string(), kind, t.dims().to_vec()));
        }
        fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
            self.0.push((name.to_string(), TensorKind::Buffer, t.dims().to_vec()));
        }
    }
    let mut n = Names(Vec::new());
    m.visit_params("", &mut n);
    n.0
}

/// A [`Gradients`] that keeps the gradient of every parameter of `m` (and drops the rest as the
/// backward pass goes): trace the input with it.
pub fn alloc_grads<D: Device, M: Params<D>>(m: &M) -> Gradients<D> {
    struct Keep<D: Device>(Gradients<D>);
    impl<D: Device> Visitor<D> for Keep<D> {
        fn visit<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &Tensor<S, E, D>) {
            if kind == TensorKind::Parameter {
                self.0.keep(t);
            }
        }
    }
    let mut k = Keep(Gradients::only_kept());
    m.visit_params("", &mut k);
    k.0
}

/// Implements [`Params`] for a module whose fields are tensors: each is visited as
/// `"<prefix><field>"` with its kind (`Parameter`, `Buffer`, `NonFloat` for an integer buffer,
/// or `Optional` for an `Option` parameter such as a bias, visited when present).
macro_rules! tensor_params {
    ([$($g:tt)*] $ty:ty { $($field:ident: $kind:ident),* $(,)? }) => {
        impl<$($g)*> crate::nn::Params<D> for $ty {
            fn visit_params<Vis: crate::nn::Visitor<D>>(&self, prefix: &str, v: &mut Vis) {
                $(crate::nn::tensor_params!(@visit v, self.$field, &alloc::format!("{prefix}{}", stringify!($field)), $kind);)*
            }
            fn visit_params_mut<Vis: crate::nn::VisitorMut<D>>(&mut self, prefix: &str, v: &mut Vis) {
                $(crate::nn::tensor_params!(@visit_mut v, self.$field, &alloc::format!("{prefix}{}", stringify!($field)), $kind);)*
            }
        }
    };
    (@visit $v:ident, $t:expr, $name:expr, NonFloat) => { $v.visit_non_float($name, &$t) };
    (@visit $v:ident, $t:expr, $name:expr, Optional) => {
        if let Some(t) = &$t {
            $v.visit($name, crate::nn::TensorKind::Parameter, t)
        }
    };
    (@visit $v:ident, $t:expr, $name:expr, $kind:ident) => { $v.visit($name, crate::nn::TensorKind::$kind, &$t) };
    (@visit_mut $v:ident, $t:expr, $name:expr, NonFloat) => { $v.visit_non_float_mut($name, &mut $t) };
    (@visit_mut $v:ident, $t:expr, $name:expr, Optional) => {
        if let Some(t) = &mut $t {
            $v.visit_mut($name, crate::nn::TensorKind::Parameter, t)
        }
    };
    (@visit_mut $v:ident, $t:expr, $name:expr, $kind:ident) => {
        $v.visit_mut($name, crate::nn::TensorKind::$kind, &mut $t)
    };
}
pub(crate) use tensor_params;

/// A layer whose bias can be left out (PyTorch's `bias=False`), for [`NoBias`].
pub trait OptionalBias {
    /// Drops the bias: the layer then computes `x Wᵀ` (or the convolution) alone.
    fn remove_bias(&mut self);
}

/// Implements [`OptionalBias`] for a layer with a `bias: Option<..>` field.
macro_rules! optional_bias {
    ([$($g:tt)*] $ty:ty) => {
        impl<$($g)*> crate::nn::OptionalBias for $ty {
            fn remove_bias(&mut self) {
                self.bias = None;
            }
        }
    };
}
pub(crate) use optional_bias;

/// Implements [`Module`] and [`ModuleMut`] of a one-field wrapper `$ty(pub M)` as the inner
/// module's (the wrappers that change how parameters are seen, not the maths).
macro_rules! delegate_forward {
    ($ty:ident) => {
        impl<X, M: crate::nn::Module<X>> crate::nn::Module<X> for $ty<M> {
            type Output = M::Output;
            fn try_forward(&self, x: X) -> crate::error::Result<Self::Output> {
                self.0.try_forward(x)
            }
        }
        impl<X, M: crate::nn::ModuleMut<X>> crate::nn::ModuleMut<X> for $ty<M> {
            type Output = M::Output;
            fn try_forward_mut(&mut self, x: X) -> crate::error::Result<Self::Output> {
                self.0.try_forward_mut(x)
            }
        }
    };
}
pub(crate) use delegate_forward;

/// Implements [`ModuleMut`] as [`Module`] for modules that behave the same in both modes.
macro_rules! same_in_training {
    ([$($g:tt)*] $ty:ty) => {
        impl<X, $($g)*> crate::nn::ModuleMut<X> for $ty
        where
            $ty: crate::nn::Module<X>,
        {
            type Output = <$ty as crate::nn::Module<X>>::Output;
            fn try_forward_mut(&mut self, x: X) -> crate::error::Result<Self::Output> {
                crate::nn::Module::try_forward(self, x)
            }
        }
    };
}
pub(crate) use same_in_training;

mod tuples;

/// Implements [`Params`] and [`BuildOn`] for a module struct from its fields, each itself a
/// module: tensors are named `"<field>.<inner name>"` as PyTorch names submodules, and `build`
/// builds each field. The forward pass is yours to write (`impl Module<X> for ..`).
///
/// Write the generics after `impl` in brackets, then the type and the fields. The device type
/// must be named `D` in generic form; a struct on one device says which with `where D = Cpu`
/// (`module_fields!(impl[const C: usize] Block<C> where D = Cpu { conv, bn })`), and a struct
/// with no generics needs no `impl[..]` at all (`module_fields!(Model { encoder, head })`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Linear, ReLU};
///
/// struct Mlp<E: Float, D: Device> {
///     hidden: Linear<4, 8, E, D>,
///     out: Linear<8, 2, E, D>,
/// }
/// tensile::module_fields!(impl[E: Float, D: Device] Mlp<E, D> { hidden, out });
///
/// impl<E: Float, D: Device, T: Tape<D>> Module<Tensor<(usize, Const<4>), E, D, T>> for Mlp<E, D> {
///     type Output = Tensor<(usize, Const<2>), E, D, T>;
///     fn try_forward(&self, x: Tensor<(usize, Const<4>), E, D, T>) -> Result<Self::Output> {
///         let h = self.hidden.try_forward(x)?.relu();
///         self.out.try_forward(h)
///     }
/// }
///
/// let m = Mlp::<f32, Cpu>::build(&Cpu::seeded(0));
/// let names: Vec<String> = nn::named_tensors(&m).into_iter().map(|(n, _, _)| n).collect();
/// assert_eq!(names, ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]);
/// ```
#[macro_export]
macro_rules! module_fields {
    (impl[$($g:tt)*] $ty:ty where D = $dev:ty { $($field:ident),+ $(,)? }) => {
        $crate::module_fields!(@impl [$($g)*] $ty, $dev, $($field),+);
    };
    (impl[$($g:tt)*] $ty:ty { $($field:ident),+ $(,)? }) => {
        $crate::module_fields!(@impl [$($g)*] $ty, D, $($field),+);
    };
    ($ty:ty { $($field:ident),+ $(,)? }) => {
        $crate::module_fields!(@impl [] $ty, $crate::device::Cpu, $($field),+);
    };
    (@impl [$($g:tt)*] $ty:ty, $dev:ty, $($field:ident),+) => {
        impl<$($g)*> $crate::nn::Params<$dev> for $ty {
            fn visit_params<V: $crate::nn::Visitor<$dev>>(&self, prefix: &str, v: &mut V) {
                $($crate::nn::Params::<$dev>::visit_params(&self.$field, &$crate::__private::format!("{prefix}{}.", stringify!($field)), v);)+
            }
            fn visit_params_mut<V: $crate::nn::VisitorMut<$dev>>(&mut self, prefix: &str, v: &mut V) {
                $($crate::nn::Params::<$dev>::visit_params_mut(&mut self.$field, &$crate::__private::format!("{prefix}{}.", stringify!($field)), v);)+
            }
        }
        impl<$($g)*> $crate::nn::BuildOn<$dev> for $ty {
            fn try_build(dev: &$dev) -> $crate::Result<Self> {
                Ok(Self { $($field: $crate::nn::BuildOn::try_build(dev)?),+ })
            }
        }
    };
}
