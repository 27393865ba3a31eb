//! The `DataLoader`: samplers, batching, collation into tensors, worker threads.

use super::{Dataset, mix};
use crate::device::{Cpu, Device};
use crate::dtypes::Dtype;
use crate::error::{Error, Result};
use crate::shapes::{PrependDim, Shape};
use crate::tensor::{Tensor, TensorFactory};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Samples gathered into one batch: tensors stacked along a new leading (run-time) batch dim,
/// labels into a vector, tuples element by element.
pub trait Collate: Sized + Send + 'static {
    /// The batch.
    type Batch: Send + 'static;
    /// The batch of `items` (at least one); `Err` when their shapes differ.
    fn collate(items: Vec<Self>) -> Result<Self::Batch>;
}

impl<S: Shape + PrependDim<usize>, E: Dtype, D: Device> Collate for Tensor<S, E, D> {
    type Batch = Tensor<S::Output, E, D>;
    fn collate(items: Vec<Self>) -> Result<Self::Batch> {
        let first =
            items.first().ok_or_else(|| Error::InvalidSize { op: "collate", reason: "an empty batch".into() })?;
        let (shape, dev) = (*first.shape(), first.device().clone());
        let mut data = Vec::with_capacity(shape.numel() * items.len());
        for t in &items {
            if *t.shape() != shape {
                return Err(Error::ShapeMismatch { op: "collate", lhs: shape.dims().to_vec(), rhs: t.dims().to_vec() });
            }
            data.extend(t.to_vec());
        }
        dev.try_from_vec(data, shape.prepend(items.len()))
    }
}

macro_rules! collate_scalars {
    ($($t:ty),*) => {$(
        impl Collate for $t {
            type Batch = Tensor<(usize,), $t, Cpu>;
            fn collate(items: Vec<Self>) -> Result<Self::Batch> {
                let n = items.len();
                Cpu::default().try_from_vec(items, (n,))
            }
        }
    )*};
}
collate_scalars!(i64, i32, u8, f32, f64);

impl<A: Collate, B: Collate> Collate for (A, B) {
    type Batch = (A::Batch, B::Batch);
    fn collate(items: Vec<Self>) -> Result<Self::Batch> {
        let (a, b): (Vec<A>, Vec<B>) = items.into_iter().unzip();
        Ok((A::collate(a)?, B::collate(b)?))
    }
}

impl<A: Collate, B: Collate, C: Collate> Collate for (A, B, C) {
    type Batch = (A::Batch, B::Batch, C::Batch);
    fn collate(items: Vec<Self>) -> Result<Self::Batch> {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for (x, y, z) in items {
            a.push(x);
            b.push(y);
            c.push(z);
        }
        Ok((A::collate(a)?, B::collate(b)?, C::collate(c)?))
    }
}

/// The order in which samples are drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// `0, 1, .., n - 1`.
    Sequential,
    /// A permutation, different each epoch, reproducible from the seed.
    Random {
        /// The seed.
        seed: u64,
    },
    /// `num_samples` draws with replacement, sample `i` with probability `weights[i] / Σ
    /// weights` (`WeightedRandomSampler`).
    Weighted {
        /// One non-negative weight per sample.
        weights: Vec<f64>,
        /// Draws per epoch.
        num_samples: usize,
        /// The seed.
        seed: u64,
    },
}

/// A permutation of `0..n` from `seed` (Fisher-Yates).
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

impl Sampler {
    /// This epoch's sample indices for a dataset of `n`; `Err` for weights that do not fit.
    pub fn indices(&self, n: usize, epoch: usize) -> Result<Vec<usize>> {
        match self {
            Sampler::Sequential => Ok((0..n).collect()),
            Sampler::Random { seed } => Ok(permutation(n, mix(*seed, epoch as u64))),
            Sampler::Weighted { weights, num_samples, seed } => {
                if weights.len() != n {
                    return Err(Error::ShapeMismatch {
                        op: "weighted sampler",
                        lhs: vec![n],
                        rhs: vec![weights.len()],
                    });
                }
                let mut cumulative = Vec::with_capacity(n);
                let mut total = 0.0;
                for &w in weights {
                    if !(w >= 0.0 && w.is_finite()) {
                        return Err(Error::InvalidSize { op: "weighted sampler", reason: format!("weight {w}") });
                    }
                    total += w;
                    cumulative.push(total);
                }
                if total <= 0.0 {
                    return Err(Error::InvalidSize { op: "weighted sampler", reason: "every weight is 0".into() });
                }
                let mut rng = StdRng::seed_from_u64(mix(*seed, epoch as u64));
                Ok((0..*num_samples)
                    .map(|_| {
                        let u = rng.random::<f64>() * total;
                        cumulative.partition_point(|&c| c <= u).min(n - 1)
                    })
                    .collect())
            }
        }
    }
}

