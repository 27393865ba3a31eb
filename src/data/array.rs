//! What the file readers give: an n-dimensional array of elements in the file's own type.

use crate::error::{Error, Result};
use std::path::Path;

/// Reads the file at `path` and parses it; a malformed file's `Err` names the file.
pub(crate) fn read_file<T>(path: &Path, parse: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    parse(&crate::io::read(path)?).map_err(|e| match e {
        Error::Malformed { format, reason } => {
            Error::Malformed { format, reason: format!("{}: {reason}", path.display()) }
        }
        other => other,
    })
}

/// Elements in row-major order, in the type a file stored them.
#[derive(Clone, Debug, PartialEq)]
pub enum Elements {
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// 16-bit integers.
    I16(Vec<i16>),
    /// 32-bit integers.
    I32(Vec<i32>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
    /// Booleans.
    Bool(Vec<bool>),
}

impl Elements {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Elements::U8(v) => v.len(),
            Elements::I8(v) => v.len(),
            Elements::I16(v) => v.len(),
            Elements::I32(v) => v.len(),
            Elements::I64(v) => v.len(),
            Elements::F32(v) => v.len(),
            Elements::F64(v) => v.len(),
            Elements::Bool(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name (`"u8"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Elements::U8(_) => "u8",
            Elements::I8(_) => "i8",
            Elements::I16(_) => "i16",
            Elements::I32(_) => "i32",
            Elements::I64(_) => "i64",
            Elements::F32(_) => "f32",
            Elements::F64(_) => "f64",
            Elements::Bool(_) => "bool",
        }
    }
}

/// An array read from a file: its dims and its elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// The dims (`[60000, 28, 28]` for MNIST's training images).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Elements,
}

macro_rules! each_as {
    ($data:expr, $t:ty) => {
        match $data {
            Elements::U8(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::I8(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::I16(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::I32(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::I64(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::F32(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::F64(v) => v.iter().map(|&x| x as $t).collect(),
            Elements::Bool(v) => v.iter().map(|&x| u8::from(x) as $t).collect(),
        }
    };
}

impl Array {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every element as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        each_as!(&self.data, f32)
    }

    /// Every element as f64.
    pub fn to_f64(&self) -> Vec<f64> {
        each_as!(&self.data, f64)
    }

    /// Every element as an i64 label; `Err` for float elements.
    pub fn to_labels(&self) -> Result<Vec<i64>> {
        if matches!(self.data, Elements::F32(_) | Elements::F64(_)) {
            return Err(Error::Malformed {
                format: "labels",
                reason: "labels must be integers, the file has floats".into(),
            });
        }
        Ok(each_as!(&self.data, i64))
    }
}
