//! # tensile
//!
//! Deep learning in Rust where a tensor's shape, dtype and device are part of its type, so that a
//! model that does not fit together does not compile.
//!
//! ```
//! use tensile::prelude::*;
//!
//! let dev = Cpu::seeded(0);
//! let w: Tensor<Rank2<784, 10>, f32, Cpu> = dev.randn();
//! let x: Tensor<(usize, Const<784>), f32, Cpu> = dev.zeros_like(&(32, Const));   // run-time batch
//! let grads = w.alloc_grads();
//! let y = x.matmul(w.trace(grads));           // the tape moves into the result
//! let loss = y.square().mean::<Rank0, _>();   // a scalar that carries the tape
//! let g = loss.backward();                    // gradients; g.get(&w) has w's shape
//! assert_eq!(g.get(&w).dims().as_slice(), &[784, 10]);
//! ```
//!
//! A shape mismatch between static dims is a compile error that names the op and prints the
//! sizes (`matmul: cannot multiply Tensor<(Const<8>, Const<784>), f32> by Tensor<(Const<512>,
//! Const<10>), f32>`):
//!
//! ```compile_fail
//! use tensile::prelude::*;
//! let dev = Cpu::seeded(0);
//! let a: Tensor<Rank2<8, 784>, f32, Cpu> = dev.zeros();
//! let w: Tensor<Rank2<512, 10>, f32, Cpu> = dev.zeros();
//! let _ = a.matmul(w); // 784 columns against 512 rows
//! ```
//!
//! See `docs/ARCHITECTURE.md` for the layers and how to add an op.

#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod autograd;
mod compat;
#[cfg(feature = "std")]
pub mod data;
pub mod device;
pub mod dtypes;
pub mod error;
pub mod export;
#[cfg(feature = "std")]
mod io;
pub mod nn;
pub mod ops;
pub mod optim;
mod par;
pub mod shapes;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};

/// Names the exported macros expand to (not public API).
#[doc(hidden)]
pub mod __private {
    pub use alloc::format;
}
pub use tensor::Tensor;

/// Everything a model-writing program needs, in one import.
pub mod prelude {
    pub use crate::autograd::{Gradients, Merge, NoTape, OwnedTape, Tape};
    #[cfg(feature = "cuda")]
    pub use crate::device::Cuda;
    pub use crate::device::{Cpu, Device};
    pub use crate::dtypes::{Dtype, Float};
    pub use crate::error::{Error, Result};
    pub use crate::nn::{BuildOn, Module, ModuleMut, SaveLoad};
    pub use crate::ops::{AttnMask, ConvOpts, ConvTransposeOpts, MatMul, Pad, PadMode, PoolOpts};
    pub use crate::shapes::*;
    pub use crate::tensor::{FromArray, Tensor, TensorFactory, ToArray};
}

/// The README's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
