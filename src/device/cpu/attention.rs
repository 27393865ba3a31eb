//! Fused scaled dot-product attention. Per head and block of queries, the scores, their masked
//! softmax and the product with the values stay in buffers the size of the block (in L2),
//! where the composed op writes and rereads `[heads, L, S]` tensors between its four kernels.
//! The steps are the composed op's, in its order (queries times the scale, `q kᵀ`, masked
//! entries set to -inf, softmax over the row, times `v`), so a block of every query of a head
//! gives the composed op's bits; a causal block computes only the keys its queries can see.

use super::fast_math::Simd;
use super::matmul::{GemmScalar, MatRef, gemm_into, gemm_into_scaled};
use super::softmax;
use crate::compat::prelude::*;
use crate::device::AttnGeometry;
use crate::dtypes::Float;
use crate::par::*;

/// A block of queries holds at most this many scores (64 KiB of f32) unless that would take
/// fewer than [`MIN_BLOCK_ROWS`] queries.
const BLOCK_SCORES: usize = 16 * 1024;
const MIN_BLOCK_ROWS: usize = 16;
/// Attention with fewer multiply-adds than this runs on one thread.
const PAR_MACS: usize = 96 * 96 * 96;

/// Queries per block: as many as fit [`BLOCK_SCORES`], in enough blocks for every thread.
fn block_rows(g: &AttnGeometry, threads: usize) -> usize {
    let by_cache = (BLOCK_SCORES / g.keys.max(1)).max(MIN_BLOCK_ROWS);
    let blocks = g.queries.div_ceil(by_cache).max(threads.div_ceil(g.heads.max(1))).min(g.queries.max(1));
    g.queries.div_ceil(blocks.max(1)).max(1)
}

/// A block of queries of one head, and where its results go.
struct Block<'a, T> {
    head: usize,
    rows: core::ops::Range<usize>,
    out: &'a mut [T],
    weights: Option<&'a mut [T]>,
}

/// `out = softmax(scale q kᵀ + mask) v` for every head (see [`AttnGeometry`] for the layouts;
/// `keep` is `[queries, keys]`, `true` where a pair takes part). With `weights`, the softmax
/// `[heads, queries, keys]` is written there too (zero where a causal block computed nothing).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: GemmScalar + Float>(
    g: &AttnGeometry,
    q: &[T],
    k: &[T],
    v: &[T],
    keep: Option<&[bool]>,
    out: &mut [T],
    weights: Option<&mut [T]>,
) {
    let (l, s, d, dv) = (g.queries, g.keys, g.depth, g.value_depth);
    assert!(l > 0 && s > 0 && d > 0 && dv > 0, "attention kernel: empty sizes {g:?}");
    assert!(q.len() == g.heads * l * d && k.len() == g.heads * s * d && v.len() == g.heads * s * dv);
    assert!(out.len() == g.heads * l * dv && keep.is_none_or(|m| m.len() == l * s));
    let parallel = g.macs() >= PAR_MACS && threads() > 1;
    let rows = block_rows(g, if parallel { threads() } else { 1 });
    let mut blocks = Vec::with_capacity(g.heads * l.div_ceil(rows));
    let mut weights = weights.map(|w| {
        assert_eq!(w.len(), g.heads * l * s, "attention kernel: weights");
        w.chunks_mut(l * s)
    });
    for (head, mut out) in out.chunks_mut(l * dv).enumerate() {
        let mut w = weights.as_mut().map(|w| w.next().expect("a head's weights"));
        for first in (0..l).step_by(rows) {
            let n = rows.min(l - first);
            let (o, rest) = core::mem::take(&mut out).split_at_mut(n * dv);
            out = rest;
            let wb = w.take().map(|wh| {
                let (block, rest) = wh.split_at_mut(n * s);
                w = Some(rest);
                block
            });
            blocks.push(Block { head, rows: first..first + n, out: o, weights: wb });
        }
    }
    let simd = Simd::detect();
    let run = |b: Block<'_, T>| forward_block(g, q, k, v, keep, b, simd);
    if parallel {
        blocks.into_par_iter().for_each(run);
    } else {
        blocks.into_iter().for_each(run);
    }
}

