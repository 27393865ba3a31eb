//! Data loading, as PyTorch's `torch.utils.data`: a [`Dataset`] gives samples by index,
//! adapters transform, subset, split and concatenate datasets, and a [`DataLoader`] batches
//! them into tensors, shuffled reproducibly, with worker threads and bounded prefetch, in the
//! same order whatever the number of workers.
//!
//! ```
//! use tensile::prelude::*;
//! use tensile::data::{DataLoader, Dataset, InMemory};
//!
//! let dev = Cpu::seeded(0);
//! let samples: Vec<(Tensor<Rank1<2>, f32, Cpu>, i64)> =
//!     (0..10).map(|i| (dev.tensor([i as f32, -(i as f32)]), i % 2)).collect();
//! let loader = DataLoader::new(InMemory::new(samples), 4).shuffle(7).workers(2);
//! let mut seen = 0;
//! for batch in loader.epoch(0) {
//!     let (x, y) = batch.unwrap();            // x: (batch, 2) f32, y: (batch,) i64
//!     assert_eq!(x.dims()[0], y.dims()[0]);
//!     seen += y.numel();
//! }
//! assert_eq!((seen, loader.len()), (10, 3));  // the last batch of 2 is kept
//! ```

pub mod array;
pub mod csv;
pub mod idx;
mod loader;
pub mod mnist;
pub mod npy;
mod progress;
pub mod transforms;

pub use loader::{Batches, Collate, DataLoader, Sampler, StaticBatch};
pub use progress::Progress;

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Samples by index (PyTorch's map-style `Dataset`).
pub trait Dataset: Send + Sync + 'static {
    /// One sample.
    type Item: Send + 'static;
    /// The number of samples.
    fn len(&self) -> usize;
    /// Sample `index`; `Err` when it is out of range or the sample cannot be made.
    fn get(&self, index: usize) -> Result<Self::Item>;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Told by the loader before each epoch, so random transforms differ between epochs (and
    /// stay reproducible). Adapters pass it on.
    fn set_epoch(&self, epoch: usize) {
        let _ = epoch;
    }
}

fn out_of_range(index: usize, size: usize) -> Error {
    Error::IndexOutOfRange { op: "dataset", index: index as i64, size }
}

impl<D: Dataset> Dataset for Arc<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> Result<D::Item> {
        (**self).get(index)
    }
    fn set_epoch(&self, epoch: usize) {
        (**self).set_epoch(epoch)
    }
}

/// Samples held in memory (PyTorch's `TensorDataset`, for any sample type).
#[derive(Clone, Debug)]
pub struct InMemory<T>(Arc<Vec<T>>);

impl<T> InMemory<T> {
    /// The samples, in order.
    pub fn new(samples: Vec<T>) -> Self {
        Self(Arc::new(samples))
    }
}

impl<T: Clone + Send + Sync + 'static> Dataset for InMemory<T> {
    type Item = T;
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, index: usize) -> Result<T> {
        self.0.get(index).cloned().ok_or_else(|| out_of_range(index, self.0.len()))
    }
}

/// Every sample through a function (`dataset.map(f)`).
pub struct Map<D, F> {
    inner: D,
    f: F,
}

impl<D: Dataset, T: Send + 'static, F: Fn(D::Item) -> Result<T> + Send + Sync + 'static> Dataset for Map<D, F> {
    type Item = T;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> Result<T> {
        (self.f)(self.inner.get(index)?)
    }
    fn set_epoch(&self, epoch: usize) {
        self.inner.set_epoch(epoch)
    }
}

/// Every sample through a random function whose generator is seeded from the seed, the epoch
/// and the sample's index: data augmentation that is reproducible and independent of which
/// worker makes the sample.
pub struct RandomMap<D, F> {
    inner: D,
    f: F,
    seed: u64,
    epoch: AtomicUsize,
}

impl<D: Dataset, T: Send + 'static, F> Dataset for RandomMap<D, F>
where
    F: Fn(D::Item, &mut StdRng) -> Result<T> + Send + Sync + 'static,
{
    type Item = T;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> Result<T> {
        let epoch = self.epoch.load(Ordering::Relaxed) as u64;
        let mut rng = StdRng::seed_from_u64(mix(mix(self.seed, epoch), index as u64));
        (self.f)(self.inner.get(index)?, &mut rng)
    }
    fn set_epoch(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::Relaxed);
        self.inner.set_epoch(epoch)
    }
}

