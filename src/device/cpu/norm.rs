//! Row normalisation (layer norm, RMS norm) with an optional per-column affine, one row per task:
//! statistics in one pass over the row, the normalised and scaled output in a second, and the
//! backward in two more. The statistics are kept for the backward.

use super::softmax::lane_sum;
use super::strided::PAR_THRESHOLD;
use crate::dtypes::{Dtype, Float};
use num_traits::{Float as _, Zero as _};
use rayon::prelude::*;

fn rows_of(len: usize, row: usize) -> usize {
    len.checked_div(row).unwrap_or(0)
}

/// Runs `f(row index, row chunk of out)` over every row, in parallel for large inputs.
fn each_row<T: Send>(out: &mut [T], row: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if row == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(row).enumerate().for_each(|(r, o)| f(r, o));
    } else {
        out.chunks_mut(row).enumerate().for_each(|(r, o)| f(r, o));
    }
}

/// `y = (x - mean) * rstd * w + b` per row (without `- mean` when `!center`); `w` and `b` are
/// per-column and optional. `stats` receives each row's mean (0 without centring) and then each
/// row's `1 / sqrt(var + eps)` (of the mean square without centring), in f64.
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
    let mut stats = vec![(0.0f64, 0.0f64); rows];
    each_row(&mut stats, 1, |r, s| {
        let xr = &x[r * row..(r + 1) * row];
        let n = E::Acc::cast_f64(row as f64);
        let mean = if center { lane_sum(xr, |v: E| v.to_acc()) / n } else { E::Acc::zero() };
        let var = lane_sum(xr, |v: E| {
            let d = v.to_acc() - mean;
            d * d
        }) / n;
        s[0] = (mean.as_f64(), (var + E::Acc::cast_f64(eps)).sqrt().recip().as_f64());
    });
    each_row(y, row, |r, yr| {
        let xr = &x[r * row..(r + 1) * row];
        let (mean, rstd) = (E::Acc::cast_f64(stats[r].0), E::Acc::cast_f64(stats[r].1));
        for (j, (o, v)) in yr.iter_mut().zip(xr).enumerate() {
            let mut t = (v.to_acc() - mean) * rstd;
            if let Some(w) = w {
                t = t * w[j].to_acc();
            }
            if let Some(b) = b {
                t = t + b[j].to_acc();
            }
            *o = E::from_acc(t);
        }
    });
    for (r, (m, s)) in stats.into_iter().enumerate() {
        (stats_out[r], stats_out[rows + r]) = (m, s);
    }
}

/// Adds the gradients of [`norm_rows`] into `gx` and, when given, `gw` and `gb`:
/// with `g = gy * w` and `xhat = (x - mean) * rstd`,
/// `gx = rstd * (g - mean(g) - xhat * mean(g * xhat))` (no `mean(g)` term without centring),
/// `gw = Σ_rows gy * xhat`, `gb = Σ_rows gy`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_rows_backward<E: Float>(
    x: &[E],
    row: usize,
    center: bool,
    stats: &[f64],
    w: Option<&[E]>,
    gy: &[E],
    gx: &mut [E],
    gw: Option<&mut [E]>,
    gb: Option<&mut [E]>,
) {
    let n = E::Acc::cast_f64(row as f64);
    let rows = rows_of(x.len(), row);
    let stat = |r: usize| (E::Acc::cast_f64(stats[r]), E::Acc::cast_f64(stats[rows + r]));
    each_row(gx, row, |r, gxr| {
        let (xr, gyr) = (&x[r * row..(r + 1) * row], &gy[r * row..(r + 1) * row]);
        let (mean, rstd) = stat(r);
        let g = |j: usize| match w {
            Some(w) => gyr[j].to_acc() * w[j].to_acc(),
            None => gyr[j].to_acc(),
        };
        let xhat = |j: usize| (xr[j].to_acc() - mean) * rstd;
        let (mut sum_g, mut sum_gx) = (E::Acc::zero(), E::Acc::zero());
        for j in 0..row {
            sum_g = sum_g + g(j);
            sum_gx = sum_gx + g(j) * xhat(j);
        }
        let mean_g = if center { sum_g / n } else { E::Acc::zero() };
        let mean_gx = sum_gx / n;
        for (j, o) in gxr.iter_mut().enumerate() {
            *o = E::from_acc(o.to_acc() + rstd * (g(j) - mean_g - xhat(j) * mean_gx));
        }
    });
    // Column sums over rows: serial over rows, vectorised along the row.
    if let Some(gw) = gw {
        let mut acc = vec![E::Acc::zero(); row];
        for r in 0..rows {
            let (mean, rstd) = stat(r);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = *a + gy[r * row + j].to_acc() * (x[r * row + j].to_acc() - mean) * rstd;
            }
        }
        gw.iter_mut().zip(acc).for_each(|(o, a)| *o = E::from_acc(o.to_acc() + a));
    }
    if let Some(gb) = gb {
        let mut acc = vec![E::Acc::zero(); row];
        for r in 0..rows {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = *a + gy[r * row + j].to_acc();
            }
        }
        gb.iter_mut().zip(acc).for_each(|(o, a)| *o = E::from_acc(o.to_acc() + a));
    }
}