fn forward_block<T: GemmScalar + Float>(
    g: &AttnGeometry,
    q: &[T],
    k: &[T],
    v: &[T],
    keep: Option<&[bool]>,
    b: Block<'_, T>,
    simd: Simd,
) {
    let (l, s, d, dv) = (g.queries, g.keys, g.depth, g.value_depth);
    let (n, cols) = (b.rows.len(), g.visible_keys(b.rows.clone()));
    let own_weights = if b.weights.is_some() { 0 } else { n * cols };
    T::with_scratch(n * d + n * cols + own_weights, |scratch| {
        let (scaled, rest) = scratch.split_at_mut(n * d);
        let (scores, rest) = rest.split_at_mut(n * cols);
        let scale = T::cast_f64(g.scale);
        let qb = &q[(b.head * l + b.rows.start) * d..][..n * d];
        scaled.iter_mut().zip(qb).for_each(|(o, &x)| *o = x * scale);
        let (kh, vh) = (&k[b.head * s * d..][..cols * d], &v[b.head * s * dv..][..cols * dv]);
        gemm_into(MatRef::rows(scaled, n, d), MatRef::rows(kh, cols, d).t(), scores, cols, false, false);
        let (weights, stride) = match b.weights {
            Some(w) => (w, s),
            None => (&mut rest[..], cols),
        };
        let mut acc = Vec::new();
        for (i, (x, y)) in scores.chunks_exact_mut(cols).zip(weights.chunks_mut(stride)).enumerate() {
            let query = b.rows.start + i;
            if g.causal {
                x[(query + 1).min(cols)..].fill(T::neg_infinity());
            }
            if let Some(keep) = keep {
                x.iter_mut().zip(&keep[query * s..][..cols]).filter(|(_, k)| !**k).for_each(|(x, _)| {
                    *x = T::neg_infinity();
                });
            }
            softmax::row_forward_dispatch(x, &mut y[..cols], &mut acc, false, simd);
            y[cols..].fill(T::zero());
        }
        let p = MatRef::strided_rows(&weights[..], n, cols, stride);
        gemm_into(p, MatRef::rows(vh, cols, dv), b.out, dv, false, false);
    });
}

