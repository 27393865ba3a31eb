//! The ops. One folder or file per family: the typed front end (shape checks, tape recording)
//! sits beside the maths; kernels live in `device/`.
//!
//! | family | file |
//! |---|---|
//! | neg, abs, exp, ln, sqrt, square, powi, powf, recip, sin, cos, tanh, sigmoid, relu, leaky_relu, gelu, gelu_tanh, erf, silu, softplus, clamp, scalar ops | `unary/mod.rs` |
//! | add, sub, mul, div, maximum, minimum, pow | `binary/mod.rs` |
//! | sum, max, min, mean, var, std, logsumexp | `reduce/mod.rs` |
//! | matmul (vector, matrix, batched) | `matmul/mod.rs` |
//! | reshape, flatten, realize, permute, t, broadcast, narrow, select, concat, stack, contiguous | `movement/mod.rs` |
//! | max_pool1d/2d, avg_pool1d/2d, adaptive_avg_pool2d, global_avg_pool2d, global_max_pool2d | `pool/mod.rs` |
//! | sort, argsort, topk, argmax, argmin, max_along, min_along | `sort/mod.rs` |
//! | cumsum, cumprod | `scan/mod.rs` |
//! | layer_norm, rms_norm, normalize, batch_norm_train, batch_norm_eval, group_norm | `norm/mod.rs` |
//! | cross_entropy, cross_entropy_probs, nll_loss (and per-sample forms) | `loss/mod.rs` |
//! | scaled_dot_product_attention | `attention/mod.rs` |
//! | pad1d, pad2d (constant, reflect, replicate), upsample_nearest2d, upsample_bilinear2d | `resize/mod.rs` |
//! | softmax, log_softmax | `softmax.rs` |
//! | conv1d, conv2d, conv_transpose1d, conv_transpose2d | `conv/mod.rs` |
//! | eq, ne, lt, le, gt, ge, choose (where) | `compare.rs` |
//! | gather, scatter_add, index_select, embedding, masked_fill, one_hot, flip, roll, slice (with a step), split, chunk, tril, triu | `index/mod.rs` |
//! | dropout | `dropout.rs` |
//! | to_dtype | `to_dtype.rs` |

mod attention;
mod binary;
mod compare;
mod conv;
mod dropout;
pub(crate) mod index;
mod loss;
pub(crate) mod matmul;
mod movement;
mod norm;
mod pool;
pub(crate) mod reduce;
mod resize;
mod scan;
mod softmax;
mod sort;
mod to_dtype;
pub(crate) mod unary;

pub use attention::AttnMask;
pub use binary::{Add, BinaryFn, BinaryOp, BinaryVisitor, Div, Maximum, Minimum, Mul, Pow, Sub};
pub use compare::{CmpFn, CmpOp, CmpVisitor, EqOp, GeOp, GtOp, LeOp, LtOp, NeOp};
pub use conv::{Conv2dShape, ConvLen, ConvOpts, ConvTranspose2dShape, ConvTransposeLen, ConvTransposeOpts};
pub use matmul::MatMul;
pub use norm::{BatchStats, Merged3};
pub use pool::{Pool2dShape, PoolLen, PoolOpts};
pub use reduce::ReduceKind;
pub use resize::{Pad, PadMode};
pub use unary::{UnaryFn, UnaryOp, UnaryVisitor};
