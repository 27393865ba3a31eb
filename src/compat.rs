//! What `std` gives the rest of the crate, also without `std`: the `alloc` names the prelude
//! would bring, hash maps, and a mutex (spinning, where there are no OS threads to park).

pub(crate) use prelude::*;

/// The `alloc` part of the std prelude, glob-imported by each module that allocates.
pub(crate) mod prelude {
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

pub(crate) use hashbrown::{HashMap, HashSet};

/// A mutex whose `lock` cannot fail: a lock poisoned by a panic elsewhere still hands out its
/// data (as `parking_lot` does), since every value kept behind one here stays consistent.
#[derive(Default)]
pub(crate) struct Mutex<T> {
    #[cfg(feature = "std")]
    inner: std::sync::Mutex<T>,
    #[cfg(not(feature = "std"))]
    inner: spin::Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        #[cfg(feature = "std")]
        let inner = std::sync::Mutex::new(value);
        #[cfg(not(feature = "std"))]
        let inner = spin::Mutex::new(value);
        Self { inner }
    }

    pub(crate) fn lock(&self) -> impl core::ops::DerefMut<Target = T> + '_ {
        #[cfg(feature = "std")]
        {
            self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        #[cfg(not(feature = "std"))]
        {
            self.inner.lock()
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex").finish_non_exhaustive()
    }
}

/// The f64 functions `std` gives as methods, as functions that also exist without `std`:
/// num-traits picks `std`'s with the `std` feature and `libm`'s without, in one place.
pub(crate) mod math {
    use num_traits::Float;

    macro_rules! forward {
        ($($name:ident),*) => {$(
            #[inline]
            pub(crate) fn $name(x: f64) -> f64 {
                Float::$name(x)
            }
        )*};
    }
    forward!(sqrt, cos, floor, fract);

    /// `x` to an integer power.
    #[inline]
    pub(crate) fn powi(x: f64, n: i32) -> f64 {
        Float::powi(x, n)
    }
}
