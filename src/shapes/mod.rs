//! Shapes in the type system.
//!
//! A shape is a tuple of [`Dim`]s: [`Const<N>`] when the size is known at compile time, `usize`
//! when it is known only at run time, or a computed dim ([`Sum`], [`Prod`]) whose size is a
//! `const` computed from other dims. The traits below map a shape to the shape an op produces
//! (reduce, permute, concat, ...), so output shapes are computed by the compiler.

mod axes;
mod dim;
mod generated;
mod shape;

pub use axes::{Axes, Axes2, Axes3, Axes4, Axes5, Axes6, Axis};
pub use dim::{
    Const, ConstDim, ConvOut, ConvTransposeOut, Diff, Dim, Padded, Prod, Quot, Sum, static_add, static_add3,
    static_div, static_mul, static_sub, static_transposed_window_out, static_window_out, transposed_window_out,
    window_out,
};
pub use shape::{
    ConstShape, Dims, MAX_RANK, Rank0, Rank1, Rank2, Rank3, Rank4, Rank5, Rank6, Shape, static_dims_agree,
};

/// The shape left after removing the axes `Ax` (a reduction, or `select` along one axis).
///
/// ```
/// use tensile::prelude::*;
/// let s: (Const<2>, usize, Const<4>) = (Const, 3, Const);
/// let r: (Const<2>, Const<4>) = ReduceShape::<Axis<1>>::reduced(&s);
/// assert_eq!(r.dims().as_slice(), &[2, 4]);
/// ```
#[diagnostic::on_unimplemented(
    message = "shape `{Self}` has no axes `{Ax}` to reduce over",
    label = "reduction (sum/mean/max/min/var/std/logsumexp/softmax/broadcast) over an axis this shape does not have",
    note = "axes are numbered from 0 and listed in increasing order, e.g. `Axes2<0, 2>`"
)]
pub trait ReduceShape<Ax: Axes>: Shape {
    /// The shape without the axes.
    type Reduced: Shape;
    /// The value of the reduced shape.
    fn reduced(&self) -> Self::Reduced;
}

/// `Self` reduced over `Ax` is `Dst`: lets a caller name either the axes or the result.
///
/// ```
/// use tensile::prelude::*;
/// fn takes<S: ReduceShapeTo<Rank1<2>, Axis<1>>>() {}
/// takes::<Rank2<2, 3>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "shape `{Self}` cannot be reduced to `{Dst}` over axes `{Ax}`",
    label = "the reduced shape or the axes do not match this shape"
)]
pub trait ReduceShapeTo<Dst, Ax>: Shape {
    /// The value of the reduced shape.
    fn reduced_to(&self) -> Dst;
}

/// The shape with its axes reordered by the permutation `Ax`.
///
/// ```
/// use tensile::prelude::*;
/// let p: Rank3<4, 2, 3> = PermuteShape::<Axes3<2, 0, 1>>::permuted(&<Rank3<2, 3, 4>>::default());
/// assert_eq!(p.dims().as_slice(), &[4, 2, 3]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Ax}` is not a permutation of the axes of shape `{Self}`",
    label = "permute needs every axis of the shape exactly once (ranks 2 to 5)"
)]
pub trait PermuteShape<Ax: Axes>: Shape {
    /// The permuted shape.
    type Permuted: Shape;
    /// Its value.
    fn permuted(&self) -> Self::Permuted;
}

/// The shape of concatenating `Self` and `Rhs` along `Ax`: the axis becomes [`Sum`]; every
/// other dim must have the same type in both.
///
/// ```
/// use tensile::prelude::*;
/// let s = ConcatShape::<Rank2<5, 3>, Axis<0>>::concat_shape(&<Rank2<2, 3>>::default(), &Default::default());
/// assert_eq!(s.dims().as_slice(), &[7, 3]);
/// ```
#[diagnostic::on_unimplemented(
    message = "concat: cannot concatenate shape `{Self}` with `{Rhs}` along `{Ax}`",
    label = "every dim other than the concat axis must be the same in both shapes"
)]
pub trait ConcatShape<Rhs, Ax>: Shape {
    /// The concatenated shape.
    type Output: Shape;
    /// Its value.
    fn concat_shape(&self, rhs: &Rhs) -> Self::Output;
}

