//! The one strided loop every element-wise CPU kernel runs on.
//!
//! Inputs are views (any strides, including 0 for broadcast); the output is contiguous in the
//! logical row-major order. Adjacent axes that are contiguous in every input are merged first, so
//! a contiguous or simply broadcast operand runs as long unit-stride rows that the compiler
//! vectorises. Above [`PAR_THRESHOLD`] elements the output is split across rayon's threads.

use crate::device::Layout;
use crate::par::*;
use crate::shapes::{Dims, MAX_RANK};

/// Outputs at least this long are computed in parallel.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
const CHUNK: usize = 1 << 14;

/// Merges axes that can be walked as one in every layout and drops size-1 axes.
fn coalesce<const N: usize>(dims: &Dims, strides: [Dims; N]) -> (Dims, [Dims; N]) {
    let mut od = Dims::default();
    let mut os: [Dims; N] = [Dims::default(); N];
    for d in 0..dims.len() {
        if dims[d] == 1 {
            continue;
        }
        let r = od.len();
        let mergeable = r > 0 && (0..N).all(|i| os[i][r - 1] == strides[i][d] * dims[d]);
        if mergeable {
            od[r - 1] *= dims[d];
            for i in 0..N {
                os[i][r - 1] = strides[i][d];
            }
        } else {
            od.push(dims[d]);
            for i in 0..N {
                os[i].push(strides[i][d]);
            }
        }
    }
    (od, os)
}

/// `f(&mut out[i], [in_0[i], .., in_{N-1}[i]])` for every logical index `i` of `dims`.
///
/// `out` has `dims.numel()` elements; each input is a storage slice and a layout with `dims`.
pub(crate) fn zip_map<O, E, F, const N: usize>(out: &mut [O], dims: &Dims, ins: [(&[E], &Layout); N], f: F)
where
    O: Send,
    E: Copy + Sync,
    F: Fn(&mut O, [E; N]) + Sync,
{
    debug_assert_eq!(out.len(), dims.numel());
    if out.is_empty() {
        return;
    }
    for (data, l) in &ins {
        debug_assert_eq!(l.dims, *dims);
        // Bounds: the last logical element must lie inside the slice.
        let last: usize = l.offset + (0..dims.len()).map(|d| (dims[d] - 1) * l.strides[d]).sum::<usize>();
        assert!(last < data.len(), "view exceeds its storage");
    }
    let (cd, cs) = coalesce::<N>(dims, core::array::from_fn(|i| ins[i].1.strides));
    let offsets: [usize; N] = core::array::from_fn(|i| ins[i].1.offset);
    let slices: [&[E]; N] = core::array::from_fn(|i| ins[i].0);
    let rank = cd.len();
    if rank == 0 {
        f(&mut out[0], core::array::from_fn(|i| slices[i][offsets[i]]));
        return;
    }
    let inner = cd[rank - 1];
    let inner_strides: [usize; N] = core::array::from_fn(|i| cs[i][rank - 1]);
    let unit = inner_strides.iter().all(|&s| s == 1);
    let work = |start: usize, chunk: &mut [O]| {
        let mut idx = [0usize; MAX_RANK];
        let mut rem = start;
        for d in (0..rank).rev() {
            idx[d] = rem % cd[d];
            rem /= cd[d];
        }
        let mut pos = 0;
        while pos < chunk.len() {
            let base: [usize; N] =
                core::array::from_fn(|i| offsets[i] + (0..rank).map(|d| idx[d] * cs[i][d]).sum::<usize>());
            let j0 = idx[rank - 1];
            let n = (inner - j0).min(chunk.len() - pos);
            let out_row = &mut chunk[pos..pos + n];
            if unit {
                let rows: [&[E]; N] = core::array::from_fn(|i| &slices[i][base[i]..base[i] + n]);
                for (j, o) in out_row.iter_mut().enumerate() {
                    f(o, core::array::from_fn(|i| rows[i][j]));
                }
            } else {
                for (j, o) in out_row.iter_mut().enumerate() {
                    f(o, core::array::from_fn(|i| slices[i][base[i] + j * inner_strides[i]]));
                }
            }
            pos += n;
            idx[rank - 1] = j0 + n;
            for d in (1..rank).rev() {
                if idx[d] < cd[d] {
                    break;
                }
                idx[d] = 0;
                idx[d - 1] += 1;
            }
        }
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| work(c * CHUNK, chunk));
    } else {
        work(0, out);
    }
}

/// `f(&mut x)` for every element of a contiguous buffer, in parallel when it is long.
pub(crate) fn map_inplace<E: Send, F: Fn(&mut E) + Sync>(data: &mut [E], f: F) {
    if data.len() >= PAR_THRESHOLD {
        data.par_chunks_mut(CHUNK).for_each(|c| c.iter_mut().for_each(&f));
    } else {
        data.iter_mut().for_each(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_and_broadcast_views() {
        let a: Vec<i32> = (0..6).collect();
        let dims = Dims::from_slice(&[3, 2]);
        // a viewed as its transpose (2x3 stored row-major, read as 3x2)
        let t = Layout { dims, strides: Dims::from_slice(&[1, 3]), offset: 0 };
        let b = [10, 20];
        let bb = Layout { dims, strides: Dims::from_slice(&[0, 1]), offset: 0 };
        let mut out = vec![0; 6];
        zip_map(&mut out, &dims, [(&a[..], &t), (&b[..], &bb)], |o, [x, y]| *o = x + y);
        assert_eq!(out, vec![10, 23, 11, 24, 12, 25]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "long arrays: minutes under Miri, and no unsafe code here")]
    fn parallel_path_matches_serial() {
        let n = PAR_THRESHOLD * 3 + 7;
        let a: Vec<u64> = (0..n as u64).collect();
        let dims = Dims::from_slice(&[n]);
        let l = Layout::contiguous(dims);
        let mut out = vec![0; n];
        zip_map(&mut out, &dims, [(&a[..], &l)], |o, [x]| *o = x * 2);
        assert!(out.iter().enumerate().all(|(i, &v)| v == 2 * i as u64));
    }
}
