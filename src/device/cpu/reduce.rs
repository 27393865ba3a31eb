//! Sum, max and min over any set of axes.
//!
//! The axes are moved last (a free stride permutation). When the reduced block is then contiguous
//! in memory each output is a fold over one slice; when leading axes of a contiguous tensor are
//! reduced, whole rows are accumulated at once (the bias-gradient case); otherwise the view is
//! first copied into the order the fold wants.

use super::fast_math::Simd;
use super::strided::{PAR_THRESHOLD, zip_map};
use super::vector::prefetch;
use crate::compat::prelude::*;
use crate::device::Layout;
use crate::dtypes::Float;
use crate::ops::ReduceKind;
use crate::par::*;
use crate::shapes::Dims;

fn identity<A: Float>(kind: ReduceKind) -> A {
    match kind {
        ReduceKind::Sum => A::zero(),
        ReduceKind::Max => A::neg_infinity(),
        ReduceKind::Min => A::infinity(),
    }
}

/// Combines two partial results; NaN wins, as in PyTorch.
#[inline(always)]
fn combine<A: Float>(kind: ReduceKind, acc: A, v: A) -> A {
    match kind {
        ReduceKind::Sum => acc + v,
        ReduceKind::Max => {
            if v > acc || v.is_nan() {
                v
            } else {
                acc
            }
        }
        ReduceKind::Min => {
            if v < acc || v.is_nan() {
                v
            } else {
                acc
            }
        }
    }
}

/// Independent accumulators of [`fold_lanes`]: four vectors of eight f32 (two of sixteen with
/// AVX-512), so that the additions of one vector do not wait on the previous one's. With one
/// eight-lane chain, a sum over 4096x4096 f32 ran at the add latency (about 21 GB/s per core),
/// no faster than the memory.
const LANES: usize = 32;

/// How far ahead of the fold its input is asked into L1, one request per cache line. The
/// hardware prefetcher alone kept a core at ~21 GB/s on a 4096x4096 f32 sum; asking 4 KiB
/// ahead made the sum 5-10 % faster (in-process A/B and `benches/ops.rs`, this machine's
/// Xeon), 2 and 8 KiB about the same.
const PREFETCH_BYTES: usize = 4096;

/// Folds a contiguous slice with [`LANES`] independent accumulators, so the loop vectorises.
#[inline(always)]
fn fold_lanes<E: Float>(s: &[E], init: E::Acc, f: impl Fn(E::Acc, E::Acc) -> E::Acc) -> E {
    let mut lanes = [init; LANES];
    let mut chunks = s.chunks_exact(LANES);
    let ahead = s.as_ptr().cast::<u8>().wrapping_add(PREFETCH_BYTES);
    for (k, c) in (&mut chunks).enumerate() {
        // Past the slice's end the address is never read: a prefetch does not fault.
        for line in (0..LANES * size_of::<E>()).step_by(64) {
            prefetch::<true>(ahead.wrapping_add(k * LANES * size_of::<E>() + line));
        }
        for i in 0..LANES {
            lanes[i] = f(lanes[i], c[i].to_acc());
        }
    }
    let mut acc = init;
    for v in chunks.remainder() {
        acc = f(acc, v.to_acc());
    }
    E::from_acc(lanes.into_iter().fold(acc, f))
}

#[inline(always)]
fn fold_slice_portable<E: Float>(kind: ReduceKind, s: &[E]) -> E {
    // One monomorphic loop per kind: the kind is not re-checked per element.
    match kind {
        ReduceKind::Sum => fold_lanes(s, identity(kind), |a, v| a + v),
        ReduceKind::Max => fold_lanes(s, identity(kind), |a, v| combine(ReduceKind::Max, a, v)),
        ReduceKind::Min => fold_lanes(s, identity(kind), |a, v| combine(ReduceKind::Min, a, v)),
    }
}

/// [`fold_slice_portable`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fold_slice_avx2<E: Float>(kind: ReduceKind, s: &[E]) -> E {
    fold_slice_portable(kind, s)
}

/// [`fold_slice_portable`] compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn fold_slice_avx512<E: Float>(kind: ReduceKind, s: &[E]) -> E {
    fold_slice_portable(kind, s)
}

fn fold_slice<E: Float>(kind: ReduceKind, s: &[E]) -> E {
    match Simd::detect() {
        // SAFETY: `Simd::detect` gives `Avx512` only when the CPU supports AVX-512F, AVX2 and
        // FMA, the requirement of this `target_feature` function.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { fold_slice_avx512(kind, s) },
        // SAFETY: `Avx2` means the CPU supports AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { fold_slice_avx2(kind, s) },
        _ => fold_slice_portable(kind, s),
    }
}

