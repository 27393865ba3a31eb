//! Element types: the four float types, integers and bool.

use crate::compat::prelude::*;
use core::fmt::{Debug, Display};
use half::{bf16, f16};

/// Any element type a tensor can hold.
///
/// ```
/// use tensile::prelude::*;
/// assert_eq!(<f32 as Dtype>::NAME, "float32");
/// assert_eq!(<bool as Dtype>::NAME, "bool");
/// ```
pub trait Dtype: 'static + Copy + Debug + Display + Default + PartialEq + PartialOrd + Send + Sync {
    /// The name PyTorch prints (without the `torch.` prefix).
    const NAME: &'static str;
    /// The value as f64 (true is 1).
    fn as_f64(self) -> f64;
    /// The value nearest to `v` (for integers: truncated and saturated; for bool: `v != 0`).
    fn cast_f64(v: f64) -> Self;
    /// Bytes per element in files (safetensors, export).
    const BYTES: usize;
    /// Appends the value's little-endian bytes (bool: one byte, 0 or 1).
    fn put_le(self, out: &mut Vec<u8>);
    /// The value from its [`Dtype::BYTES`] little-endian bytes (bool: any non-zero byte is true).
    fn from_le(bytes: &[u8]) -> Self;
    /// The type as a run-time tag (graphs, files).
    const DTYPE: DType;
}

/// An element type as a run-time value: what a traced graph, a file or a kernel dispatch needs
/// where the type itself is gone.
///
/// ```
/// use tensile::dtypes::{DType, Dtype};
/// assert_eq!(<f32 as Dtype>::DTYPE, DType::F32);
/// assert_eq!(DType::BF16.bytes(), 2);
/// assert!(DType::F16.is_float() && !DType::I64.is_float());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `half::f16`
    F16,
    /// `half::bf16`
    BF16,
    /// `i64`
    I64,
    /// `i32`
    I32,
    /// `u8`
    U8,
    /// `bool`
    Bool,
}

impl DType {
    /// Every tag, in the order of their codes ([`DType::code`]).
    pub const ALL: [DType; 8] =
        [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8, DType::Bool];
    /// Bytes per element.
    pub const fn bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }
    /// Whether this is one of the four float types.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }
    /// PyTorch's name (`"float32"`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }
    /// A one-byte code for files.
    pub const fn code(self) -> u8 {
        self as u8
    }
    /// The tag of a code; `None` for an unknown one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }
}

impl Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a little-endian byte slice as `N` bytes (the caller has sliced exactly `N`).
#[inline]
fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&bytes[..N]);
    a
}

/// The byte methods of [`Dtype`] for types with `to_le_bytes`/`from_le_bytes`.
macro_rules! le_bytes {
    ($t:ty) => {
        const BYTES: usize = core::mem::size_of::<$t>();
        #[inline]
        fn put_le(self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
        #[inline]
        fn from_le(bytes: &[u8]) -> Self {
            <$t>::from_le_bytes(le_array(bytes))
        }
    };
}

/// A floating-point element type: f32, f64, f16 or bf16. Every differentiable op works for all four.
///
/// Half types compute and accumulate in f32 ([`Float::Acc`]), as PyTorch does on CPU.
///
/// ```
/// use tensile::prelude::*;
/// fn double<E: Float>(x: E) -> E { x + x }
/// assert_eq!(double(half::bf16::from_f32(1.5)).as_f32(), 3.0);
/// ```
pub trait Float: Dtype + num_traits::Float + num_traits::FromPrimitive + core::iter::Sum {
    /// The type reductions and matmuls accumulate in.
    type Acc: Float;
    /// Widens to the accumulator type.
    fn to_acc(self) -> Self::Acc;
    /// Narrows from the accumulator type.
    fn from_acc(v: Self::Acc) -> Self;
    /// Converts to f32.
    fn as_f32(self) -> f32;
    /// Converts from f32.
    fn cast_f32(v: f32) -> Self;
    /// The default absolute/relative tolerance when comparing results in this dtype.
    const TOLERANCE: f64;
}

macro_rules! dtype_prim {
    ($t:ty, $name:literal, $tag:ident) => {
        impl Dtype for $t {
            const NAME: &'static str = $name;
            const DTYPE: DType = DType::$tag;
            #[inline]
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn cast_f64(v: f64) -> Self {
                v as $t
            }
            le_bytes!($t);
        }
    };
}
dtype_prim!(f32, "float32", F32);
dtype_prim!(f64, "float64", F64);
dtype_prim!(i32, "int32", I32);
dtype_prim!(i64, "int64", I64);
dtype_prim!(u8, "uint8", U8);

impl Dtype for bool {
    const NAME: &'static str = "bool";
    const DTYPE: DType = DType::Bool;
    fn as_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn cast_f64(v: f64) -> Self {
        v != 0.0
    }
    const BYTES: usize = 1;
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

impl Dtype for f16 {
    const NAME: &'static str = "float16";
    const DTYPE: DType = DType::F16;
    fn as_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn cast_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    le_bytes!(f16);
}

impl Dtype for bf16 {
    const NAME: &'static str = "bfloat16";
    const DTYPE: DType = DType::BF16;
    fn as_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn cast_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    le_bytes!(bf16);
}

impl Float for f32 {
    type Acc = f32;
    #[inline]
    fn to_acc(self) -> f32 {
        self
    }
    #[inline]
    fn from_acc(v: f32) -> Self {
        v
    }
    #[inline]
    fn as_f32(self) -> f32 {
        self
    }
    #[inline]
    fn cast_f32(v: f32) -> Self {
        v
    }
    const TOLERANCE: f64 = 1e-4;
}

impl Float for f64 {
    type Acc = f64;
    #[inline]
    fn to_acc(self) -> f64 {
        self
    }
    #[inline]
    fn from_acc(v: f64) -> Self {
        v
    }
    #[inline]
    fn as_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn cast_f32(v: f32) -> Self {
        v as f64
    }
    const TOLERANCE: f64 = 1e-6;
}

macro_rules! float_half {
    ($t:ty, $tol:expr) => {
        impl Float for $t {
            type Acc = f32;
            #[inline]
            fn to_acc(self) -> f32 {
                <$t>::to_f32(self)
            }
            #[inline]
            fn from_acc(v: f32) -> Self {
                <$t>::from_f32(v)
            }
            #[inline]
            fn as_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            #[inline]
            fn cast_f32(v: f32) -> Self {
                <$t>::from_f32(v)
            }
            const TOLERANCE: f64 = $tol;
        }
    };
}
float_half!(f16, 1e-2);
float_half!(bf16, 5e-2);

/// An integer element type that can index a tensor (PyTorch uses int64; int32 and uint8 work too).
///
/// ```
/// use tensile::dtypes::IndexDtype;
/// assert_eq!(3i64.to_index(), Some(3));
/// assert_eq!((-1i32).to_index(), None);
/// assert_eq!(<i64 as IndexDtype>::from_index(5), 5);
/// ```
pub trait IndexDtype: Dtype {
    /// The value as an index; `None` when negative.
    fn to_index(self) -> Option<usize>;
    /// The index as this type (saturating).
    fn from_index(i: usize) -> Self;
}

macro_rules! index_dtype {
    ($($t:ty),*) => {$(
        impl IndexDtype for $t {
            #[inline]
            fn to_index(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
            #[inline]
            fn from_index(i: usize) -> Self {
                <$t>::try_from(i).unwrap_or(<$t>::MAX)
            }
        }
    )*};
}
index_dtype!(i32, i64, u8);
