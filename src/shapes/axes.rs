//! Typed axes, used by reductions, broadcasts, permutations and concat.

/// A set of axes known at compile time.
///
/// ```
/// use tensile::prelude::*;
/// assert_eq!(<Axes2<0, 2> as Axes>::LIST, &[0, 2]);
/// assert_eq!(<Axis<1> as Axes>::LIST, &[1]);
/// ```
pub trait Axes: 'static + Copy + Default + Send + Sync {
    /// The axes, in the order given.
    const LIST: &'static [usize];
}

/// One axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Axis<const I: usize>;
impl<const I: usize> Axes for Axis<I> {
    const LIST: &'static [usize] = &[I];
}

macro_rules! axes_n {
    ($(#[$doc:meta])* $name:ident; $($c:ident),+) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name<$(const $c: usize),+>;
        impl<$(const $c: usize),+> Axes for $name<$($c),+> {
            const LIST: &'static [usize] = &[$($c),+];
        }
    };
}
axes_n!(/// Two axes.
    Axes2; I, J);
axes_n!(/// Three axes.
    Axes3; I, J, K);
axes_n!(/// Four axes.
    Axes4; I, J, K, L);
axes_n!(/// Five axes.
    Axes5; I, J, K, L, M);
axes_n!(/// Six axes.
    Axes6; I, J, K, L, M, N);
