//! Matrix products through the `gemm` crate, which takes arbitrary strides: transposed and
//! broadcast operands are multiplied where they lie, without a copy.

use crate::compat::prelude::*;
use crate::device::Layout;
use crate::dtypes::Float;
use half::f16;

/// Products smaller than this many multiply-adds run on one thread.
const PAR_FLOPS: usize = 96 * 96 * 96;

/// One past the largest storage offset a view reads.
fn extent(l: &Layout) -> usize {
    if l.numel() == 0 {
        return l.offset;
    }
    l.offset + (0..l.dims.len()).map(|d| (l.dims[d] - 1) * l.strides[d]).sum::<usize>() + 1
}

/// `c (+)= a b` for rank-3 views `[batch, m, k] x [batch, k, n] -> [batch, m, n]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<E: Float>(a: &[E], al: &Layout, b: &[E], bl: &Layout, c: &mut [E], cl: &Layout, accumulate: bool) {
    let (batch, m, k, n) = (cl.dims[0], al.dims[1], al.dims[2], bl.dims[2]);
    assert!(
        al.dims[0] == batch && bl.dims[0] == batch && bl.dims[1] == k && cl.dims[1] == m && cl.dims[2] == n,
        "matmul kernel: inconsistent views {al:?} {bl:?} {cl:?}"
    );
    assert!(
        extent(al) <= a.len() && extent(bl) <= b.len() && extent(cl) <= c.len(),
        "matmul kernel: view exceeds storage"
    );
    // Distinct output elements must not alias: every output stride of a dim > 1 is non-zero.
    assert!((0..3).all(|d| cl.dims[d] <= 1 || cl.strides[d] != 0), "matmul kernel: output view aliases itself");
    if batch == 0 || m == 0 || n == 0 {
        return;
    }

    if let (Some(a), Some(b)) = (downcast::<E, f32>(a), downcast::<E, f32>(b)) {
        gemm_batched(a, al, b, bl, downcast_mut::<E, f32>(c).expect("same dtype"), cl, accumulate, 1.0, 0.0);
    } else if let (Some(a), Some(b)) = (downcast::<E, f64>(a), downcast::<E, f64>(b)) {
        gemm_batched(a, al, b, bl, downcast_mut::<E, f64>(c).expect("same dtype"), cl, accumulate, 1.0, 0.0);
    } else if let (Some(a), Some(b)) = (downcast::<E, f16>(a), downcast::<E, f16>(b)) {
        gemm_batched(a, al, b, bl, downcast_mut::<E, f16>(c).expect("same dtype"), cl, accumulate, f16::ONE, f16::ZERO);
    } else {
        // bf16 (gemm has no bf16 kernel): multiply in f32, round once at the end.
        let widen = |s: &[E], l: &Layout| -> (Vec<f32>, Layout) {
            let mut out = vec![0f32; l.numel()];
            super::strided::zip_map(&mut out, &l.dims, [(s, l)], |o, [v]| *o = v.as_f32());
            (out, Layout::contiguous(l.dims))
        };
        let (a32, al32) = widen(a, al);
        let (b32, bl32) = widen(b, bl);
        let (mut c32, cl32) =
            if accumulate { widen(c, cl) } else { (vec![0f32; cl.numel()], Layout::contiguous(cl.dims)) };
        gemm_batched(&a32, &al32, &b32, &bl32, &mut c32, &cl32, accumulate, 1.0, 0.0);
        for (off, v) in cl.offsets().zip(c32) {
            c[off] = E::cast_f32(v);
        }
    }
}

pub(crate) fn downcast<E: 'static, T: 'static>(s: &[E]) -> Option<&[T]> {
    if core::any::TypeId::of::<E>() == core::any::TypeId::of::<T>() {
        // SAFETY: E and T are the same type (equal TypeIds), so the slice is reinterpreted as itself.
        Some(unsafe { core::slice::from_raw_parts(s.as_ptr() as *const T, s.len()) })
    } else {
        None
    }
}

