//! Row normalisation (layer norm, RMS norm) with an optional per-column affine, one row per task:
//! statistics in one pass over the row, the normalised and scaled output in a second, and the
//! backward in two more. The statistics are kept for the backward.

use super::fast_math::Simd;
use super::matmul::{downcast, downcast_mut};
use super::softmax::lane_sum;
use super::strided::{PAR_THRESHOLD, store};
use super::vector::{self, RowNorm, RowNormGrad};
use crate::compat::prelude::*;
use crate::dtypes::{Dtype, Float};
use crate::par::*;
use num_traits::{One as _, Zero as _};

fn rows_of(len: usize, row: usize) -> usize {
    len.checked_div(row).unwrap_or(0)
}

/// The per-column scale and shift in the accumulator type (ones and zeros when absent).
fn affine<E: Float>(row: usize, w: Option<&[E]>, b: Option<&[E]>) -> (Vec<E::Acc>, Vec<E::Acc>) {
    let wv = w.map_or_else(|| vec![E::Acc::one(); row], |w| w.iter().map(|v| v.to_acc()).collect());
    let bv = b.map_or_else(|| vec![E::Acc::zero(); row], |b| b.iter().map(|v| v.to_acc()).collect());
    (wv, bv)
}

/// `y = (x - mean) * rstd * w + b` per row (without `- mean` when `!center`); `w` and `b` are
/// per-column and optional. `stats_out` receives each row's mean (0 without centring) and then
/// each row's `1 / sqrt(var + eps)` (of the mean square without centring), in f64.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_rows<E: Float>(
    x: &[E],
    row: usize,
    eps: f64,
    center: bool,
    w: Option<&[E]>,
    b: Option<&[E]>,
    y: &mut [E],
    stats_out: &mut [f64],
) {
    let rows = rows_of(x.len(), row);
    if rows == 0 {
        return;
    }
    let (wv, bv) = affine(row, w, b);
    let n = E::Acc::cast_f64(row as f64);
    let rule = Forward { wv: &wv, bv: &bv, n, eps: E::Acc::cast_f64(eps), center };
    let simd = Simd::detect();
    // f32 rows take the hand-written vector loops (`vector.rs`)
    let rule32 = match (downcast::<E::Acc, f32>(&wv), downcast::<E::Acc, f32>(&bv)) {
        (Some(w), Some(b)) => Some(RowNorm { w, b, center, eps: eps as f32 }),
        _ => None,
    };
    let one_row = |r: usize, yr: &mut [E], st: &mut (f64, f64)| {
        let xr = &x[r * row..(r + 1) * row];
        if let (Some(p), Some(x32), Some(y32)) = (&rule32, downcast::<E, f32>(xr), downcast_mut::<E, f32>(&mut *yr))
            && let Some((mean, rstd)) = vector::norm(simd, p, x32, y32)
        {
            *st = (mean as f64, rstd as f64);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd != Simd::Baseline {
            // SAFETY: `Simd::detect` gives a level above the baseline only when the CPU has AVX2
            // and FMA, the one requirement of a `target_feature` function.
            *st = unsafe { rule.row_avx2(xr, yr) };
            return;
        }
        *st = rule.row(xr, yr);
    };
    let mut stats = vec![(0.0f64, 0.0f64); rows];
    if x.len() >= PAR_THRESHOLD {
        y.par_chunks_mut(row).zip(stats.par_iter_mut()).enumerate().for_each(|(r, (yr, st))| one_row(r, yr, st));
    } else {
        y.chunks_mut(row).zip(stats.iter_mut()).enumerate().for_each(|(r, (yr, st))| one_row(r, yr, st));
    }
    for (r, (m, s)) in stats.into_iter().enumerate() {
        (stats_out[r], stats_out[rows + r]) = (m, s);
    }
}

/// What every row of [`norm_rows`] shares.
struct Forward<'a, A> {
    wv: &'a [A],
    bv: &'a [A],
    n: A,
    eps: A,
    center: bool,
}

impl<A: Float> Forward<'_, A> {
    /// One row: writes `yr` and returns the row's `(mean, rstd)`.
    #[inline(always)]
    fn row<E: Float<Acc = A>>(&self, xr: &[E], yr: &mut [E]) -> (f64, f64) {
        let mean = if self.center { lane_sum(xr, |v: E| v.to_acc()) / self.n } else { A::zero() };
        let var = lane_sum(xr, |v: E| {
            let d = v.to_acc() - mean;
            d * d
        }) / self.n;
        let rstd = (var + self.eps).sqrt().recip();
        for (((o, v), w), b) in yr.iter_mut().zip(xr).zip(self.wv).zip(self.bv) {
            *o = E::from_acc((v.to_acc() - mean) * rstd * *w + *b);
        }
        (mean.as_f64(), rstd.as_f64())
    }

    /// [`Forward::row`] compiled for AVX2 + FMA (8-wide vectors; the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2<E: Float<Acc = A>>(&self, xr: &[E], yr: &mut [E]) -> (f64, f64) {
        self.row(xr, yr)
    }
}

