//! Cross-entropy of logit rows against class indices in one pass each way: the forward keeps
//! only each row's log-sum-exp (no log-probability matrix), and the backward writes
//! `softmax(x) - onehot(target)` straight into the gradient.

use super::fast_math::Simd;
use super::matmul::{downcast, downcast_mut};
use super::softmax::{exp_into, lane_sum, row_max};
use super::strided::{PAR_THRESHOLD, store};
use super::vector;
use crate::compat::prelude::*;
use crate::dtypes::{Dtype, Float, IndexDtype};
use crate::error::{Error, Result};
use crate::par::*;
use num_traits::{Float as _, Zero as _};

/// `(loss, log-sum-exp)` of one row against class `t`.
#[inline(always)]
fn row_forward<E: Float>(x: &[E], t: usize, scratch: &mut Vec<E::Acc>) -> (E::Acc, E::Acc) {
    let max = row_max(x);
    let shift = if max.is_finite() { max } else { E::Acc::zero() };
    scratch.clear();
    scratch.resize(x.len(), E::Acc::zero());
    exp_into(x, scratch, shift, |e| e);
    let lse = shift + lane_sum(scratch, |v: E::Acc| v).ln();
    (lse - x[t].to_acc(), lse)
}

/// Adds `g * (softmax(x) - onehot(t))` into `gx` (writes it when `!accumulate`).
#[inline(always)]
fn row_backward<E: Float>(
    x: &[E],
    t: usize,
    lse: E::Acc,
    g: E::Acc,
    gx: &mut [E],
    scratch: &mut Vec<E::Acc>,
    accumulate: bool,
) {
    scratch.clear();
    scratch.resize(x.len(), E::Acc::zero());
    exp_into(x, scratch, lse, |e| e);
    for (o, p) in gx.iter_mut().zip(scratch.iter()) {
        store(o, g * *p, accumulate);
    }
    gx[t] = E::from_acc(gx[t].to_acc() - g);
}

/// The two row functions compiled for AVX2 + FMA, so that the exponentials use 8-wide vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_forward_avx2<E: Float>(x: &[E], t: usize, scratch: &mut Vec<E::Acc>) -> (E::Acc, E::Acc) {
    row_forward(x, t, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_backward_avx2<E: Float>(
    x: &[E],
    t: usize,
    lse: E::Acc,
    g: E::Acc,
    gx: &mut [E],
    scratch: &mut Vec<E::Acc>,
    accumulate: bool,
) {
    row_backward(x, t, lse, g, gx, scratch, accumulate)
}

/// [`row_forward`] compiled for AVX-512F: 16-wide vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn row_forward_avx512<E: Float>(x: &[E], t: usize, scratch: &mut Vec<E::Acc>) -> (E::Acc, E::Acc) {
    row_forward(x, t, scratch)
}