pub(crate) fn downcast_mut<E: 'static, T: 'static>(s: &mut [E]) -> Option<&mut [T]> {
    if core::any::TypeId::of::<E>() == core::any::TypeId::of::<T>() {
        // SAFETY: E and T are the same type (equal TypeIds), so the slice is reinterpreted as itself.
        Some(unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut T, s.len()) })
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_batched<T: 'static + Copy + Send + Sync>(
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    c: &mut [T],
    cl: &Layout,
    accumulate: bool,
    one: T,
    zero: T,
) {
    let (batch, m, k, n) = (cl.dims[0], al.dims[1], al.dims[2], bl.dims[2]);
    let flops = m * n * k;
    let s = |l: &Layout, d: usize| l.strides[d] as isize;
    // One product: `c_i (+)= a_i b_i`, with `c_i` starting at `c`'s first element.
    let product = |i: usize, c: &mut [T], par: gemm::Parallelism| {
        // SAFETY: the asserts in `matmul` check that every element each view addresses lies inside
        // its slice (`extent`) and that the output view does not alias itself; `c` is borrowed
        // mutably, so it overlaps neither `a` nor `b`; and callers pass a `c` that holds batch
        // `i`'s whole output view from its first element.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                s(cl, 2),
                s(cl, 1),
                accumulate,
                a.as_ptr().add(al.offset + i * al.strides[0]),
                s(al, 2),
                s(al, 1),
                b.as_ptr().add(bl.offset + i * bl.strides[0]),
                s(bl, 2),
                s(bl, 1),
                if accumulate { one } else { zero },
                one,
                false,
                false,
                false,
                par,
            );
        }
    };
    if batch * flops < PAR_FLOPS {
        // small work: stay on this thread (and do not start the thread pool)
        for i in 0..batch {
            let start = cl.offset + i * cl.strides[0];
            product(i, &mut c[start..], gemm::Parallelism::None);
        }
        return;
    }
    let threads = crate::par::threads();
    // Many small products (attention heads): one thread per product, when the outputs are
    // disjoint contiguous blocks.
    if batch >= threads && threads > 1 && flops < PAR_FLOPS * 8 && cl.is_contiguous() {
        use crate::par::*;
        c[cl.offset..cl.offset + batch * m * n]
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, ci)| product(i, ci, gemm::Parallelism::None));
        return;
    }
    let par = if flops >= PAR_FLOPS { crate::par::gemm_parallelism(threads) } else { gemm::Parallelism::None };
    for i in 0..batch {
        let start = cl.offset + i * cl.strides[0];
        product(i, &mut c[start..], par);
    }
}

/// The element types the `gemm` crate multiplies natively and that tensile's kernels compute in
/// (half types are widened to f32 first).
pub(crate) trait GemmScalar: Copy + Default + Send + Sync + 'static + core::ops::Add<Output = Self> {
    const ONE: Self;
    const ZERO: Self;
    /// Runs `f` on a scratch buffer of `len` elements with unspecified contents. With `std`,
    /// each thread keeps one buffer per type for reuse: a convolution's unfold buffer is the
    /// output times the patch, and a fresh one costs a page fault per 4 KiB.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

/// The largest scratch buffer a thread keeps (elements); larger ones are freed after use.
#[cfg(feature = "std")]
const SCRATCH_KEEP: usize = 1 << 22;

macro_rules! gemm_scalar {
    ($t:ty, $cell:ident) => {
        #[cfg(feature = "std")]
        std::thread_local! {
            static $cell: core::cell::RefCell<Vec<$t>> = const { core::cell::RefCell::new(Vec::new()) };
        }
        impl GemmScalar for $t {
            const ONE: Self = 1.0;
            const ZERO: Self = 0.0;
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                #[cfg(feature = "std")]
                if len <= SCRATCH_KEEP {
                    // The buffer is taken out while `f` runs: a second task rayon runs on this
                    // thread while the first waits finds the cell empty and allocates its own.
                    let kept = $cell.with(|c| c.try_borrow_mut().ok().map(|mut v| core::mem::take(&mut *v)));
                    if let Some(mut v) = kept {
                        // grown, never shrunk: a buffer cut to a short call's length was
                        // zero-filled again by the next long one (nodes alternate sizes)
                        if v.len() < len {
                            v.resize(len, 0.0);
                        }
                        let r = f(&mut v[..len]);
                        $cell.with(|c| *c.borrow_mut() = v);
                        return r;
                    }
                }
                f(&mut vec![0.0; len])
            }
        }
    };
}
gemm_scalar!(f32, SCRATCH_F32);
gemm_scalar!(f64, SCRATCH_F64);

/// A read-only matrix inside a slice: `rows x cols`, element `(i, j)` at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major matrix.
    pub fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }
    /// A row-major block of `rows x cols` whose rows lie `row_stride` apart (columns of a wider
    /// matrix).
    pub fn strided_rows(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride: 1 }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
    /// Rows `first..first + rows` (no copy).
    fn row_block(self, first: usize, rows: usize) -> Self {
        Self { data: &self.data[(first * self.row_stride).min(self.data.len())..], rows, ..self }
    }
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// Row blocks a parallel [`gemm_into`] splits into are multiples of this (the f32 kernel's
/// register tile height).
const SPLIT_ROWS: usize = 16;

/// `c (+)= a b` with `c` row-major (`a.rows x b.cols`, rows `c_row_stride` apart); on all
/// threads when `parallel`.
pub(crate) fn gemm_into<T: GemmScalar>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    c_row_stride: usize,
    accumulate: bool,
    parallel: bool,
) {
    gemm_into_scaled(a, b, c, c_row_stride, accumulate, T::ONE, parallel)
}