/// What every row of [`norm_rows_backward`] shares.
struct Backward<'a, A> {
    wv: &'a [A],
    n: A,
    center: bool,
    want_params: bool,
    accumulate: bool,
}

impl<A: Float> Backward<'_, A> {
    /// One row: the input gradient into `gxr`, and the row's terms of the parameter gradients
    /// added to `acc` when they are wanted.
    #[inline(always)]
    fn row<E: Float<Acc = A>>(&self, xr: &[E], gyr: &[E], mean: A, rstd: A, gxr: &mut [E], acc: &mut (Vec<A>, Vec<A>)) {
        let wv = self.wv;
        // Eight running sums each, so that the additions do not wait on one another.
        let (mut lanes_g, mut lanes_gx) = ([A::zero(); 8], [A::zero(); 8]);
        let (xc, gc, wc) = (xr.chunks_exact(8), gyr.chunks_exact(8), wv.chunks_exact(8));
        let tail = (xc.remainder(), gc.remainder(), wc.remainder());
        for ((xs, gs), ws) in xc.zip(gc).zip(wc) {
            for i in 0..8 {
                let g = gs[i].to_acc() * ws[i];
                lanes_g[i] = lanes_g[i] + g;
                lanes_gx[i] = lanes_gx[i] + g * (xs[i].to_acc() - mean);
            }
        }
        let (mut sum_g, mut sum_gx) = (A::zero(), A::zero());
        for ((xv, gv), w) in tail.0.iter().zip(tail.1).zip(tail.2) {
            let g = gv.to_acc() * *w;
            sum_g = sum_g + g;
            sum_gx = sum_gx + g * (xv.to_acc() - mean);
        }
        let sum_g = lanes_g.into_iter().fold(sum_g, |a, v| a + v);
        let sum_gx = lanes_gx.into_iter().fold(sum_gx, |a, v| a + v) * rstd;
        let mean_g = if self.center { sum_g / self.n } else { A::zero() };
        let mean_gx = sum_gx / self.n;
        let rows = gxr.iter_mut().zip(xr).zip(gyr).zip(wv);
        if self.want_params {
            // one pass: the input gradient, and this row's terms of the parameter gradients
            for ((((o, xv), gv), w), (aw, ab)) in rows.zip(acc.0.iter_mut().zip(acc.1.iter_mut())) {
                let (xhat, g) = ((xv.to_acc() - mean) * rstd, gv.to_acc());
                store(o, rstd * (g * *w - mean_g - xhat * mean_gx), self.accumulate);
                *aw = *aw + g * xhat;
                *ab = *ab + g;
            }
        } else {
            for (((o, xv), gv), w) in rows {
                let xhat = (xv.to_acc() - mean) * rstd;
                store(o, rstd * (gv.to_acc() * *w - mean_g - xhat * mean_gx), self.accumulate);
            }
        }
    }

    /// [`Backward::row`] compiled for AVX2 + FMA (8-wide vectors; the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2<E: Float<Acc = A>>(
        &self,
        xr: &[E],
        gyr: &[E],
        mean: A,
        rstd: A,
        gxr: &mut [E],
        acc: &mut (Vec<A>, Vec<A>),
    ) {
        self.row(xr, gyr, mean, rstd, gxr, acc)
    }
}