/// The shape with the dim at `Ax` replaced by `New` (narrow, slice).
///
/// ```
/// use tensile::prelude::*;
/// let s = ReplaceDim::<Axis<1>, usize>::replace(&<Rank2<2, 9>>::default(), 4);
/// assert_eq!(s.dims().as_slice(), &[2, 4]);
/// ```
#[diagnostic::on_unimplemented(
    message = "shape `{Self}` has no axis `{Ax}`",
    label = "the axis is out of range for this shape"
)]
pub trait ReplaceDim<Ax, New: Dim>: Shape {
    /// The shape with the dim replaced.
    type Output: Shape;
    /// Its value.
    fn replace(&self, new: New) -> Self::Output;
}

/// The shape with a new leading dim (stack).
///
/// ```
/// use tensile::prelude::*;
/// let s = PrependDim::<Const<3>>::prepend(&<Rank1<2>>::default(), Const);
/// assert_eq!(s.dims().as_slice(), &[3, 2]);
/// ```
pub trait PrependDim<New: Dim>: Shape {
    /// The longer shape.
    type Output: Shape;
    /// Its value.
    fn prepend(&self, new: New) -> Self::Output;
}

/// The shape with every axis after the first merged into one computed dim: `(B, C, H, W)` becomes
/// `(B, Prod<C, Prod<H, W>>)`, static when `C`, `H` and `W` are (PyTorch's `flatten(1)`).
///
/// ```
/// use tensile::prelude::*;
/// let f = FlattenShape::flattened(&<Rank4<8, 64, 5, 5>>::default());
/// assert_eq!(f.dims().as_slice(), &[8, 1600]);
/// assert_eq!(<<Rank4<8, 64, 5, 5> as FlattenShape>::Flattened as Shape>::NUMEL, Some(12800));
/// ```
pub trait FlattenShape: Shape {
    /// The flattened shape.
    type Flattened: Shape;
    /// Its value.
    fn flattened(&self) -> Self::Flattened;
}

/// The shape with a new trailing dim (one-hot encoding, embedding lookup).
///
/// ```
/// use tensile::prelude::*;
/// let s = AppendDim::<Const<3>>::append(&<Rank1<2>>::default(), Const);
/// assert_eq!(s.dims().as_slice(), &[2, 3]);
/// ```
pub trait AppendDim<New: Dim>: Shape {
    /// The longer shape.
    type Output: Shape;
    /// Its value.
    fn append(&self, new: New) -> Self::Output;
}

macro_rules! append_dim {
    ($($d:ident $i:tt),*) => {
        impl<$($d: Dim,)* New: Dim> AppendDim<New> for ($($d,)*) {
            type Output = ($($d,)* New,);
            fn append(&self, new: New) -> Self::Output {
                ($(self.$i,)* new,)
            }
        }
    };
}
append_dim!();
append_dim!(D0 0);
append_dim!(D0 0, D1 1);
append_dim!(D0 0, D1 1, D2 2);
append_dim!(D0 0, D1 1, D2 2, D3 3);
append_dim!(D0 0, D1 1, D2 2, D3 3, D4 4);

/// The last dim of a shape (the features a layer norm normalises over).
///
/// ```
/// use tensile::prelude::*;
/// let d: Const<4> = LastDim::last(&<Rank3<2, 3, 4>>::default());
/// assert_eq!(d.size(), 4);
/// ```
pub trait LastDim: Shape {
    /// The last dim's type.
    type Last: Dim;
    /// Its value.
    fn last(&self) -> Self::Last;
}

macro_rules! last_dim {
    ($($d:ident),* ; $l:ident $i:tt) => {
        impl<$($d: Dim,)* $l: Dim> LastDim for ($($d,)* $l,) {
            type Last = $l;
            fn last(&self) -> $l {
                self.$i
            }
        }
    };
}
last_dim!(; D0 0);
last_dim!(D0; D1 1);
last_dim!(D0, D1; D2 2);
last_dim!(D0, D1, D2; D3 3);
last_dim!(D0, D1, D2, D3; D4 4);
last_dim!(D0, D1, D2, D3, D4; D5 5);

/// The dim at axis `Ax` (split_at and other ops that compute one axis's new size from the old).
///
/// ```
/// use tensile::prelude::*;
/// let d: Const<3> = AxisDim::<Axis<1>>::at(&<Rank3<2, 3, 4>>::default());
/// assert_eq!(d.size(), 3);
/// ```
#[diagnostic::on_unimplemented(
    message = "shape `{Self}` has no axis `{Ax}`",
    label = "the axis is out of range for this shape"
)]
pub trait AxisDim<Ax>: Shape {
    /// The dim's type.
    type At: Dim;
    /// Its value.
    fn at(&self) -> Self::At;
}
