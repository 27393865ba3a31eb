//! Shapes: tuples of dims, rank 0 to 6.

use super::dim::{ConstDim, Dim, static_mul};
use crate::compat::prelude::*;
use core::fmt::Debug;

/// The largest rank a shape may have.
pub const MAX_RANK: usize = 6;

/// A small fixed-capacity list of sizes or strides (at most [`MAX_RANK`] entries).
///
/// Kernels take `Dims` rather than typed shapes, so that eager ops, other devices and the export
/// runtime share them.
///
/// ```
/// use tensile::shapes::Dims;
/// let d = Dims::from_slice(&[2, 3, 4]);
/// assert_eq!(d.as_slice(), &[2, 3, 4]);
/// assert_eq!(d.numel(), 24);
/// assert_eq!(d.contiguous_strides().as_slice(), &[12, 4, 1]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dims {
    buf: [usize; MAX_RANK],
    len: u8,
}

impl Dims {
    /// Copies at most [`MAX_RANK`] values (panics on a longer slice: ranks are bounded by the types).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5]).len(), 2);
    /// ```
    pub fn from_slice(s: &[usize]) -> Self {
        assert!(s.len() <= MAX_RANK, "rank {} exceeds MAX_RANK", s.len());
        let mut buf = [0; MAX_RANK];
        buf[..s.len()].copy_from_slice(s);
        Self { buf, len: s.len() as u8 }
    }
    /// The values as a slice.
    #[inline]
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5]).as_slice(), &[4, 5]);
    /// ```
    pub fn as_slice(&self) -> &[usize] {
        &self.buf[..self.len as usize]
    }
    /// The values as a `Vec`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5]).to_vec(), vec![4, 5]);
    /// ```
    pub fn to_vec(&self) -> Vec<usize> {
        self.as_slice().to_vec()
    }
    /// The values as a mutable slice.
    #[inline]
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let mut d = Dims::from_slice(&[4, 5]);
    /// d.as_mut_slice()[0] = 7;
    /// assert_eq!(d.as_slice(), &[7, 5]);
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [usize] {
        &mut self.buf[..self.len as usize]
    }
    /// Number of entries (the rank).
    #[inline]
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5, 6]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// True for rank 0.
    #[inline]
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert!(Dims::from_slice(&[]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Product of the entries (1 for rank 0).
    #[inline]
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5]).numel(), 20);
    /// assert_eq!(Dims::from_slice(&[]).numel(), 1);
    /// ```
    pub fn numel(&self) -> usize {
        self.as_slice().iter().product()
    }
    /// Row-major strides for these sizes.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// assert_eq!(Dims::from_slice(&[4, 5]).contiguous_strides().as_slice(), &[5, 1]);
    /// ```
    pub fn contiguous_strides(&self) -> Dims {
        let mut out = *self;
        let mut acc = 1;
        for i in (0..self.len()).rev() {
            out.buf[i] = acc;
            acc *= self.buf[i];
        }
        out
    }
    /// Appends a value.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let mut d = Dims::from_slice(&[4]);
    /// d.push(5);
    /// assert_eq!(d.as_slice(), &[4, 5]);
    /// ```
    pub fn push(&mut self, v: usize) {
        assert!(self.len() < MAX_RANK, "rank exceeds MAX_RANK");
        self.buf[self.len as usize] = v;
        self.len += 1;
    }
}

impl core::ops::Index<usize> for Dims {
    type Output = usize;
    fn index(&self, i: usize) -> &usize {
        &self.as_slice()[i]
    }
}

impl core::ops::IndexMut<usize> for Dims {
    fn index_mut(&mut self, i: usize) -> &mut usize {
        &mut self.as_mut_slice()[i]
    }
}

