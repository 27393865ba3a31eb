//! Indexing kernels: gather and scatter-add along an axis, top-k indices (sort, topk, argmax),
//! and cumulative sums and products. Every view is rank 3, `[outer, axis, inner]`: the front end
//! folds the axes before and after the indexed one.

use crate::compat::prelude::*;
use crate::device::Layout;
use crate::dtypes::{Dtype, Float, IndexDtype};
use crate::error::{Error, Result};
use crate::par::*;

/// Outputs at least this long are computed in parallel.
const PAR_LEN: usize = 1 << 15;

/// Checks every index of a view against `0..n`.
fn check_indices<I: IndexDtype>(op: &'static str, idx: &[I], il: &Layout, n: usize) -> Result<()> {
    for off in il.offsets() {
        match idx[off].to_index() {
            Some(i) if i < n => {}
            _ => return Err(Error::IndexOutOfRange { op, index: idx[off].as_f64() as i64, size: n }),
        }
    }
    Ok(())
}

/// `out[o, j, i] = x[o, index[o, j, i], i]`; `out` is contiguous `[outer, m, inner]`.
pub(crate) fn gather<E: Dtype, I: IndexDtype>(
    x: &[E],
    xl: &Layout,
    idx: &[I],
    il: &Layout,
    out: &mut [E],
) -> Result<()> {
    let (n, inner, m) = (xl.dims[1], xl.dims[2], il.dims[1]);
    assert!(out.len() == xl.dims[0] * m * inner && il.dims[0] == xl.dims[0] && il.dims[2] == inner);
    check_indices("gather", idx, il, n)?;
    if inner == 0 {
        return Ok(());
    }
    let row = |r: usize, out: &mut [E]| {
        let (o, j) = (r / m, r % m);
        for (i, v) in out.iter_mut().enumerate() {
            let k = idx[il.offset + o * il.strides[0] + j * il.strides[1] + i * il.strides[2]].to_index().unwrap_or(0);
            *v = x[xl.offset + o * xl.strides[0] + k * xl.strides[1] + i * xl.strides[2]];
        }
    };
    if out.len() >= PAR_LEN {
        out.par_chunks_mut(inner).enumerate().for_each(|(r, o)| row(r, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| row(r, o));
    }
    Ok(())
}

/// `dst[o, index[o, j, i], i] += src[o, j, i]`; `src` contiguous `[outer, m, inner]`, `dst`
/// contiguous `[outer, n, inner]`.
pub(crate) fn scatter_add<E: Float, I: IndexDtype>(
    src: &[E],
    idx: &[I],
    il: &Layout,
    dst: &mut [E],
    n: usize,
) -> Result<()> {
    let (outer, m, inner) = (il.dims[0], il.dims[1], il.dims[2]);
    assert!(src.len() == outer * m * inner && dst.len() == outer * n * inner);
    check_indices("scatter_add", idx, il, n)?;
    if n == 0 || inner == 0 {
        return Ok(());
    }
    let block = |o: usize, dst: &mut [E]| {
        for j in 0..m {
            for i in 0..inner {
                let k =
                    idx[il.offset + o * il.strides[0] + j * il.strides[1] + i * il.strides[2]].to_index().unwrap_or(0);
                dst[k * inner + i] = dst[k * inner + i] + src[(o * m + j) * inner + i];
            }
        }
    };
    if outer > 1 && src.len() >= PAR_LEN {
        dst.par_chunks_mut(n * inner).enumerate().for_each(|(o, d)| block(o, d));
    } else {
        dst.chunks_mut(n * inner).enumerate().for_each(|(o, d)| block(o, d));
    }
    Ok(())
}

/// A total order on floats with NaN above everything (as PyTorch sorts).
fn total<E: Float>(a: E, b: E) -> core::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => core::cmp::Ordering::Equal,
        (true, false) => core::cmp::Ordering::Greater,
        (false, true) => core::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(core::cmp::Ordering::Equal),
    }
}

/// The indices of the `k` largest (or smallest) elements of each line along the middle axis,
/// in order (ties keep their original order); `out` is contiguous `[outer, k, inner]`.
pub(crate) fn topk_indices<E: Float>(x: &[E], xl: &Layout, k: usize, largest: bool, out: &mut [i64]) {
    let (outer, n, inner) = (xl.dims[0], xl.dims[1], xl.dims[2]);
    assert!(k <= n && out.len() == outer * k * inner);
    let at = |o: usize, j: usize, i: usize| x[xl.offset + o * xl.strides[0] + j * xl.strides[1] + i * xl.strides[2]];
    let line = |o: usize, i: usize| -> Vec<i64> {
        let cmp = |a: &usize, b: &usize| {
            let c = total(at(o, *a, i), at(o, *b, i));
            if largest { c.reverse() } else { c }
        };
        if k == 1 {
            let best = (0..n).min_by(cmp).unwrap_or(0);
            return vec![best as i64];
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(cmp);
        order.truncate(k);
        order.into_iter().map(|j| j as i64).collect()
    };
    let lines: Vec<Vec<i64>> = if outer * inner * n >= PAR_LEN {
        (0..outer * inner).into_par_iter().map(|l| line(l / inner, l % inner)).collect()
    } else {
        (0..outer * inner).map(|l| line(l / inner, l % inner)).collect()
    };
    for (l, picked) in lines.into_iter().enumerate() {
        let (o, i) = (l / inner, l % inner);
        for (j, p) in picked.into_iter().enumerate() {
            out[(o * k + j) * inner + i] = p;
        }
    }
}

/// Which running operation a scan applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKind {
    /// Running sum (`cumsum`).
    Sum,
    /// Running product (`cumprod`).
    Prod,
}

