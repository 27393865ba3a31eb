//! How a tensor's logical elements sit in its storage: sizes, strides and an offset.

use crate::compat::prelude::*;
use crate::shapes::Dims;

/// Sizes, strides (in elements) and the offset of element zero. A stride of 0 repeats an element
/// (broadcast); permuted strides reorder axes; neither copies data.
///
/// ```
/// use tensile::device::Layout;
/// use tensile::shapes::Dims;
/// let l = Layout::contiguous(Dims::from_slice(&[2, 3]));
/// assert!(l.is_contiguous());
/// assert_eq!(l.strides.as_slice(), &[3, 1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Sizes.
    pub dims: Dims,
    /// Strides in elements.
    pub strides: Dims,
    /// Offset of the first element.
    pub offset: usize,
}

impl Layout {
    /// Row-major, starting at 0.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3]));
    /// assert_eq!((l.strides.as_slice(), l.offset), (&[3, 1][..], 0));
    /// ```
    pub fn contiguous(dims: Dims) -> Self {
        Self { dims, strides: dims.contiguous_strides(), offset: 0 }
    }
    /// A view of `dims` in which every index reads the element at offset 0 (a scalar repeated).
    ///
    /// ```
    /// use tensile::device::Layout;
    /// use tensile::shapes::Dims;
    /// let l = Layout::repeated_element(Dims::from_slice(&[2, 3]));
    /// assert_eq!(l.offset_of(&[1, 2]), 0);
    /// ```
    pub fn repeated_element(dims: Dims) -> Self {
        Self { dims, strides: Dims::from_slice(&[0; crate::shapes::MAX_RANK][..dims.len()]), offset: 0 }
    }
    /// True when the view is the whole of a `len`-element buffer, in order: an op may then write
    /// its result over it.
    ///
    /// ```
    /// use tensile::device::Layout;
    /// use tensile::shapes::Dims;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3]));
    /// assert!(l.is_whole_buffer(6) && !l.is_whole_buffer(7) && !l.permuted(&[1, 0]).is_whole_buffer(6));
    /// ```
    pub fn is_whole_buffer(&self, len: usize) -> bool {
        self.offset == 0 && self.is_contiguous() && len == self.numel()
    }
    /// The storage offset of every logical element, in row-major order.
    ///
    /// ```
    /// use tensile::device::Layout;
    /// use tensile::shapes::Dims;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3])).permuted(&[1, 0]);
    /// assert_eq!(l.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
    /// ```
    pub fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let rank = self.dims.len();
        let mut idx = [0usize; crate::shapes::MAX_RANK];
        (0..self.numel()).map(move |_| {
            let off = self.offset_of(&idx[..rank]);
            for d in (0..rank).rev() {
                idx[d] += 1;
                if idx[d] < self.dims[d] {
                    break;
                }
                idx[d] = 0;
            }
            off
        })
    }
    /// Number of logical elements.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// assert_eq!(Layout::contiguous(Dims::from_slice(&[2, 3])).numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        self.dims.numel()
    }
    /// True when the elements are stored row-major with no gaps (the offset may be non-zero).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3]));
    /// assert!(l.is_contiguous() && !l.permuted(&[1, 0]).is_contiguous());
    /// ```
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.dims.len()).rev() {
            if self.dims[i] != 1 && self.strides[i] != expected {
                return false;
            }
            expected *= self.dims[i];
        }
        true
    }
    /// The storage offset of a logical multi-index.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3]));
    /// assert_eq!(l.offset_of(&[1, 2]), 5);
    /// ```
    pub fn offset_of(&self, index: &[usize]) -> usize {
        self.offset + index.iter().zip(self.strides.as_slice()).map(|(i, s)| i * s).sum::<usize>()
    }
    /// The same layout with its axes reordered: axis `i` of the result is axis `perm[i]` here.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3])).permuted(&[1, 0]);
    /// assert_eq!((l.dims.as_slice(), l.strides.as_slice()), (&[3, 2][..], &[1, 3][..]));
    /// ```
    pub fn permuted(&self, perm: &[usize]) -> Self {
        let mut dims = self.dims;
        let mut strides = self.strides;
        for (i, &p) in perm.iter().enumerate() {
            dims[i] = self.dims[p];
            strides[i] = self.strides[p];
        }
        Self { dims, strides, offset: self.offset }
    }
    /// A view of this layout broadcast to `dims`, where `axes` are the new axes of `dims` (stride 0).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let row = Layout::contiguous(Dims::from_slice(&[3]));
    /// let l = row.broadcast(Dims::from_slice(&[2, 3]), &[0]);
    /// assert_eq!(l.strides.as_slice(), &[0, 1]);
    /// ```
    pub fn broadcast(&self, dims: Dims, axes: &[usize]) -> Self {
        let mut strides = Dims::from_slice(&vec![0; dims.len()]);
        let mut src = 0;
        for (i, s) in strides.as_mut_slice().iter_mut().enumerate() {
            if !axes.contains(&i) {
                *s = self.strides[src];
                src += 1;
            }
        }
        Self { dims, strides, offset: self.offset }
    }
    /// Every `step`-th of `len` elements along `axis`, from `start` (narrow, slicing with a step).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 6])).narrowed(1, 1, 3, 2);
    /// assert_eq!((l.dims.as_slice(), l.strides.as_slice(), l.offset), (&[2, 3][..], &[6, 2][..], 1));
    /// ```
    pub fn narrowed(&self, axis: usize, start: usize, len: usize, step: usize) -> Self {
        let mut out = *self;
        out.dims[axis] = len;
        out.offset += start * self.strides[axis];
        out.strides[axis] *= step;
        out
    }
    /// Index `index` along `axis`, which is dropped.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::device::Layout;
    /// let l = Layout::contiguous(Dims::from_slice(&[2, 3])).selected(0, 1);
    /// assert_eq!((l.dims.as_slice(), l.offset), (&[3][..], 3));
    /// ```
    pub fn selected(&self, axis: usize, index: usize) -> Self {
        let keep: Vec<usize> = (0..self.dims.len()).filter(|&d| d != axis).collect();
        Self {
            dims: Dims::from_slice(&keep.iter().map(|&d| self.dims[d]).collect::<Vec<_>>()),
            strides: Dims::from_slice(&keep.iter().map(|&d| self.strides[d]).collect::<Vec<_>>()),
            offset: self.offset + index * self.strides[axis],
        }
    }
}