/// [`gemm_into`] of `scale a b`: `c (+)= scale a b`, the scale applied once per output.
pub(crate) fn gemm_into_scaled<T: GemmScalar>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    c_row_stride: usize,
    accumulate: bool,
    scale: T,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k, "gemm: inner dims {k} and {} differ", b.rows);
    let c_fits = m == 0 || n == 0 || (m - 1) * c_row_stride + n <= c.len();
    assert!(a.fits() && b.fits() && c_fits && c_row_stride >= n, "gemm: a matrix exceeds its slice");
    if m == 0 || n == 0 {
        return;
    }
    let workers = crate::par::threads();
    if parallel && workers > 1 && m >= 2 * SPLIT_ROWS {
        // One single-threaded product per thread on a block of rows. Alone, at ResNet-18's
        // convolution sizes (k of 147 to 4608, n of 49 to 12544), this measured 0-15 % faster
        // than gemm's own threading on 2 threads, and never slower by more than the noise.
        let per = m.div_ceil(workers).next_multiple_of(SPLIT_ROWS);
        let mut blocks = Vec::with_capacity(workers);
        let mut rest = c;
        for first in (0..m).step_by(per) {
            let rows = per.min(m - first);
            let (block, tail) = rest.split_at_mut((rows * c_row_stride).min(rest.len()));
            blocks.push((first, rows, block));
            rest = tail;
        }
        use crate::par::*;
        blocks.into_par_iter().for_each(|(first, rows, block)| {
            gemm_into_scaled(a.row_block(first, rows), b, block, c_row_stride, accumulate, scale, false)
        });
        return;
    }
    let par = if parallel { crate::par::gemm_parallelism(workers) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above check that every element `c`'s block addresses lies inside `c`
    // and that `c_row_stride >= n`; `c` is borrowed mutably, so nothing else touches it.
    unsafe { gemm_raw(a, b, c.as_mut_ptr(), c_row_stride, accumulate, scale, par) }
}

/// [`gemm_into`] on one thread into a raw destination: `c` points at element (0, 0) of the
/// `a.rows x b.cols` outputs, rows `c_row_stride` apart. For tasks on several threads that
/// write disjoint blocks of one matrix (which slices cannot express when the blocks are
/// columns).
///
/// # Safety
/// Every output element is valid for reads and writes and nothing else accesses it during the
/// call, and `c_row_stride >= b.cols`.
pub(crate) unsafe fn gemm_into_raw<T: GemmScalar>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: *mut T,
    c_row_stride: usize,
    accumulate: bool,
) {
    assert!(b.rows == a.cols, "gemm: inner dims {} and {} differ", a.cols, b.rows);
    assert!(a.fits() && b.fits() && c_row_stride >= b.cols, "gemm: a matrix exceeds its slice");
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    // SAFETY: the caller vouches for `c`; the asserts above for `a` and `b`.
    unsafe { gemm_raw(a, b, c, c_row_stride, accumulate, T::ONE, gemm::Parallelism::None) }
}

/// The one call into the `gemm` crate for [`MatRef`] operands: `c (+)= scale a b`.
///
/// # Safety
/// `a` and `b` fit their slices, `a.cols == b.rows`, and `c` is as [`gemm_into_raw`] asks.
unsafe fn gemm_raw<T: GemmScalar>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: *mut T,
    c_row_stride: usize,
    accumulate: bool,
    scale: T,
    par: gemm::Parallelism,
) {
    // SAFETY: the caller's contract: every element each matrix addresses is valid, the output
    // elements are distinct (unit column stride, `c_row_stride >= n`) and overlap no input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            c,
            1,
            c_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { T::ONE } else { T::ZERO },
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::Dims;
    use half::bf16;

    /// A 2x3 times 3x2 product with the left operand read through a transposed view, in every
    /// dtype path (gemm's f32, f64 and f16 kernels, and bf16 through f32). Miri runs this.
    fn product<E: Float>() -> Vec<f64> {
        // a is stored as its 3x2 transpose
        let a_t: Vec<E> = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0].iter().map(|&v| E::cast_f64(v)).collect();
        let b: Vec<E> = [1.0, 0.5, -1.0, 2.0, 0.0, 1.0].iter().map(|&v| E::cast_f64(v)).collect();
        let al = Layout { dims: Dims::from_slice(&[1, 2, 3]), strides: Dims::from_slice(&[0, 1, 2]), offset: 0 };
        let bl = Layout::contiguous(Dims::from_slice(&[1, 3, 2]));
        let cl = Layout::contiguous(Dims::from_slice(&[1, 2, 2]));
        let mut c = vec![E::cast_f64(100.0); 4];
        matmul(&a_t, &al, &b, &bl, &mut c, &cl, false);
        matmul(&a_t, &al, &b, &bl, &mut c, &cl, true);
        c.iter().map(|v| v.as_f64()).collect()
    }

    #[test]
    fn every_dtype_path_multiplies_strided_views() {
        // [[1,2,3],[4,5,6]] x [[1,0.5],[-1,2],[0,1]] = [[-1, 7.5], [-1, 18]], twice (accumulated)
        let want = vec![-2.0, 15.0, -2.0, 36.0];
        assert_eq!(product::<f32>(), want);
        assert_eq!(product::<f64>(), want);
        assert_eq!(product::<f16>(), want);
        assert_eq!(product::<bf16>(), want);
    }
}
