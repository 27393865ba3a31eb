//! Data parallelism: rayon with `std`, the same calls run in order on one thread without it.
//!
//! Kernels write `x.par_chunks_mut(n).zip(..).for_each(..)` once. Under `std` those are rayon's
//! parallel iterators; in a `no_std` build they are [`Seq`], a wrapper over the ordinary
//! iterator with the subset of rayon's methods the kernels use (with rayon's signatures, so
//! `fold` takes an identity closure), so no kernel carries two copies of its loop.

#[cfg(feature = "std")]
pub(crate) use rayon::prelude::*;

/// Worker threads available to a kernel (1 without `std`).
pub(crate) fn threads() -> usize {
    #[cfg(feature = "std")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "std"))]
    {
        1
    }
}

/// The most items one task takes from a parallel iterator over heavy items (a convolution's
/// blocks of channels, tiles or images): one, so that a thread that runs out of work takes the
/// other threads' remaining items. Left to itself, rayon cuts a range into about as many pieces
/// as there are threads and cuts further only when a thread steals, so with 2 threads each
/// thread took about half the items up front. On a machine whose cores drift apart in speed
/// (this 2-core VM's do, by 10-20 % from one second to the next), the faster one then sat
/// idle at the end of each layer: 52 tiles of a 56x56 layer went 26 and 26, the threads busy
/// 2.1 and 1.7 ms; cut to single items, 28 and 24, busy 2.1 and 2.1 ms. ResNet-18 in the graph
/// runtime, alternating runs in one process: 6-8 % faster at batch 1, 3-6 % at batch 32.
pub(crate) const HEAVY_TASKS: usize = 1;

/// Runs `f` on a worker of the thread pool, at once when already on one. A caller outside the
/// pool hands each parallel kernel to the pool and sleeps until it ends, which costs two thread
/// wake-ups per kernel: a graph of many small kernels pays that at every node, where a worker
/// runs its kernels' first task itself and the other workers take the rest.
///
/// From outside the pool, the other workers also spin until `f` ends, taking tasks as they come
/// (what onnxruntime's threads do during a run), instead of falling asleep between two kernels
/// and waiting to be woken for the next: measured in-process, alternating runs of one graph
/// runtime with and without, ResNet-18 at batch 1 had a lower median in each of 5 rounds (by 1-2
/// %), and so did the digits CNN at batch 32.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "std")]
    {
        if rayon::current_thread_index().is_some() {
            return f();
        }
        let done = core::sync::atomic::AtomicBool::new(false);
        rayon::scope(|s| {
            let owner = rayon::current_thread_index();
            let done = &done;
            for _ in 1..rayon::current_num_threads() {
                s.spawn(move |_| {
                    // (a spinner left in `f`'s own queue, and run by its thread while it waits
                    // on a kernel, must not keep that thread from `f`)
                    if rayon::current_thread_index() == owner {
                        return;
                    }
                    while !done.load(core::sync::atomic::Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            core::hint::spin_loop();
                        }
                    }
                });
            }
            // set when `f` returns or unwinds: the spinners stop, and the scope (which waits
            // for them) ends
            let _end = Done(done);
            f()
        })
    }
    #[cfg(not(feature = "std"))]
    {
        f()
    }
}

/// Sets its flag when dropped: the end of [`on_pool`]'s work, panicking or not.
#[cfg(feature = "std")]
struct Done<'a>(&'a core::sync::atomic::AtomicBool);

#[cfg(feature = "std")]
impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, core::sync::atomic::Ordering::Release);
    }
}

/// The `gemm` crate's parallelism for `threads` threads (always sequential without `std`).
pub(crate) fn gemm_parallelism(threads: usize) -> gemm::Parallelism {
    #[cfg(feature = "std")]
    {
        if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None }
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = threads;
        gemm::Parallelism::None
    }
}

#[cfg(not(feature = "std"))]
pub(crate) use seq::*;

#[cfg(not(feature = "std"))]
mod seq {

    /// A sequential stand-in for a rayon parallel iterator.
    pub(crate) struct Seq<I>(I);

    impl<I: Iterator> IntoIterator for Seq<I> {
        type Item = I::Item;
        type IntoIter = I;
        fn into_iter(self) -> I {
            self.0
        }
    }

