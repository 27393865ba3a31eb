//! The one error type of tensile: plain, structured, and naming the op.

use crate::compat::prelude::*;
use core::fmt;

/// Everything that can go wrong in a fallible (`try_*`) call.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let a: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(3,));
/// let b: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(4,));
/// let err = a.try_add(b).unwrap_err();
/// assert!(matches!(err, Error::ShapeMismatch { op: "add", .. }));
/// assert_eq!(err.to_string(), "add: shapes differ: [3] vs [4]");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two operands whose run-time sizes must agree do not.
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// The left (or first) shape.
        lhs: Vec<usize>,
        /// The right (or second) shape.
        rhs: Vec<usize>,
    },
    /// A run-time size does not fit the op (a reshape to another element count, a slice past the end).
    InvalidSize {
        /// The op.
        op: &'static str,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// An index is outside the axis it indexes.
    IndexOutOfRange {
        /// The op.
        op: &'static str,
        /// The index given (negative indices are out of range too).
        index: i64,
        /// The size of the axis.
        size: usize,
    },
    /// The data given does not have as many elements as the shape needs.
    DataLength {
        /// The op.
        op: &'static str,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        found: usize,
    },
    /// A value that must be finite is not (for example a loss, when asked to check).
    NonFinite {
        /// Where it was found.
        op: &'static str,
    },
    /// A gradient was asked for a tensor the backward pass did not reach.
    NoGradient,
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// A file or byte buffer is not valid in its format (truncated, wrong magic, bad header).
    Malformed {
        /// The format (`"safetensors"`, ..).
        format: &'static str,
        /// What is wrong and where.
        reason: String,
    },
    /// A saved state lacks a tensor the model has.
    MissingKey {
        /// The `state_dict` name.
        key: String,
    },
    /// A saved state has a tensor the model does not.
    UnexpectedKey {
        /// The `state_dict` name.
        key: String,
    },
    /// A saved tensor's shape differs from the model's.
    WrongShape {
        /// The `state_dict` name.
        key: String,
        /// The model's dims.
        expected: Vec<usize>,
        /// The saved dims.
        found: Vec<usize>,
    },
    /// A saved tensor's dtype differs from the model's.
    WrongDtype {
        /// The `state_dict` name.
        key: String,
        /// The model's dtype (PyTorch's name, `"float32"`).
        expected: &'static str,
        /// The saved dtype (as the file names it).
        found: String,
    },
    /// A graph is not consistent: a node's inputs do not fit its op, or a value is used before
    /// it is defined (a corrupted file, or a pass that broke it).
    InvalidGraph {
        /// The node's position in the graph (`None`: the graph's inputs, outputs or constants).
        node: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A device cannot be used: its libraries are missing, there is no such device, or its
    /// driver refused.
    Device {
        /// The device kind (`"cuda"`).
        device: &'static str,
        /// Why.
        reason: String,
    },
    /// An op cannot be traced into a graph (yet), or a value left the trace.
    Untraceable {
        /// The op.
        op: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ShapeMismatch { op, lhs, rhs } => {
                write!(f, "{op}: shapes differ: {lhs:?} vs {rhs:?}")
            }
            Error::InvalidSize { op, reason } => write!(f, "{op}: {reason}"),
            Error::IndexOutOfRange { op, index, size } => {
                write!(f, "{op}: index {index} is out of range for an axis of size {size}")
            }
            Error::DataLength { op, expected, found } => {
                write!(f, "{op}: the shape needs {expected} elements, {found} were given")
            }
            Error::NonFinite { op } => write!(f, "{op}: a non-finite value (NaN or infinity)"),
            Error::NoGradient => write!(f, "no gradient was recorded for this tensor"),
            Error::Io { path, reason } => write!(f, "{path}: {reason}"),
            Error::Malformed { format, reason } => write!(f, "malformed {format} data: {reason}"),
            Error::MissingKey { key } => write!(f, "the saved state has no `{key}`, which the model has"),
            Error::UnexpectedKey { key } => write!(f, "the saved state has `{key}`, which the model does not"),
            Error::WrongShape { key, expected, found } => {
                write!(f, "`{key}`: the model's shape is {expected:?}, the saved one {found:?}")
            }
            Error::WrongDtype { key, expected, found } => {
                write!(f, "`{key}`: the model's dtype is {expected}, the saved one {found}")
            }
            Error::InvalidGraph { node: Some(n), reason } => write!(f, "invalid graph: node {n}: {reason}"),
            Error::InvalidGraph { node: None, reason } => write!(f, "invalid graph: {reason}"),
            Error::Device { device, reason } => write!(f, "{device}: {reason}"),
            Error::Untraceable { op, reason } => write!(f, "cannot trace `{op}`: {reason}"),
        }
    }
}

impl core::error::Error for Error {}

/// `Result` with tensile's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
