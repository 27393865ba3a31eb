//! The one strided loop every element-wise CPU kernel runs on.
//!
//! Inputs are views (any strides, including 0 for broadcast); the output is contiguous in the
//! logical row-major order. Adjacent axes that are contiguous in every input are merged first, so
//! a contiguous or simply broadcast operand runs as long unit-stride rows that the compiler
//! vectorises. Above [`PAR_THRESHOLD`] elements the output is split across rayon's threads.

use super::fast_math::has_avx2;
use crate::compat::prelude::*;
use crate::device::Layout;
use crate::dtypes::Float;
use crate::par::*;
use crate::shapes::{Dims, MAX_RANK};

/// Outputs at least this long are computed in parallel.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
const CHUNK: usize = 1 << 14;
/// Strided runs at least this long are gathered into a unit-stride scratch row first.
const GATHER_MIN: usize = 16;

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
    let walk = Walk { cd, cs, offsets, slices, rank };
    let avx2 = has_avx2();
    let work = |start: usize, chunk: &mut [O]| {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: `avx2` is true only when the CPU has AVX2 and FMA (`has_avx2`), the one
            // requirement of a `target_feature` function.
            return unsafe { walk_avx2(&walk, &f, start, chunk) };
        }
        walk_rows(&walk, &f, start, chunk)
    };
    let _ = avx2;
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| work(c * CHUNK, chunk));
    } else {
        work(0, out);
    }
}

/// The coalesced views [`zip_map`] walks.
struct Walk<'a, E, const N: usize> {
    cd: Dims,
    cs: [Dims; N],
    offsets: [usize; N],
    slices: [&'a [E]; N],
    rank: usize,
}

/// [`zip_map`]'s loop over the logical elements `start..start + chunk.len()`, one run along the
/// innermost axis at a time.
#[inline(always)]
fn walk_rows<O, E: Copy, F: Fn(&mut O, [E; N]), const N: usize>(
    w: &Walk<'_, E, N>,
    f: &F,
    start: usize,
    chunk: &mut [O],
) {
    let Walk { cd, cs, offsets, slices, rank } = w;
    let rank = *rank;
    let inner = cd[rank - 1];
    let inner_strides: [usize; N] = core::array::from_fn(|i| cs[i][rank - 1]);
    let unit = inner_strides.iter().all(|&s| s == 1);
    let mut scratch: [Vec<E>; N] = core::array::from_fn(|_| Vec::new());
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
        } else if n >= GATHER_MIN {
            // Gather each strided (or broadcast) input's run into a scratch row first, so that
            // the loop below is the vectorised unit-stride one.
            for i in 0..N {
                let (st, sc) = (inner_strides[i], &mut scratch[i]);
                sc.clear();
                match st {
                    1 => {}
                    0 => sc.resize(n, slices[i][base[i]]),
                    _ => sc.extend((0..n).map(|j| slices[i][base[i] + j * st])),
                }
            }
            let rows: [&[E]; N] = core::array::from_fn(|i| {
                if inner_strides[i] == 1 { &slices[i][base[i]..base[i] + n] } else { &scratch[i][..] }
            });
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
}

/// [`walk_rows`] compiled for AVX2 + FMA, so that the element loops use 8-wide vectors. The
/// results are the same bits: Rust never fuses `a * b + c` into an FMA on its own.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn walk_avx2<O, E: Copy, F: Fn(&mut O, [E; N]), const N: usize>(
    w: &Walk<'_, E, N>,
    f: &F,
    start: usize,
    chunk: &mut [O],
) {
    walk_rows(w, f, start, chunk)
}

/// One element of a gradient kernel's store: `*o += v` when `accumulate`, else `*o = v`. The flag
/// is loop-invariant, so the compiler unswitches the loops that call this.
#[inline(always)]
pub(crate) fn store<E: Float>(o: &mut E, v: E::Acc, accumulate: bool) {
    *o = E::from_acc(if accumulate { o.to_acc() + v } else { v });
}

/// A gradient kernel's store: `out[i] += g(ins[i])` when `accumulate`, else `out[i] = g(ins[i])`
/// (the buffer is new and its contents are not read), with `g` computed in the accumulator type.
pub(crate) fn write_or_add<E: Float, const N: usize>(
    out: &mut [E],
    dims: &Dims,
    ins: [(&[E], &Layout); N],
    accumulate: bool,
    g: impl Fn([E; N]) -> E::Acc + Sync,
) {
    if accumulate {
        zip_map(out, dims, ins, |o, v| *o = E::from_acc(o.to_acc() + g(v)));
    } else {
        zip_map(out, dims, ins, |o, v| *o = E::from_acc(g(v)));
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

    /// Runs long enough to take the gather path: a broadcast, a strided and a unit-stride input.
    #[test]
    fn gathered_runs_match_the_definition() {
        let (rows, cols) = (3, 40);
        let dims = Dims::from_slice(&[rows, cols]);
        let a: Vec<f32> = (0..rows).map(|r| r as f32).collect();
        let al = Layout { dims, strides: Dims::from_slice(&[1, 0]), offset: 0 };
        let b: Vec<f32> = (0..rows * cols * 2).map(|i| i as f32).collect();
        let bl = Layout { dims, strides: Dims::from_slice(&[2 * cols, 2]), offset: 1 };
        let c: Vec<f32> = (0..rows * cols).map(|i| 0.5 * i as f32).collect();
        let cl = Layout::contiguous(dims);
        let mut out = vec![0.0; rows * cols];
        zip_map(&mut out, &dims, [(&a[..], &al), (&b[..], &bl), (&c[..], &cl)], |o, [x, y, z]| *o = x * 1000.0 + y - z);
        for r in 0..rows {
            for j in 0..cols {
                let want = r as f32 * 1000.0 + (1 + r * 2 * cols + 2 * j) as f32 - 0.5 * (r * cols + j) as f32;
                assert_eq!(out[r * cols + j], want);
            }
        }
        // written over stale contents, or added to what is there
        let ones = vec![1.0f32; rows * cols];
        let mut fresh = vec![f32::NAN; rows * cols];
        write_or_add(&mut fresh, &dims, [(&c[..], &cl)], false, |[z]| z);
        assert_eq!(fresh, c);
        let mut sum = ones.clone();
        write_or_add(&mut sum, &dims, [(&c[..], &cl)], true, |[z]| z);
        assert!(sum.iter().zip(&c).all(|(s, z)| *s == 1.0 + z));
    }

    #[test]
    #[cfg_attr(miri, ignore = "long arrays: minutes under Miri; the short tests cover the same code")]
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