/// The gradients of [`forward`] for `q`, `k` and `v` (written, or added where `accumulate`),
/// from the output's gradient `gy` and the forward's `weights`: per head, with `P` the weights
/// and `dS = P ⊙ (dP - rowsum(dP ⊙ P))` the scores' gradient for `dP = gy vᵀ`:
/// `gv = Pᵀ gy`, `gq = scale dS k`, `gk = scale dSᵀ q`.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: GemmScalar + Float>(
    g: &AttnGeometry,
    q: &[T],
    k: &[T],
    v: &[T],
    weights: &[T],
    gy: &[T],
    [gq, gk, gv]: [&mut [T]; 3],
    accumulate: [bool; 3],
) {
    let (l, s, d, dv) = (g.queries, g.keys, g.depth, g.value_depth);
    assert!(l > 0 && s > 0 && d > 0 && dv > 0, "attention kernel: empty sizes {g:?}");
    assert!(weights.len() == g.heads * l * s && gy.len() == g.heads * l * dv);
    assert!(gq.len() == q.len() && gk.len() == k.len() && gv.len() == v.len() && q.len() == g.heads * l * d);
    let workers = if 2 * g.macs() >= PAR_MACS { threads() } else { 1 };
    // enough heads for every thread: a task per head; otherwise each product on every thread
    let per_head = g.heads >= workers && workers > 1;
    let gemm_parallel = !per_head && workers > 1;
    let head = |h: usize, (gq, (gk, gv)): (&mut [T], (&mut [T], &mut [T]))| {
        let (qh, kh, vh) = (&q[h * l * d..][..l * d], &k[h * s * d..][..s * d], &v[h * s * dv..][..s * dv]);
        let (p, gyh) =
            (MatRef::rows(&weights[h * l * s..][..l * s], l, s), MatRef::rows(&gy[h * l * dv..][..l * dv], l, dv));
        gemm_into(p.t(), gyh, gv, dv, accumulate[2], gemm_parallel);
        T::with_scratch(2 * l * s, |scratch| {
            let (dp, ds) = scratch.split_at_mut(l * s);
            gemm_into(gyh, MatRef::rows(vh, s, dv).t(), dp, s, false, gemm_parallel);
            for ((p, dp), ds) in p.data.chunks_exact(s).zip(dp.chunks_exact(s)).zip(ds.chunks_exact_mut(s)) {
                softmax::row_backward(p, dp, ds, false, false);
            }
            let (ds, scale) = (MatRef::rows(&ds[..], l, s), T::cast_f64(g.scale));
            gemm_into_scaled(ds, MatRef::rows(kh, s, d), gq, d, accumulate[0], scale, gemm_parallel);
            gemm_into_scaled(ds.t(), MatRef::rows(qh, l, d), gk, d, accumulate[1], scale, gemm_parallel);
        });
    };
    let heads = gq.chunks_mut(l * d).zip(gk.chunks_mut(s * d).zip(gv.chunks_mut(s * dv)));
    if per_head {
        heads.enumerate().collect::<Vec<_>>().into_par_iter().for_each(|(h, grads)| head(h, grads));
    } else {
        heads.enumerate().for_each(|(h, grads)| head(h, grads));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64: scores, mask, softmax, times `v`.
    fn definition(g: &AttnGeometry, q: &[f64], k: &[f64], v: &[f64], keep: Option<&[bool]>) -> Vec<f64> {
        let (l, s, d, dv) = (g.queries, g.keys, g.depth, g.value_depth);
        let mut out = vec![0.0; g.heads * l * dv];
        for h in 0..g.heads {
            for i in 0..l {
                let scores: Vec<f64> = (0..s)
                    .map(|j| {
                        let visible = (!g.causal || j <= i) && keep.is_none_or(|m| m[i * s + j]);
                        let dot: f64 = (0..d).map(|c| q[(h * l + i) * d + c] * k[(h * s + j) * d + c]).sum();
                        if visible { dot * g.scale } else { f64::NEG_INFINITY }
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for c in 0..dv {
                    out[(h * l + i) * dv + c] = (0..s).map(|j| e[j] / total * v[(h * s + j) * dv + c]).sum();
                }
            }
        }
        out
    }

    fn data(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 7919 + seed * 104729) % 211) as f64 / 53.0 - 2.0).collect()
    }

    /// Blocks of several sizes (one block per head, several, a short last one), causal and
    /// boolean masks, with and without kept weights, against the definition; and the weights'
    /// rows sum to one with zeros where a causal block did not look.
    #[test]
    fn blocks_match_the_definition() {
        for (heads, l, s, causal, mask) in
            [(2, 5, 7, false, false), (3, 40, 33, true, false), (1, 37, 37, true, true), (2, 9, 600, false, true)]
        {
            let g = AttnGeometry { heads, queries: l, keys: s, depth: 3, value_depth: 4, scale: 0.6, causal };
            let (q, k, v) = (data(heads * l * 3, 1), data(heads * s * 3, 2), data(heads * s * 4, 3));
            let keep: Option<Vec<bool>> = mask.then(|| (0..l * s).map(|i| i % 5 != 2 || i % s == 0).collect());
            let want = definition(&g, &q, &k, &v, keep.as_deref());
            for kept in [false, true] {
                let mut out = vec![f64::NAN; heads * l * 4];
                let mut w = vec![f64::NAN; heads * l * s];
                forward(&g, &q, &k, &v, keep.as_deref(), &mut out, kept.then_some(&mut w[..]));
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-12, "{g:?} {a} {b}");
                }
                if kept {
                    for (r, row) in w.chunks(s).enumerate() {
                        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                        let i = r % l;
                        assert!(!causal || row[(i + 1).min(s)..].iter().all(|&x| x == 0.0));
                    }
                }
            }
        }
        // threaded blocks (when this machine has threads) give the serial blocks' values
        let g = AttnGeometry { heads: 3, queries: 130, keys: 150, depth: 24, value_depth: 8, scale: 0.2, causal: true };
        assert!(g.macs() >= PAR_MACS);
        let (q, k, v) = (data(3 * 130 * 24, 4), data(3 * 150 * 24, 5), data(3 * 150 * 8, 6));
        let want = definition(&g, &q, &k, &v, None);
        let mut out = vec![0.0; 3 * 130 * 8];
        forward(&g, &q, &k, &v, None, &mut out, None);
        assert!(out.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    /// The backward against central differences of the forward, in f64, through every
    /// input, with and without accumulation.
    #[test]
    fn backward_matches_finite_differences() {
        for (heads, l, s, causal) in [(2, 4, 6, true), (1, 5, 3, false)] {
            let g = AttnGeometry { heads, queries: l, keys: s, depth: 3, value_depth: 2, scale: 0.7, causal };
            let (q, k, v) = (data(heads * l * 3, 7), data(heads * s * 3, 8), data(heads * s * 2, 9));
            let gy = data(heads * l * 2, 10);
            let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
                let mut out = vec![0.0; heads * l * 2];
                forward(&g, q, k, v, None, &mut out, None);
                out.iter().zip(&gy).map(|(o, g)| o * g).sum()
            };
            let mut out = vec![0.0; heads * l * 2];
            let mut w = vec![0.0; heads * l * s];
            forward(&g, &q, &k, &v, None, &mut out, Some(&mut w));
            let (mut gq, mut gk, mut gv) = (vec![1.0; q.len()], vec![1.0; k.len()], vec![1.0; v.len()]);
            backward(&g, &q, &k, &v, &w, &gy, [&mut gq, &mut gk, &mut gv], [false, true, false]);
            let numeric = |which: usize, i: usize| {
                let (mut a, mut b) = ([q.clone(), k.clone(), v.clone()], [q.clone(), k.clone(), v.clone()]);
                a[which][i] += 1e-6;
                b[which][i] -= 1e-6;
                (loss(&a[0], &a[1], &a[2]) - loss(&b[0], &b[1], &b[2])) / 2e-6
            };
            for (which, (grad, offset)) in [(&gq, 0.0), (&gk, 1.0), (&gv, 0.0)].into_iter().enumerate() {
                for (i, &x) in grad.iter().enumerate() {
                    let want = numeric(which, i) + offset;
                    assert!((x - want).abs() < 1e-6, "input {which}, element {i}: {x} vs {want}");
                }
            }
        }
    }
}