/// Adds the gradients of [`norm_rows`] into `gx` and, when given, `gw` and `gb` (each written
/// instead where its `accumulate` flag is `false`):
/// with `g = gy * w` and `xhat = (x - mean) * rstd`,
/// `gx = rstd * (g - mean(g) - xhat * mean(g * xhat))` (no `mean(g)` term without centring),
/// `gw = Σ_rows gy * xhat`, `gb = Σ_rows gy`. Rows run in parallel; each task sums its rows'
/// `gw` and `gb` terms, and the partial sums are added at the end.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_rows_backward<E: Float>(
    x: &[E],
    row: usize,
    center: bool,
    stats: &[f64],
    w: Option<&[E]>,
    gy: &[E],
    gx: &mut [E],
    accumulate: [bool; 3],
    gw: Option<&mut [E]>,
    gb: Option<&mut [E]>,
) {
    let rows = rows_of(x.len(), row);
    if rows == 0 {
        return;
    }
    let (wv, _) = affine::<E>(row, w, None);
    let n = E::Acc::cast_f64(row as f64);
    let want_params = gw.is_some() || gb.is_some();
    type Partial<A> = (Vec<A>, Vec<A>);
    let rule = Backward { wv: &wv, n, center, want_params, accumulate: accumulate[0] };
    let simd = Simd::detect();
    let rule32 = downcast::<E::Acc, f32>(&wv).map(|w| RowNormGrad { w, center, accumulate: accumulate[0] });
    let one_row = |r: usize, gxr: &mut [E], acc: &mut Partial<E::Acc>| {
        let (xr, gyr) = (&x[r * row..(r + 1) * row], &gy[r * row..(r + 1) * row]);
        if let (Some(p), Some(x32), Some(gy32), Some(gx32)) =
            (&rule32, downcast::<E, f32>(xr), downcast::<E, f32>(gyr), downcast_mut::<E, f32>(&mut *gxr))
        {
            let params =
                match (want_params, downcast_mut::<E::Acc, f32>(&mut acc.0), downcast_mut::<E::Acc, f32>(&mut acc.1)) {
                    (true, Some(aw), Some(ab)) => Some((aw, ab)),
                    _ => None,
                };
            let stats = (stats[r] as f32, stats[rows + r] as f32);
            if vector::norm_backward(simd, p, (x32, gy32), stats, gx32, params).is_some() {
                return;
            }
        }
        let (mean, rstd) = (E::Acc::cast_f64(stats[r]), E::Acc::cast_f64(stats[rows + r]));
        #[cfg(target_arch = "x86_64")]
        if simd != Simd::Baseline {
            // SAFETY: as in `norm_rows`: the CPU has AVX2 and FMA.
            return unsafe { rule.row_avx2(xr, gyr, mean, rstd, gxr, acc) };
        }
        rule.row(xr, gyr, mean, rstd, gxr, acc)
    };
    let empty = || if want_params { (vec![E::Acc::zero(); row], vec![E::Acc::zero(); row]) } else { (vec![], vec![]) };
    let add = |mut a: Partial<E::Acc>, b: Partial<E::Acc>| {
        a.0.iter_mut().zip(b.0).for_each(|(a, b)| *a = *a + b);
        a.1.iter_mut().zip(b.1).for_each(|(a, b)| *a = *a + b);
        a
    };
    let sums = if x.len() >= PAR_THRESHOLD {
        // A few blocks of rows per thread, each with one pair of partial sums.
        let block = rows.div_ceil(4 * crate::par::threads()).max(1);
        gx.par_chunks_mut(block * row)
            .enumerate()
            .map(|(k, rows)| {
                let mut acc = empty();
                rows.chunks_mut(row).enumerate().for_each(|(r, gxr)| one_row(k * block + r, gxr, &mut acc));
                acc
            })
            .reduce(empty, add)
    } else {
        let mut acc = empty();
        gx.chunks_mut(row).enumerate().for_each(|(r, gxr)| one_row(r, gxr, &mut acc));
        acc
    };
    if let Some(gw) = gw {
        gw.iter_mut().zip(sums.0).for_each(|(o, a)| store(o, a, accumulate[1]));
    }
    if let Some(gb) = gb {
        gb.iter_mut().zip(sums.1).for_each(|(o, a)| store(o, a, accumulate[2]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layer norm rows against the definition, and the backward written fresh equal to the
    /// backward added to zeros (Miri runs this: it covers the AVX2 dispatch).
    #[test]
    fn rows_match_the_definition_written_or_added() {
        let (row, rows) = (11, 3);
        let x: Vec<f64> = (0..row * rows).map(|i| ((i * 7) % 13) as f64 / 4.0 - 1.5).collect();
        let w: Vec<f64> = (0..row).map(|j| 0.5 + j as f64 / 10.0).collect();
        let b: Vec<f64> = (0..row).map(|j| j as f64 / 20.0).collect();
        let (mut y, mut stats) = (vec![0.0; x.len()], vec![0.0; 2 * rows]);
        norm_rows(&x, row, 1e-5, true, Some(&w), Some(&b), &mut y, &mut stats);
        for (r, xr) in x.chunks(row).enumerate() {
            let mean = xr.iter().sum::<f64>() / row as f64;
            let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / row as f64;
            for j in 0..row {
                let want = (xr[j] - mean) / (var + 1e-5).sqrt() * w[j] + b[j];
                assert!((y[r * row + j] - want).abs() < 1e-12);
            }
        }
        let gy: Vec<f64> = (0..x.len()).map(|i| ((i * 5) % 7) as f64 / 3.0 - 1.0).collect();
        let grads = |accumulate: bool, init: f64| {
            let (mut gx, mut gw, mut gb) = (vec![init; x.len()], vec![init; row], vec![init; row]);
            let flags = [accumulate; 3];
            norm_rows_backward(&x, row, true, &stats, Some(&w), &gy, &mut gx, flags, Some(&mut gw), Some(&mut gb));
            (gx, gw, gb)
        };
        let (added, fresh) = (grads(true, 0.0), grads(false, f64::NAN));
        assert_eq!(added, fresh);
        // the bias gradient is the column sum of gy; the input gradient of each row sums to 0
        for j in 0..row {
            let want: f64 = (0..rows).map(|r| gy[r * row + j]).sum();
            assert!((fresh.2[j] - want).abs() < 1e-12);
        }
        for r in 0..rows {
            assert!(fresh.0[r * row..(r + 1) * row].iter().sum::<f64>().abs() < 1e-9);
        }
    }
}