/// Runs `f(first, put)` for every line of a contiguous `[outer, n, inner]` buffer: the line's
/// elements sit at `first + j * inner`, and `put(j, v)` writes element `j` of the line's output.
fn for_lines<E: Float>(dims: [usize; 3], out: &mut [E], f: impl Fn(usize, &mut dyn FnMut(usize, E)) + Sync + Send) {
    let [_, n, inner] = dims;
    let block_len = n * inner;
    if block_len == 0 {
        return;
    }
    // Lines interleave within an outer block (stride `inner`), so each block is one task.
    let block = |o: usize, out: &mut [E]| {
        for i in 0..inner {
            f(o * block_len + i, &mut |j, v| out[j * inner + i] = v);
        }
    };
    if out.len() >= PAR_LEN && dims[0] > 1 {
        out.par_chunks_mut(block_len).enumerate().for_each(|(o, c)| block(o, c));
    } else {
        out.chunks_mut(block_len).enumerate().for_each(|(o, c)| block(o, c));
    }
}

/// Running sums or products along the middle axis of a contiguous `[outer, n, inner]` buffer
/// (from the end when `reverse`), accumulated in the dtype's accumulator.
pub(crate) fn scan<E: Float>(kind: ScanKind, x: &[E], dims: [usize; 3], reverse: bool, out: &mut [E]) {
    let [_, n, inner] = dims;
    assert!(x.len() == dims.iter().product::<usize>() && out.len() == x.len());
    for_lines(dims, out, |first, put| {
        let mut acc = match kind {
            ScanKind::Sum => E::Acc::zero(),
            ScanKind::Prod => E::Acc::one(),
        };
        for t in 0..n {
            let j = if reverse { n - 1 - t } else { t };
            let v = x[first + j * inner].to_acc();
            acc = match kind {
                ScanKind::Sum => acc + v,
                ScanKind::Prod => acc * v,
            };
            put(j, E::from_acc(acc));
        }
    });
}

/// Adds the gradient of `cumprod` into `gx`: `gx_i += Σ_{j ≥ i} gy_j Π_{k ≤ j, k ≠ i} x_k`.
/// Lines without zeros use `Σ_{j ≥ i} gy_j y_j / x_i`; a line with a zero is summed directly.
/// All buffers are contiguous `[outer, n, inner]`.
pub(crate) fn cumprod_backward<E: Float>(x: &[E], y: &[E], gy: &[E], dims: [usize; 3], gx: &mut [E]) {
    let [_, n, inner] = dims;
    let mut delta = vec![E::zero(); gx.len()];
    for_lines(dims, &mut delta, |first, put| {
        let at = |buf: &[E], j: usize| buf[first + j * inner].to_acc();
        let xs: Vec<E::Acc> = (0..n).map(|j| at(x, j)).collect();
        if xs.iter().all(|v| !v.is_zero()) {
            let mut tail = E::Acc::zero();
            for i in (0..n).rev() {
                tail = tail + at(gy, i) * at(y, i);
                put(i, E::from_acc(tail / xs[i]));
            }
            return;
        }
        for i in 0..n {
            let mut running: E::Acc = xs[..i].iter().fold(E::Acc::one(), |p, v| p * *v);
            let mut total = at(gy, i) * running;
            for (j, x) in xs.iter().enumerate().skip(i + 1) {
                running = running * *x;
                total = total + at(gy, j) * running;
            }
            put(i, E::from_acc(total));
        }
    });
    gx.iter_mut().zip(delta).for_each(|(g, d)| *g = *g + d);
}

use num_traits::{One, Zero};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::Dims;

    #[test]
    fn cumprod_gradient_with_a_zero() {
        // y = cumprod([2, 0, 3]) = [2, 0, 0]; dL/dx with gy = 1: [1 + 0 + 0, 2 + 6, 0]
        let (x, y, gy) = ([2.0f64, 0.0, 3.0], [2.0, 0.0, 0.0], [1.0; 3]);
        let mut gx = [0.0; 3];
        cumprod_backward(&x, &y, &gy, [1, 3, 1], &mut gx);
        assert_eq!(gx, [1.0, 8.0, 0.0]);
    }

    #[test]
    fn gather_rejects_bad_indices() {
        let l = Layout::contiguous(Dims::from_slice(&[1, 3, 1]));
        let il = Layout::contiguous(Dims::from_slice(&[1, 2, 1]));
        let mut out = [0.0f32; 2];
        assert!(gather(&[1.0f32, 2.0, 3.0], &l, &[2i64, 0], &il, &mut out).is_ok());
        assert_eq!(out, [3.0, 1.0]);
        assert!(matches!(
            gather(&[1.0f32, 2.0, 3.0], &l, &[3i64, 0], &il, &mut out),
            Err(Error::IndexOutOfRange { index: 3, size: 3, .. })
        ));
        assert!(gather(&[1.0f32, 2.0, 3.0], &l, &[-1i64, 0], &il, &mut out).is_err());
    }
}
