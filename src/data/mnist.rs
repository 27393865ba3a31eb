//! MNIST-format image folders: `train-images-idx3-ubyte[.gz]` with `train-labels-idx1-ubyte[.gz]`,
//! and `t10k-*` for the test split, read unchanged from the real MNIST files or from any data set
//! written the same way (the bundled 8 x 8 digits).

use super::Dataset;
use super::array::Elements;
use super::idx;
use crate::device::Cpu;
use crate::error::{Error, Result};
use crate::shapes::{Const, Rank3};
use crate::tensor::{Tensor, TensorFactory};
use std::path::Path;
use std::sync::Arc;

/// Which files of the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-*`.
    Train,
    /// `t10k-*`.
    Test,
}

/// Images of `H x W` u8 pixels with their labels: item `(image (1, H, W) u8, label)`.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::data::{mnist::{Mnist, Split}, Dataset};
/// let digits = Mnist::<8, 8>::load(&Cpu::seeded(0), "examples/data/digits", Split::Test).unwrap();
/// assert_eq!(digits.len(), 360);
/// let (image, label) = digits.get(0).unwrap();
/// assert!(image.to_vec().iter().all(|&p| p <= 16) && (0..10).contains(&label));
/// // a folder of 28 x 28 images read as 8 x 8 is refused, naming the sizes
/// assert!(Mnist::<28, 28>::load(&Cpu::seeded(0), "examples/data/digits", Split::Test).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Mnist<const H: usize, const W: usize> {
    dev: Cpu,
    pixels: Arc<Vec<u8>>,
    labels: Arc<Vec<i64>>,
}

/// `folder/name`, or `folder/name.gz` when only that exists.
fn find(folder: &Path, name: &str) -> std::path::PathBuf {
    let raw = folder.join(name);
    if raw.exists() { raw } else { folder.join(format!("{name}.gz")) }
}

fn malformed(reason: String) -> Error {
    Error::Malformed { format: "MNIST folder", reason }
}

impl<const H: usize, const W: usize> Mnist<H, W> {
    /// Reads a split from `folder`; `Err` when a file is missing or malformed, the images are
    /// not `H x W` u8, or the label count differs from the image count.
    pub fn load<P: AsRef<Path>>(dev: &Cpu, folder: P, split: Split) -> Result<Self> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let folder = folder.as_ref();
        let images = idx::read(find(folder, &format!("{prefix}-images-idx3-ubyte")))?;
        let labels = idx::read(find(folder, &format!("{prefix}-labels-idx1-ubyte")))?;
        let [n, h, w] = images.dims[..] else {
            return Err(malformed(format!("images have dims {:?}, not (count, height, width)", images.dims)));
        };
        if (h, w) != (H, W) {
            return Err(malformed(format!("images are {h} x {w}, this dataset type reads {H} x {W}")));
        }
        let Elements::U8(pixels) = images.data else {
            return Err(malformed("images are not u8".into()));
        };
        let labels = labels.to_labels()?;
        if labels.len() != n {
            return Err(malformed(format!("{n} images but {} labels", labels.len())));
        }
        Ok(Self { dev: dev.clone(), pixels: Arc::new(pixels), labels: Arc::new(labels) })
    }

    /// Every label, in order.
    pub fn labels(&self) -> &[i64] {
        &self.labels
    }
}

impl<const H: usize, const W: usize> Dataset for Mnist<H, W> {
    type Item = (Tensor<Rank3<1, H, W>, u8, Cpu>, i64);
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn get(&self, index: usize) -> Result<Self::Item> {
        let label = *self.labels.get(index).ok_or(Error::IndexOutOfRange {
            op: "Mnist",
            index: index as i64,
            size: self.labels.len(),
        })?;
        let pixels = self.pixels[index * H * W..(index + 1) * H * W].to_vec();
        Ok((self.dev.try_from_vec(pixels, (Const, Const, Const))?, label))
    }
}
