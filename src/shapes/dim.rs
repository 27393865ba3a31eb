//! Dimensions: compile-time [`Const<N>`], run-time `usize`, and computed dims.

use core::fmt::Debug;

/// One dimension of a shape.
///
/// A dim is either known at compile time ([`Const<N>`]), known only at run time (`usize`), or
/// computed from other dims by an op (for example [`Sum<A, B>`] from a concat). `STATIC` is the
/// compile-time size where there is one.
///
/// ```
/// use tensile::prelude::*;
/// assert_eq!(<Const<3> as Dim>::STATIC, Some(3));
/// assert_eq!(<usize as Dim>::STATIC, None);
/// assert_eq!(Const::<3>.size(), 3);
/// assert_eq!(7usize.size(), 7);
/// ```
pub trait Dim: 'static + Copy + Debug + PartialEq + Send + Sync {
    /// The size when it is known at compile time.
    const STATIC: Option<usize>;
    /// The size of this dim.
    fn size(&self) -> usize;
    /// Builds the dim from a run-time size; `None` when the size differs from a static size.
    fn from_size(size: usize) -> Option<Self>;
}

/// A dim whose size is fixed at compile time.
///
/// ```
/// use tensile::prelude::*;
/// assert_eq!(<Const<5> as ConstDim>::SIZE, 5);
/// ```
pub trait ConstDim: Dim + Default {
    /// The compile-time size.
    const SIZE: usize;
}

/// A dimension whose size `N` is part of the type.
///
/// ```
/// use tensile::prelude::*;
/// let d: Const<784> = Const;
/// assert_eq!(d.size(), 784);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Const<const N: usize>;

impl<const N: usize> Dim for Const<N> {
    const STATIC: Option<usize> = Some(N);
    #[inline]
    fn size(&self) -> usize {
        N
    }
    #[inline]
    fn from_size(size: usize) -> Option<Self> {
        (size == N).then_some(Const)
    }
}

impl<const N: usize> ConstDim for Const<N> {
    const SIZE: usize = N;
}

impl Dim for usize {
    const STATIC: Option<usize> = None;
    #[inline]
    fn size(&self) -> usize {
        *self
    }
    #[inline]
    fn from_size(size: usize) -> Option<Self> {
        Some(size)
    }
}

/// `Some(a + b)` when both are static.
pub const fn static_add(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    }
}

/// `Some(a * b)` when both are static.
pub const fn static_mul(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a * b),
        _ => None,
    }
}

/// Declares a computed dim type: a struct that stores its run-time size and whose `STATIC` size
/// is a `const` expression over the dims it is computed from. Conv/pool output dims (issue
/// "op coverage") are declared the same way.
macro_rules! computed_dim {
    ($(#[$doc:meta])* $name:ident<$($p:ident),+> = $static:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name<$($p),+> {
            size: usize,
            _dims: core::marker::PhantomData<fn() -> ($($p,)+)>,
        }

        impl<$($p: Dim),+> $name<$($p),+> {
            /// Wraps a size computed at run time (checked against the static size in debug).
            pub fn new(size: usize) -> Self {
                debug_assert!(<Self as Dim>::STATIC.is_none_or(|s| s == size));
                Self { size, _dims: core::marker::PhantomData }
            }
        }

        impl<$($p: Dim),+> Dim for $name<$($p),+> {
            const STATIC: Option<usize> = $static;
            #[inline]
            fn size(&self) -> usize {
                self.size
            }
            fn from_size(size: usize) -> Option<Self> {
                match Self::STATIC {
                    Some(s) if s != size => None,
                    _ => Some(Self::new(size)),
                }
            }
        }

        impl<$($p: ConstDim),+> Default for $name<$($p),+> {
            fn default() -> Self {
                Self::new(<Self as ConstDim>::SIZE)
            }
        }

        impl<$($p: ConstDim),+> ConstDim for $name<$($p),+> {
            const SIZE: usize = match <Self as Dim>::STATIC {
                Some(s) => s,
                None => panic!("a computed dim of static dims is static"),
            };
        }
    };
}

computed_dim!(
    /// The dim `A + B`, produced by `concat` along an axis. Static when both parts are.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(<Sum<Const<2>, Const<5>> as Dim>::STATIC, Some(7));
    /// assert_eq!(<Sum<Const<2>, usize> as Dim>::STATIC, None);
    /// ```
    Sum<A, B> = static_add(A::STATIC, B::STATIC)
);

computed_dim!(
    /// The dim `A * B`, produced by flattening two axes into one. Static when both parts are.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(<Prod<Const<4>, Const<8>> as Dim>::STATIC, Some(32));
    /// ```
    Prod<A, B> = static_mul(A::STATIC, B::STATIC)
);