/// Batches of a dataset (`torch.utils.data.DataLoader`).
pub struct DataLoader<D: Dataset> {
    dataset: Arc<D>,
    batch_size: usize,
    sampler: Sampler,
    drop_last: bool,
    workers: usize,
    prefetch: usize,
}

impl<D: Dataset> DataLoader<D>
where
    D::Item: Collate,
{
    /// Batches of `batch_size` (at least 1) in order, made on the calling thread; the last
    /// batch may be shorter.
    pub fn new(dataset: D, batch_size: usize) -> Self {
        Self {
            dataset: Arc::new(dataset),
            batch_size: batch_size.max(1),
            sampler: Sampler::Sequential,
            drop_last: false,
            workers: 0,
            prefetch: 2,
        }
    }

    /// A new permutation each epoch, reproducible from `seed`.
    pub fn shuffle(self, seed: u64) -> Self {
        self.sampler(Sampler::Random { seed })
    }

    /// Draws samples as `sampler` says.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Drops a last batch shorter than the batch size.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Makes batches on `n` worker threads (0: on the calling thread). The order of batches and
    /// of samples in them does not depend on `n`.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Batches each worker may have ready ahead of the training loop (2).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches.max(1);
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The number of batches in an epoch.
    pub fn len(&self) -> usize {
        let n = self.samples_per_epoch();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
    }

    fn samples_per_epoch(&self) -> usize {
        match &self.sampler {
            Sampler::Weighted { num_samples, .. } => *num_samples,
            _ => self.dataset.len(),
        }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches of epoch `epoch` (which seeds the shuffle and the random transforms).
    pub fn epoch(&self, epoch: usize) -> Batches<D> {
        self.dataset.set_epoch(epoch);
        let order = match self.sampler.indices(self.dataset.len(), epoch) {
            Ok(order) => order,
            Err(e) => return Batches::failed(self.dataset.clone(), e),
        };
        let mut batches: Vec<Vec<usize>> = order.chunks(self.batch_size).map(<[usize]>::to_vec).collect();
        if self.drop_last && batches.last().is_some_and(|b| b.len() < self.batch_size) {
            batches.pop();
        }
        Batches::start(self.dataset.clone(), batches, self.workers, self.prefetch)
    }
}

fn make_batch<D: Dataset>(dataset: &D, indices: &[usize]) -> Result<<D::Item as Collate>::Batch>
where
    D::Item: Collate,
{
    let items = indices.iter().map(|&i| dataset.get(i)).collect::<Result<Vec<_>>>()?;
    D::Item::collate(items)
}

/// One epoch's batches, in order: `Ok(batch)` or the `Err` of a sample that could not be made.
pub struct Batches<D: Dataset>
where
    D::Item: Collate,
{
    dataset: Arc<D>,
    batches: Arc<Vec<Vec<usize>>>,
    next: usize,
    receivers: Vec<Receiver<Result<<D::Item as Collate>::Batch>>>,
    handles: Vec<JoinHandle<()>>,
    error: Option<Error>,
}

impl<D: Dataset> Batches<D>
where
    D::Item: Collate,
{
    fn failed(dataset: Arc<D>, e: Error) -> Self {
        Self {
            dataset,
            batches: Arc::new(Vec::new()),
            next: 0,
            receivers: Vec::new(),
            handles: Vec::new(),
            error: Some(e),
        }
    }

    fn start(dataset: Arc<D>, batches: Vec<Vec<usize>>, workers: usize, prefetch: usize) -> Self {
        let batches = Arc::new(batches);
        let (mut receivers, mut handles) = (Vec::new(), Vec::new());
        // worker w makes batches w, w + n, w + 2n, ..; reading them round-robin keeps the order
        for w in 0..workers.min(batches.len()) {
            let (tx, rx) = sync_channel(prefetch);
            let (dataset, batches) = (dataset.clone(), batches.clone());
            handles.push(std::thread::spawn(move || {
                for k in (w..batches.len()).step_by(workers) {
                    if tx.send(make_batch(&*dataset, &batches[k])).is_err() {
                        return; // the epoch was dropped
                    }
                }
            }));
            receivers.push(rx);
        }
        Self { dataset, batches, next: 0, receivers, handles, error: None }
    }
}

impl<D: Dataset> Iterator for Batches<D>
where
    D::Item: Collate,
{
    type Item = Result<<D::Item as Collate>::Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let k = self.next;
        if k >= self.batches.len() {
            return None;
        }
        self.next += 1;
        if self.receivers.is_empty() {
            return Some(make_batch(&*self.dataset, &self.batches[k]));
        }
        let worker = k % self.receivers.len();
        Some(self.receivers[worker].recv().unwrap_or_else(|_| {
            Err(Error::InvalidSize {
                op: "data loader",
                reason: format!("worker {worker} stopped (a sample panicked)"),
            })
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches.len() - self.next.min(self.batches.len());
        (left, Some(left))
    }
}

impl<D: Dataset> Drop for Batches<D>
where
    D::Item: Collate,
{
    fn drop(&mut self) {
        self.receivers.clear(); // workers blocked on a full channel see it closed and stop
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A batch whose run-time batch dim becomes the static `Const<B>` (see
/// [`DataLoader::epoch_static`]).
pub trait StaticBatch<const B: usize>: Sized {
    /// The batch with `Const<B>` leading dims.
    type Output;
    /// `Err` when the batch does not hold exactly `B` samples.
    fn into_static(self) -> Result<Self::Output>;
}

macro_rules! static_batch {
    ($($d:ident),*) => {
        impl<const B: usize, $($d: crate::shapes::Dim,)* E: Dtype, D: Device> StaticBatch<B> for Tensor<(usize, $($d,)*), E, D> {
            type Output = Tensor<(crate::shapes::Const<B>, $($d,)*), E, D>;
            fn into_static(self) -> Result<Self::Output> {
                self.try_realize()
            }
        }
    };
}
static_batch!();
static_batch!(D1);
static_batch!(D1, D2);
static_batch!(D1, D2, D3);
static_batch!(D1, D2, D3, D4);

impl<const B: usize, X: StaticBatch<B>, Y: StaticBatch<B>> StaticBatch<B> for (X, Y) {
    type Output = (X::Output, Y::Output);
    fn into_static(self) -> Result<Self::Output> {
        Ok((self.0.into_static()?, self.1.into_static()?))
    }
}

impl<D: Dataset> DataLoader<D>
where
    D::Item: Collate,
{
    /// The batches of epoch `epoch` with the static batch size `B` (which must be the loader's
    /// batch size): every batch dim is `Const<B>`, so the model's shapes are all static; the
    /// last short batch is dropped.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::data::{DataLoader, InMemory};
    /// let samples: Vec<(Tensor<Rank1<2>, f32, Cpu>, i64)> = (0..10).map(|i| (Cpu::seeded(0).zeros(), i)).collect();
    /// let loader = DataLoader::new(InMemory::new(samples), 4);
    /// let batches: Vec<(Tensor<Rank2<4, 2>, f32, Cpu>, Tensor<Rank1<4>, i64, Cpu>)> =
    ///     loader.epoch_static::<4>(0).map(|b| b.unwrap()).collect();
    /// assert_eq!(batches.len(), 2); // 10 samples: two full batches, the short one dropped
    /// ```
    pub fn epoch_static<const B: usize>(
        &self,
        epoch: usize,
    ) -> impl Iterator<Item = Result<<<D::Item as Collate>::Batch as StaticBatch<B>>::Output>> + use<B, D>
    where
        <D::Item as Collate>::Batch: StaticBatch<B>,
    {
        let wrong = (self.batch_size != B).then(|| Error::InvalidSize {
            op: "epoch_static",
            reason: format!("the loader's batch size is {}, the static one {B}", self.batch_size),
        });
        let full = self.len_full();
        let batches = self.epoch(epoch).take(if wrong.is_some() { 0 } else { full });
        wrong.map(Err).into_iter().chain(batches.map(|b| b.and_then(StaticBatch::into_static)))
    }

    /// The number of full batches in an epoch.
    fn len_full(&self) -> usize {
        self.samples_per_epoch() / self.batch_size
    }
}
