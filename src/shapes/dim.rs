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

/// The output length of a sliding window (convolution, pooling) along one axis, as PyTorch
/// computes it: `(input + 2 padding - dilation (kernel - 1) - 1) / stride + 1`. `None` when the
/// dilated kernel does not fit in the padded input, or the stride or dilation is 0.
///
/// ```
/// use tensile::shapes::window_out;
/// assert_eq!(window_out(28, 3, 1, 1, 1), Some(28));
/// assert_eq!(window_out(28, 2, 2, 0, 1), Some(14));
/// assert_eq!(window_out(2, 5, 1, 0, 1), None);
/// ```
pub const fn window_out(input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> Option<usize> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return None;
    }
    // Checked: sizes read from files can be anything.
    let span = match dilation.checked_mul(kernel - 1) {
        Some(s) if s < usize::MAX => s + 1,
        _ => return None,
    };
    let padded = match padding.checked_mul(2) {
        Some(p) => match input.checked_add(p) {
            Some(v) => v,
            None => return None,
        },
        None => return None,
    };
    if padded < span { None } else { Some((padded - span) / stride + 1) }
}

/// The output length of a transposed convolution along one axis:
/// `(input - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1`. `None` when
/// that is not positive, or when the output padding is not smaller than the stride or the
/// dilation (PyTorch's rule).
///
/// ```
/// use tensile::shapes::transposed_window_out;
/// assert_eq!(transposed_window_out(14, 2, 2, 0, 1, 0), Some(28));
/// assert_eq!(transposed_window_out(1, 1, 1, 1, 1, 0), None);
/// ```
pub const fn transposed_window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
) -> Option<usize> {
    if stride == 0 || dilation == 0 || kernel == 0 || input == 0 {
        return None;
    }
    if output_padding >= stride && output_padding >= dilation {
        return None;
    }
    let full = (input - 1) * stride + dilation * (kernel - 1) + output_padding + 1;
    if full <= 2 * padding { None } else { Some(full - 2 * padding) }
}

const fn all_static<const N: usize>(dims: [Option<usize>; N]) -> Option<[usize; N]> {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        match dims[i] {
            Some(d) => out[i] = d,
            None => return None,
        }
        i += 1;
    }
    Some(out)
}

/// [`window_out`] over static sizes; a build-time error when the window does not fit.
pub const fn static_window_out(
    input: Option<usize>,
    kernel: Option<usize>,
    stride: Option<usize>,
    padding: Option<usize>,
    dilation: Option<usize>,
) -> Option<usize> {
    let Some([i, k, s, p, d]) = all_static([input, kernel, stride, padding, dilation]) else { return None };
    match window_out(i, k, s, p, d) {
        Some(o) => Some(o),
        None => panic!(
            "conv/pool: the kernel (times the dilation) is larger than the padded input, or the stride or dilation \
             is 0 (see the sizes in the `ConvOut<input, kernel, stride, padding, dilation>` type of this error)"
        ),
    }
}

/// [`transposed_window_out`] over static sizes; a build-time error when it has no valid size.
pub const fn static_transposed_window_out(
    input: Option<usize>,
    kernel: Option<usize>,
    stride: Option<usize>,
    padding: Option<usize>,
    dilation: Option<usize>,
    output_padding: Option<usize>,
) -> Option<usize> {
    let Some([i, k, s, p, d, op]) = all_static([input, kernel, stride, padding, dilation, output_padding]) else {
        return None;
    };
    match transposed_window_out(i, k, s, p, d, op) {
        Some(o) => Some(o),
        None => panic!(
            "conv_transpose: the padding removes the whole output, or the output padding is not smaller than the \
             stride or dilation (see the sizes in the `ConvTransposeOut<..>` type of this error)"
        ),
    }
}

computed_dim!(
    /// The output length of a convolution or pooling window along one axis, from the input length
    /// `H`, the kernel `K` and the `Const` stride `S`, padding `P` and dilation `L`
    /// (see [`window_out`]). Static when `H` and `K` are; a kernel that does not fit is a build
    /// error then.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// type Out = ConvOut<Const<28>, Const<5>, Const<1>, Const<0>, Const<1>>;
    /// assert_eq!(<Out as Dim>::STATIC, Some(24));
    /// ```
    ConvOut<H, K, S, P, L> = static_window_out(H::STATIC, K::STATIC, S::STATIC, P::STATIC, L::STATIC)
);

computed_dim!(
    /// The output length of a transposed convolution along one axis, from the input length `H`,
    /// the kernel `K` and the `Const` stride `S`, padding `P`, dilation `L` and output padding
    /// `A` (see [`transposed_window_out`]).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// type Out = ConvTransposeOut<Const<14>, Const<2>, Const<2>, Const<0>, Const<1>, Const<0>>;
    /// assert_eq!(<Out as Dim>::STATIC, Some(28));
    /// ```
    ConvTransposeOut<H, K, S, P, L, A> =
        static_transposed_window_out(H::STATIC, K::STATIC, S::STATIC, P::STATIC, L::STATIC, A::STATIC)
);

/// `Some(a + b + c)` when all three are static.
pub const fn static_add3(a: Option<usize>, b: Option<usize>, c: Option<usize>) -> Option<usize> {
    static_add(static_add(a, b), c)
}

computed_dim!(
    /// The dim `H` padded by `B` before and `A` after (both `Const`), produced by `pad`. Static
    /// when `H` is.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(<Padded<Const<28>, Const<2>, Const<2>> as Dim>::STATIC, Some(32));
    /// ```
    Padded<H, B, A> = static_add3(H::STATIC, B::STATIC, A::STATIC)
);

/// `Some(a - b)` when both are static; a build error when `b > a`.
pub const fn static_sub(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) if b > a => panic!("split_at: the split point is past the end of the axis"),
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    }
}

computed_dim!(
    /// The dim `A - B`, the rest of an axis after `split_at`. Static when both are; a split
    /// point past the end is a build error then.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(<Diff<Const<10>, Const<3>> as Dim>::STATIC, Some(7));
    /// ```
    Diff<A, B> = static_sub(A::STATIC, B::STATIC)
);

/// `Some(a / b)` when both are static; a build error when `b` does not divide `a`.
pub const fn static_div(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) if b == 0 || a % b != 0 => {
            panic!("the groups do not divide the channels (see the `Quot<channels, groups>` type of this error)")
        }
        (Some(a), Some(b)) => Some(a / b),
        _ => None,
    }
}

computed_dim!(
    /// The dim `A / B`, channels per group of a grouped convolution's weight. Static when both
    /// are; a build error when `B` does not divide `A`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(<Quot<Const<12>, Const<3>> as Dim>::STATIC, Some(4));
    /// ```
    Quot<A, B> = static_div(A::STATIC, B::STATIC)
);