impl Debug for Dims {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A tensor shape: a tuple of [`Dim`]s of rank 0 to 6.
///
/// ```
/// use tensile::prelude::*;
/// let s: (usize, Const<3>) = (5, Const);
/// assert_eq!(s.numel(), 15);
/// assert_eq!(s.dims().as_slice(), &[5, 3]);
/// assert_eq!(<Rank2<2, 3> as Shape>::NUMEL, Some(6));
/// assert_eq!(<(usize, Const<3>) as Shape>::NUMEL, None);
/// ```
pub trait Shape: 'static + Copy + Debug + PartialEq + Send + Sync {
    /// Number of dims.
    const RANK: usize;
    /// The element count when every dim is static.
    const NUMEL: Option<usize>;
    /// Each dim's static size (`None` for run-time dims and past the rank).
    const STATIC_DIMS: [Option<usize>; MAX_RANK];
    /// The sizes of the dims.
    fn dims(&self) -> Dims;
    /// Builds the shape from sizes; `None` if the rank differs or a static dim disagrees.
    fn from_dims(dims: &[usize]) -> Option<Self>;
    /// The element count.
    fn numel(&self) -> usize {
        self.dims().numel()
    }
    /// Row-major strides.
    fn strides(&self) -> Dims {
        self.dims().contiguous_strides()
    }
}

/// True when every dim that is static in both lists has the same size in both.
pub const fn static_dims_agree(a: &[Option<usize>; MAX_RANK], b: &[Option<usize>; MAX_RANK]) -> bool {
    let mut i = 0;
    while i < MAX_RANK {
        if let (Some(x), Some(y)) = (a[i], b[i])
            && x != y
        {
            return false;
        }
        i += 1;
    }
    true
}

/// A shape whose every dim is static; such a shape can be built from nothing.
///
/// ```
/// use tensile::prelude::*;
/// let s = <Rank2<2, 3> as ConstShape>::new();
/// assert_eq!(s.numel(), 6);
/// ```
pub trait ConstShape: Shape + Default {
    /// The compile-time element count.
    const NUMEL_CONST: usize;
    /// The shape value.
    fn new() -> Self {
        Self::default()
    }
}

macro_rules! impl_shape {
    ($rank:literal; $($D:ident $i:tt),*) => {
        impl<$($D: Dim),*> Shape for ($($D,)*) {
            const RANK: usize = $rank;
            const NUMEL: Option<usize> = {
                #[allow(unused_mut)]
                let mut n = Some(1);
                $(n = static_mul(n, $D::STATIC);)*
                n
            };
            #[allow(unused_mut)]
            const STATIC_DIMS: [Option<usize>; MAX_RANK] = {
                let mut d = [None; MAX_RANK];
                $(d[$i] = $D::STATIC;)*
                d
            };
            #[inline]
            fn dims(&self) -> Dims {
                Dims::from_slice(&[$(self.$i.size()),*])
            }
            #[allow(unused_variables)]
            fn from_dims(dims: &[usize]) -> Option<Self> {
                if dims.len() != $rank {
                    return None;
                }
                Some(($($D::from_size(dims[$i])?,)*))
            }
        }

        impl<$($D: ConstDim),*> ConstShape for ($($D,)*) {
            const NUMEL_CONST: usize = 1 $(* $D::SIZE)*;
        }
    };
}

impl_shape!(0;);
impl_shape!(1; D0 0);
impl_shape!(2; D0 0, D1 1);
impl_shape!(3; D0 0, D1 1, D2 2);
impl_shape!(4; D0 0, D1 1, D2 2, D3 3);
impl_shape!(5; D0 0, D1 1, D2 2, D3 3, D4 4);
impl_shape!(6; D0 0, D1 1, D2 2, D3 3, D4 4, D5 5);

use super::dim::Const;
/// A scalar shape.
pub type Rank0 = ();
/// A static rank-1 shape.
pub type Rank1<const A: usize> = (Const<A>,);
/// A static rank-2 shape.
pub type Rank2<const A: usize, const B: usize> = (Const<A>, Const<B>);
/// A static rank-3 shape.
pub type Rank3<const A: usize, const B: usize, const C: usize> = (Const<A>, Const<B>, Const<C>);
/// A static rank-4 shape.
pub type Rank4<const A: usize, const B: usize, const C: usize, const D: usize> =
    (Const<A>, Const<B>, Const<C>, Const<D>);
/// A static rank-5 shape.
pub type Rank5<const A: usize, const B: usize, const C: usize, const D: usize, const E: usize> =
    (Const<A>, Const<B>, Const<C>, Const<D>, Const<E>);
/// A static rank-6 shape.
pub type Rank6<const A: usize, const B: usize, const C: usize, const D: usize, const E: usize, const F: usize> =
    (Const<A>, Const<B>, Const<C>, Const<D>, Const<E>, Const<F>);