pub(crate) fn reduce<E: Float>(kind: ReduceKind, x: &[E], l: &Layout, axes: &[usize], out: &mut [E]) {
    let rank = l.dims.len();
    let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
    let pick = |src: &Dims, idx: &[usize]| Dims::from_slice(&idx.iter().map(|&i| src[i]).collect::<Vec<_>>());
    let kept_layout = Layout { dims: pick(&l.dims, &kept), strides: pick(&l.strides, &kept), offset: l.offset };
    let red_layout = Layout { dims: pick(&l.dims, axes), strides: pick(&l.strides, axes), offset: 0 };
    let inner = red_layout.numel();
    if inner == 0 {
        out.fill(E::from_acc(identity(kind)));
        return;
    }

    if red_layout.is_contiguous() {
        let fold_row = |o: usize| {
            let mut rem = o;
            let mut base = kept_layout.offset;
            for d in (0..kept_layout.dims.len()).rev() {
                base += (rem % kept_layout.dims[d]) * kept_layout.strides[d];
                rem /= kept_layout.dims[d];
            }
            fold_slice(kind, &x[base..base + inner])
        };
        if out.len() * inner >= PAR_THRESHOLD && out.len() > 1 {
            // Enough rows per task that each covers at least a few pages of input.
            let min_rows = (PAR_THRESHOLD / inner).max(1);
            out.par_iter_mut().enumerate().with_min_len(min_rows).for_each(|(o, v)| *v = fold_row(o));
        } else if out.len() == 1 && inner >= PAR_THRESHOLD {
            // One long row: fold chunks in parallel, then combine.
            let base = kept_layout.offset;
            let parts: Vec<E> = x[base..base + inner].par_chunks(1 << 16).map(|c| fold_slice(kind, c)).collect();
            out[0] = fold_slice(kind, &parts);
        } else {
            out.iter_mut().enumerate().for_each(|(o, v)| *v = fold_row(o));
        }
        return;
    }

    let leading = axes.iter().enumerate().all(|(i, &a)| a == i);
    if leading && l.is_contiguous() {
        let cols = out.len();
        let rows = inner;
        let x = &x[l.offset..l.offset + rows * cols];
        let accumulate_cols = |j0: usize, dst: &mut [E]| {
            let mut acc = vec![identity::<E::Acc>(kind); dst.len()];
            for r in 0..rows {
                let row = &x[r * cols + j0..r * cols + j0 + dst.len()];
                for (a, v) in acc.iter_mut().zip(row) {
                    *a = combine(kind, *a, v.to_acc());
                }
            }
            for (d, a) in dst.iter_mut().zip(acc) {
                *d = E::from_acc(a);
            }
        };
        const COLS: usize = 1 << 10;
        if rows * cols >= PAR_THRESHOLD {
            out.par_chunks_mut(COLS).enumerate().for_each(|(c, dst)| accumulate_cols(c * COLS, dst));
        } else {
            accumulate_cols(0, out);
        }
        return;
    }

    // General case: copy into (kept..., reduced...) order, then fold rows.
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let pl = l.permuted(&perm);
    let mut tmp = vec![E::default(); pl.numel()];
    zip_map(&mut tmp, &pl.dims, [(x, &pl)], |o, [v]| *o = v);
    let c = Layout::contiguous(pl.dims);
    let tail: Vec<usize> = (kept.len()..rank).collect();
    reduce(kind, &tmp, &c, &tail, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dims: &[usize], axes: &[usize], kind: ReduceKind) -> Vec<f64> {
        let d = Dims::from_slice(dims);
        let x: Vec<f64> = (0..d.numel()).map(|i| ((i * 7919) % 31) as f64 - 15.0).collect();
        let l = Layout::contiguous(d);
        let n: usize = (0..dims.len()).filter(|i| !axes.contains(i)).map(|i| dims[i]).product();
        let mut out = vec![0.0; n];
        reduce(kind, &x, &l, axes, &mut out);
        out
    }

    fn naive(dims: &[usize], axes: &[usize], kind: ReduceKind) -> Vec<f64> {
        let d = Dims::from_slice(dims);
        let strides = d.contiguous_strides();
        let kept: Vec<usize> = (0..dims.len()).filter(|i| !axes.contains(i)).collect();
        let n: usize = kept.iter().map(|&i| dims[i]).product();
        let mut out = vec![identity::<f64>(kind); n];
        for i in 0..d.numel() {
            let mut o = 0;
            for &k in &kept {
                o = o * dims[k] + (i / strides[k]) % dims[k];
            }
            let v = ((i * 7919) % 31) as f64 - 15.0;
            out[o] = combine(kind, out[o], v);
        }
        out
    }

    #[test]
    fn every_path_matches_a_naive_loop() {
        let small: &[(&[usize], &[usize])] =
            &[(&[4, 37], &[1]), (&[4, 5], &[0]), (&[3, 4, 5], &[1]), (&[3, 4, 5], &[0, 2]), (&[3, 4, 5], &[0, 1])];
        // the parallel paths; minutes under Miri, which the small cases already take through the
        // unsafe dispatch
        let large: &[(&[usize], &[usize])] =
            if cfg!(miri) { &[] } else { &[(&[300, 300], &[0]), (&[2, 70000], &[1]), (&[1, 70000], &[1])] };
        for &(dims, axes) in small.iter().chain(large) {
            for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min] {
                assert_eq!(run(dims, axes, kind), naive(dims, axes, kind), "{dims:?} {axes:?} {kind:?}");
            }
        }
    }
}