    impl<I: Iterator> Seq<I> {
        pub(crate) fn map<B, F: FnMut(I::Item) -> B>(self, f: F) -> Seq<core::iter::Map<I, F>> {
            Seq(self.0.map(f))
        }
        pub(crate) fn zip<J: IntoIterator>(self, other: J) -> Seq<core::iter::Zip<I, J::IntoIter>> {
            Seq(self.0.zip(other))
        }
        pub(crate) fn enumerate(self) -> Seq<core::iter::Enumerate<I>> {
            Seq(self.0.enumerate())
        }
        pub(crate) fn with_min_len(self, _len: usize) -> Self {
            self
        }
        pub(crate) fn with_max_len(self, _len: usize) -> Self {
            self
        }
        pub(crate) fn for_each<F: FnMut(I::Item)>(self, f: F) {
            self.0.for_each(f)
        }
        pub(crate) fn for_each_init<T, INIT: FnOnce() -> T, F: FnMut(&mut T, I::Item)>(self, init: INIT, mut f: F) {
            let mut state = init();
            self.0.for_each(|item| f(&mut state, item))
        }
        /// rayon's `fold`: one accumulator here, where rayon would make one per split.
        pub(crate) fn fold<T, ID: FnOnce() -> T, F: FnMut(T, I::Item) -> T>(
            self,
            identity: ID,
            f: F,
        ) -> Seq<core::iter::Once<T>> {
            Seq(core::iter::once(self.0.fold(identity(), f)))
        }
        /// rayon's `reduce`: `identity` seeds the fold.
        pub(crate) fn reduce<ID: FnOnce() -> I::Item, F: FnMut(I::Item, I::Item) -> I::Item>(
            self,
            identity: ID,
            op: F,
        ) -> I::Item {
            self.0.fold(identity(), op)
        }
        pub(crate) fn reduce_with<F: FnMut(I::Item, I::Item) -> I::Item>(self, f: F) -> Option<I::Item> {
            self.0.reduce(f)
        }
        pub(crate) fn collect<C: FromIterator<I::Item>>(self) -> C {
            self.0.collect()
        }
    }

    /// `into_par_iter` for anything iterable.
    pub(crate) trait IntoParallelIterator: IntoIterator + Sized {
        fn into_par_iter(self) -> Seq<Self::IntoIter> {
            Seq(self.into_iter())
        }
    }
    impl<T: IntoIterator> IntoParallelIterator for T {}

    /// `par_iter_mut`, `par_chunks` and `par_chunks_mut` on slices and vectors.
    pub(crate) trait ParallelSlice<T> {
        fn par_iter_mut(&mut self) -> Seq<core::slice::IterMut<'_, T>>;
        fn par_chunks(&self, n: usize) -> Seq<core::slice::Chunks<'_, T>>;
        fn par_chunks_mut(&mut self, n: usize) -> Seq<core::slice::ChunksMut<'_, T>>;
    }
    impl<T> ParallelSlice<T> for [T] {
        fn par_iter_mut(&mut self) -> Seq<core::slice::IterMut<'_, T>> {
            Seq(self.iter_mut())
        }
        fn par_chunks(&self, n: usize) -> Seq<core::slice::Chunks<'_, T>> {
            Seq(self.chunks(n))
        }
        fn par_chunks_mut(&mut self, n: usize) -> Seq<core::slice::ChunksMut<'_, T>> {
            Seq(self.chunks_mut(n))
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn on_pool_runs_kernels_and_ends_when_its_work_panics() {
        let sum: u64 = on_pool(|| (0..100_000u64).into_par_iter().map(|v| v % 7).sum());
        assert_eq!(sum, (0..100_000u64).map(|v| v % 7).sum::<u64>());
        // the spinners stop when the work unwinds, so the call returns the panic
        let caught = std::panic::catch_unwind(|| on_pool(|| -> u64 { panic!("inside the pool") }));
        assert!(caught.is_err());
        // and the pool still works afterwards
        assert_eq!(on_pool(|| (1..=100u64).into_par_iter().sum::<u64>()), 5050);
    }
}