/// SplitMix64's finaliser: a well-spread seed from two numbers.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The samples at some indices of a dataset (`torch.utils.data.Subset`).
pub struct Subset<D> {
    inner: Arc<D>,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// `indices` of `inner`; `Err` when one is out of range.
    pub fn new(inner: Arc<D>, indices: Vec<usize>) -> Result<Self> {
        let n = inner.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(out_of_range(bad, n));
        }
        Ok(Self { inner, indices })
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    type Item = D::Item;
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<D::Item> {
        let &i = self.indices.get(index).ok_or_else(|| out_of_range(index, self.indices.len()))?;
        self.inner.get(i)
    }
    fn set_epoch(&self, epoch: usize) {
        self.inner.set_epoch(epoch)
    }
}

/// One dataset after another (`ConcatDataset`).
pub struct Concat<A, B>(pub A, pub B);

impl<A: Dataset, B: Dataset<Item = A::Item>> Dataset for Concat<A, B> {
    type Item = A::Item;
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
    fn get(&self, index: usize) -> Result<A::Item> {
        let n = self.0.len();
        if index < n { self.0.get(index) } else { self.1.get(index - n).map_err(|_| out_of_range(index, self.len())) }
    }
    fn set_epoch(&self, epoch: usize) {
        self.0.set_epoch(epoch);
        self.1.set_epoch(epoch);
    }
}

/// Methods every dataset has.
pub trait DatasetExt: Dataset + Sized {
    /// Each sample through `f`.
    fn map<T, F: Fn(Self::Item) -> Result<T>>(self, f: F) -> Map<Self, F> {
        Map { inner: self, f }
    }
    /// Each sample through a random `f` (augmentation), reproducible from `seed`.
    fn random_map<T, F: Fn(Self::Item, &mut StdRng) -> Result<T>>(self, seed: u64, f: F) -> RandomMap<Self, F> {
        RandomMap { inner: self, f, seed, epoch: AtomicUsize::new(0) }
    }
}

impl<D: Dataset> DatasetExt for D {}

/// Splits `dataset` into parts of the given `lengths` (summing to its length) at random,
/// reproducibly from `seed` (`torch.utils.data.random_split`).
///
/// ```
/// use tensile::data::{random_split, Dataset, InMemory};
/// let parts = random_split(InMemory::new((0..10).collect::<Vec<i32>>()), &[8, 2], 0).unwrap();
/// assert_eq!((parts[0].len(), parts[1].len()), (8, 2));
/// let mut all: Vec<i32> = parts.iter().flat_map(|p| (0..p.len()).map(|i| p.get(i).unwrap())).collect();
/// all.sort();
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// ```
pub fn random_split<D: Dataset>(dataset: D, lengths: &[usize], seed: u64) -> Result<Vec<Subset<D>>> {
    let n = dataset.len();
    let total: usize = lengths.iter().sum();
    if total != n {
        return Err(Error::InvalidSize {
            op: "random_split",
            reason: format!("lengths sum to {total}, the dataset has {n}"),
        });
    }
    let order = loader::permutation(n, seed);
    let inner = Arc::new(dataset);
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let part = Subset::new(inner.clone(), order[start..start + len].to_vec());
            start += len;
            part
        })
        .collect()
}

/// Samples as a stream (PyTorch's `IterableDataset`): for data that is read in order, such as
/// a file too large to index. Batch it with [`batched`].
pub trait IterableDataset: Send + Sync {
    /// One sample.
    type Item: Send + 'static;
    /// The samples of epoch `epoch`, in order.
    fn iter(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Self::Item>> + Send + '_>;
}

/// Consecutive samples of a stream in batches of `batch_size` (the last may be shorter),
/// collated into tensors; a sample's `Err` ends its batch with that `Err`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::data::{batched, IterableDataset};
/// struct Counting;
/// impl IterableDataset for Counting {
///     type Item = (Tensor<Rank1<1>, f32, Cpu>, i64);
///     fn iter(&self, _: usize) -> Box<dyn Iterator<Item = Result<Self::Item>> + Send + '_> {
///         Box::new((0..5).map(|i| Ok((Cpu::seeded(0).tensor([i as f32]), i))))
///     }
/// }
/// let sizes: Vec<usize> = batched(Counting.iter(0), 2).map(|b| b.unwrap().1.numel()).collect();
/// assert_eq!(sizes, [2, 2, 1]);
/// ```
pub fn batched<T: Collate>(
    mut samples: impl Iterator<Item = Result<T>>,
    batch_size: usize,
) -> impl Iterator<Item = Result<T::Batch>> {
    let size = batch_size.max(1);
    std::iter::from_fn(move || {
        let mut items = Vec::with_capacity(size);
        for sample in samples.by_ref() {
            match sample {
                Ok(item) => items.push(item),
                Err(e) => return Some(Err(e)),
            }
            if items.len() == size {
                break;
            }
        }
        (!items.is_empty()).then(|| T::collate(items))
    })
}