fn forward_dispatch<E: Float>(x: &[E], t: usize, scratch: &mut Vec<E::Acc>, simd: Simd) -> (E::Acc, E::Acc) {
    if let Some(lse) = downcast::<E, f32>(x).and_then(|x| vector::logsumexp(simd, x)) {
        let lse = E::Acc::cast_f32(lse);
        return (lse - x[t].to_acc(), lse);
    }
    match simd {
        // SAFETY: `Simd::detect` gives `Avx512` only when the CPU supports AVX-512F, AVX2 and
        // FMA, and `Avx2` only with AVX2 and FMA: the requirement of a `target_feature`
        // function.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { row_forward_avx512(x, t, scratch) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { row_forward_avx2(x, t, scratch) },
        _ => row_forward(x, t, scratch),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_dispatch<E: Float>(
    x: &[E],
    t: usize,
    lse: E::Acc,
    g: E::Acc,
    gx: &mut [E],
    scratch: &mut Vec<E::Acc>,
    accumulate: bool,
    simd: Simd,
) {
    if let (Some(x32), Some(gx32)) = (downcast::<E, f32>(x), downcast_mut::<E, f32>(&mut *gx))
        && vector::scaled_softmax(simd, x32, lse.as_f32(), g.as_f32(), gx32, accumulate).is_some()
    {
        gx[t] = E::from_acc(gx[t].to_acc() - g);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Baseline {
        // SAFETY: as in `forward_dispatch`: the CPU has AVX2 and FMA.
        unsafe { row_backward_avx2(x, t, lse, g, gx, scratch, accumulate) };
        return;
    }
    row_backward(x, t, lse, g, gx, scratch, accumulate)
}

/// Each row's target class, checked against the row length.
fn targets<I: IndexDtype>(target: &[I], classes: usize) -> Result<Vec<usize>> {
    target
        .iter()
        .map(|t| match t.to_index() {
            Some(i) if i < classes => Ok(i),
            _ => Err(Error::IndexOutOfRange { op: "cross_entropy", index: t.as_f64() as i64, size: classes }),
        })
        .collect()
}

/// Per-row losses `logsumexp(x) - x[target]` into `loss`, and each row's log-sum-exp into `lse`.
pub(crate) fn forward<E: Float, I: IndexDtype>(
    x: &[E],
    row: usize,
    target: &[I],
    loss: &mut [E],
    lse: &mut [f64],
) -> Result<()> {
    let t = targets(target, row)?;
    if row == 0 {
        return Ok(());
    }
    let simd = Simd::detect();
    let one = |scratch: &mut Vec<E::Acc>, (r, (l, s)): (usize, (&mut E, &mut f64))| {
        let (v, m) = forward_dispatch(&x[r * row..(r + 1) * row], t[r], scratch, simd);
        (*l, *s) = (E::from_acc(v), m.as_f64());
    };
    if x.len() >= PAR_THRESHOLD {
        loss.par_iter_mut().zip(lse.par_iter_mut()).enumerate().for_each_init(Vec::new, one);
    } else {
        let mut scratch = Vec::new();
        loss.iter_mut().zip(lse.iter_mut()).enumerate().for_each(|p| one(&mut scratch, p));
    }
    Ok(())
}

/// Adds `gy[r] * (softmax(x_r) - onehot(target_r))` into each row of `gx` (writes it when
/// `!accumulate`).
pub(crate) fn backward<E: Float, I: IndexDtype>(
    x: &[E],
    row: usize,
    target: &[I],
    lse: &[f64],
    gy: &[E],
    gx: &mut [E],
    accumulate: bool,
) -> Result<()> {
    let t = targets(target, row)?;
    if row == 0 {
        return Ok(());
    }
    let simd = Simd::detect();
    let one = |scratch: &mut Vec<E::Acc>, (r, gx): (usize, &mut [E])| {
        let (lse, g) = (E::Acc::cast_f64(lse[r]), gy[r].to_acc());
        backward_dispatch(&x[r * row..(r + 1) * row], t[r], lse, g, gx, scratch, accumulate, simd);
    };
    if x.len() >= PAR_THRESHOLD {
        gx.par_chunks_mut(row).enumerate().for_each_init(Vec::new, one);
    } else {
        let mut scratch = Vec::new();
        gx.chunks_mut(row).enumerate().for_each(|p| one(&mut scratch, p));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition, and the gradient against `softmax - onehot` (Miri runs this).
    #[test]
    fn rows_match_the_definition() {
        let x: Vec<f64> = (0..3 * 7).map(|i| ((i * 5) % 11) as f64 / 3.0 - 1.5).collect();
        let target = [6i64, 0, 3];
        let (mut loss, mut lse) = (vec![0.0; 3], vec![0.0; 3]);
        forward(&x, 7, &target, &mut loss, &mut lse).unwrap();
        let mut gx = vec![0.0; x.len()];
        backward(&x, 7, &target, &lse, &[1.0, 2.0, 0.5], &mut gx, true).unwrap();
        // written over stale contents, the same values
        let mut fresh = vec![f64::NAN; x.len()];
        backward(&x, 7, &target, &lse, &[1.0, 2.0, 0.5], &mut fresh, false).unwrap();
        // (not bit for bit: Miri perturbs `exp` between calls)
        assert!(fresh.iter().zip(&gx).all(|(a, b)| (a - b).abs() < 1e-12), "{fresh:?} {gx:?}");
        for (r, row) in x.chunks(7).enumerate() {
            let s: f64 = row.iter().map(|v| v.exp()).sum();
            assert!((loss[r] - (s.ln() - row[target[r] as usize])).abs() < 1e-12);
            for (j, v) in row.iter().enumerate() {
                let onehot = if j == target[r] as usize { 1.0 } else { 0.0 };
                let want = [1.0, 2.0, 0.5][r] * (v.exp() / s - onehot);
                assert!((gx[r * 7 + j] - want).abs() < 1e-12);
            }
        }
        assert!(forward(&x, 7, &[7i64, 0, 0], &mut loss, &mut lse).is_err());
    }
}
