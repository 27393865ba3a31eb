//! 2-D pooling over independent planes (batch times channels), one plane per task. A window's
//! taps that fall in the padding are skipped: max pooling treats padding as -inf, average
//! pooling divides by the whole window (`count_include_pad`) or by the taps inside.

use crate::compat::prelude::*;
use crate::device::{PoolGeometry, PoolWindows};
use crate::dtypes::{Dtype, Float};
use crate::par::*;
use num_traits::Zero;

/// Planes smaller than this many elements are pooled on one thread.
const PAR_LEN: usize = 1 << 15;

/// The taps of output index `o` along `axis` that land inside the input: `(first, count, step)`.
fn valid_taps(g: &PoolGeometry, axis: usize, o: usize) -> (usize, usize, usize) {
    let (start, taps, step) = g.window(axis, o);
    let n = g.input[axis] as isize;
    let mut first = 0;
    while first < taps && start + ((first * step) as isize) < 0 {
        first += 1;
    }
    let mut last = taps;
    while last > first && start + (((last - 1) * step) as isize) >= n {
        last -= 1;
    }
    ((start + (first * step) as isize).max(0) as usize, last - first, step)
}

/// The valid taps of every output row and column.
type Taps = Vec<(usize, usize, usize)>;
fn windows(g: &PoolGeometry) -> (Taps, Taps) {
    let along = |axis: usize| (0..g.output[axis]).map(|o| valid_taps(g, axis, o)).collect();
    (along(0), along(1))
}

/// Runs `f(plane index, output plane)` over every plane, in parallel when the work is large.
fn planes<E: Send>(out: &mut [E], plane_len: usize, work: usize, f: impl Fn(usize, &mut [E]) + Sync + Send) {
    if plane_len == 0 {
        return;
    }
    if work >= PAR_LEN {
        out.par_chunks_mut(plane_len).enumerate().for_each(|(p, o)| f(p, o));
    } else {
        out.chunks_mut(plane_len).enumerate().for_each(|(p, o)| f(p, o));
    }
}

/// Max pooling: each output is the largest tap of its window, and its index in the flattened
/// input plane (PyTorch's `return_indices`).
pub(crate) fn max_pool2d<E: Float>(x: &[E], g: &PoolGeometry, y: &mut [E], indices: &mut [i64]) {
    let ([h, w], [oh, ow]) = (g.input, g.output);
    assert!(x.len() == g.planes * h * w && y.len() == g.planes * oh * ow && indices.len() == y.len());
    if y.is_empty() {
        return;
    }
    let (rows, cols) = windows(g);
    let plane = |p: usize, y: &mut [E], idx: &mut [i64]| {
        let x = &x[p * h * w..(p + 1) * h * w];
        for (oi, &(r0, rn, rs)) in rows.iter().enumerate() {
            for (oj, &(c0, cn, cs)) in cols.iter().enumerate() {
                let mut best = (E::neg_infinity(), -1i64);
                for r in 0..rn {
                    let row = (r0 + r * rs) * w;
                    for c in 0..cn {
                        let i = row + c0 + c * cs;
                        // NaN propagates, as in PyTorch.
                        if best.1 < 0 || x[i] > best.0 || (x[i].is_nan() && !best.0.is_nan()) {
                            best = (x[i], i as i64);
                        }
                    }
                }
                (y[oi * ow + oj], idx[oi * ow + oj]) = best;
            }
        }
    };
    let chunks = y.chunks_mut(oh * ow).zip(indices.chunks_mut(oh * ow)).enumerate();
    if x.len() >= PAR_LEN {
        let chunks: Vec<_> = chunks.collect();
        chunks.into_par_iter().for_each(|(p, (y, idx))| plane(p, y, idx));
    } else {
        chunks.for_each(|(p, (y, idx))| plane(p, y, idx));
    }
}

/// The larger of `m` and `v`, NaN when either is (as PyTorch's max pooling).
#[inline(always)]
fn nan_max<E: Float>(m: E, v: E) -> E {
    if v > m || v.is_nan() { v } else { m }
}

/// Max pooling without the indices (inference): each output row is the column-wise max of its
/// window's input rows (a contiguous, vectorisable pass), then the max of each window's taps in
/// that row.
pub(crate) fn max_pool2d_values<E: Float>(x: &[E], g: &PoolGeometry, y: &mut [E]) {
    let ([h, w], [oh, ow]) = (g.input, g.output);
    assert!(x.len() == g.planes * h * w && y.len() == g.planes * oh * ow);
    if y.is_empty() {
        return;
    }
    if let PoolWindows::Sliding { kernel: [kh, kw], stride, padding: [0, 0], dilation: [1, 1] } = g.windows
        && stride == [kh, kw]
        && h == oh * kh
        && w == ow * kw
    {
        return max_pool_tiled(x, [kh, kw], w, ow, y);
    }
    let (rows, cols) = windows(g);
    // Sliding windows read each row's column max from a copy with `padding` -inf before it and
    // as many after as the last window reaches: -inf is what max pooling pads with, so every
    // window then has all its taps, `dilation` apart from column `j * stride` (no table, no
    // clipping at the borders, and loops the compiler unrolls for the common kernels).
    let sliding = match g.windows {
        PoolWindows::Sliding { kernel, stride, padding, dilation } => {
            Some((kernel[1], stride[1], padding[1], dilation[1]))
        }
        PoolWindows::Adaptive => None,
    };
    let lead = sliding.map_or(0, |(_, _, p, _)| p);
    let span = sliding.map_or(w, |(k, s, _, d)| (lead + w).max((ow - 1) * s + (k - 1) * d + 1));
    let row_windows: fn(&[E], &mut [E], usize, usize, usize) = match sliding {
        Some((2, 2, _, 1)) => |cm, out, _, _, _| windows_of::<E, 2, 2>(cm, out),
        Some((3, 2, _, 1)) => |cm, out, _, _, _| windows_of::<E, 3, 2>(cm, out),
        Some((3, 1, _, 1)) => |cm, out, _, _, _| windows_of::<E, 3, 1>(cm, out),
        _ => |cm, out, k, s, d| {
            for (j, o) in out.iter_mut().enumerate() {
                *o = (1..k).fold(cm[j * s], |m, c| nan_max(m, cm[j * s + c * d]));
            }
        },
    };
    // Planes go to tasks in groups of about `PAR_LEN` input elements, each with one buffer.
    let per_task = (PAR_LEN / (h * w).max(1)).max(1);
    let group = |(t, out): (usize, &mut [E])| {
        let mut padded = vec![E::neg_infinity(); span];
        for (i, out) in out.chunks_mut(oh * ow).enumerate() {
            let p = t * per_task + i;
            let x = &x[p * h * w..(p + 1) * h * w];
            for (&(r0, rn, rs), out_row) in rows.iter().zip(out.chunks_mut(ow)) {
                let column_max = &mut padded[lead..lead + w];
                match rn {
                    0 => column_max.fill(E::neg_infinity()),
                    _ => column_max.copy_from_slice(&x[r0 * w..][..w]),
                }
                for r in 1..rn {
                    let row = &x[(r0 + r * rs) * w..][..w];
                    for (m, &v) in column_max.iter_mut().zip(row) {
                        *m = nan_max(*m, v);
                    }
                }
                match sliding {
                    Some((k, s, _, d)) => row_windows(&padded, out_row, k, s, d),
                    None => {
                        for (o, &(c0, cn, cs)) in out_row.iter_mut().zip(&cols) {
                            *o = (0..cn).fold(E::neg_infinity(), |m, c| nan_max(m, padded[c0 + c * cs]));
                        }
                    }
                }
            }
        }
    };
    if x.len() >= 2 * PAR_LEN {
        y.par_chunks_mut(per_task * oh * ow).enumerate().for_each(group);
    } else {
        group((0, y));
    }
}

/// Max pooling whose windows tile every plane exactly (`kernel == stride`, no padding or
/// dilation, sizes divisible): planes stacked are one tall plane, so each output row reads the
/// `kh` input rows below the previous one, with no per-plane work.
fn max_pool_tiled<E: Float>(x: &[E], [kh, kw]: [usize; 2], w: usize, ow: usize, y: &mut [E]) {
    let rows_per_task = (PAR_LEN / (kh * w).max(1)).max(1);
    // narrow planes (a small CNN's 2x2 pools): the row width as a constant, so that the loop
    // over a band's outputs unrolls (measured 2-3x faster on 4- and 8-wide planes)
    let narrow: Option<fn(&[E], &mut [E])> = match ([kh, kw], w) {
        ([2, 2], 4) => Some(max_pool_2x2_rows::<E, 4>),
        ([2, 2], 8) => Some(max_pool_2x2_rows::<E, 8>),
        ([2, 2], 16) => Some(max_pool_2x2_rows::<E, 16>),
        _ => None,
    };
    let rows = |(t, out): (usize, &mut [E])| {
        if let Some(f) = narrow {
            return f(&x[t * rows_per_task * kh * w..][..out.len() * 4], out);
        }
        for (i, out_row) in out.chunks_mut(ow).enumerate() {
            let band = &x[(t * rows_per_task + i) * kh * w..][..kh * w];
            if [kh, kw] == [2, 2] {
                // the common 2x2 pool, without loops over taps
                let (top, bottom) = band.split_at(w);
                for ((o, a), b) in out_row.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                    *o = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
                }
                continue;
            }
            for (j, o) in out_row.iter_mut().enumerate() {
                let mut m = band[j * kw];
                for a in 0..kh {
                    for &v in &band[a * w + j * kw..][..kw] {
                        m = nan_max(m, v);
                    }
                }
                *o = m;
            }
        }
    };
    if x.len() >= 2 * PAR_LEN {
        y.par_chunks_mut(rows_per_task * ow).enumerate().for_each(rows);
    } else {
        rows((0, y));
    }
}

/// Output `j` is the max of `row[j * S..j * S + K]` (a row already padded for every window).
#[inline(always)]
fn windows_of<E: Float, const K: usize, const S: usize>(row: &[E], out: &mut [E]) {
    for (j, o) in out.iter_mut().enumerate() {
        let taps = &row[j * S..j * S + K];
        *o = taps[1..].iter().fold(taps[0], |m, &v| nan_max(m, v));
    }
}

/// 2x2 pooling of `W`-wide rows: `x` holds the bands of two rows whose outputs are `y`.
fn max_pool_2x2_rows<E: Float, const W: usize>(x: &[E], y: &mut [E]) {
    for (band, out) in x.chunks_exact(2 * W).zip(y.chunks_exact_mut(W / 2)) {
        let (top, bottom) = band.split_at(W);
        for j in 0..W / 2 {
            out[j] = nan_max(nan_max(top[2 * j], top[2 * j + 1]), nan_max(bottom[2 * j], bottom[2 * j + 1]));
        }
    }
}

/// `gx[plane, indices] += gy`.
pub(crate) fn max_pool2d_backward<E: Float>(indices: &[i64], gy: &[E], g: &PoolGeometry, gx: &mut [E]) {
    let (plane_in, plane_out) = (g.input[0] * g.input[1], g.output[0] * g.output[1]);
    assert!(gx.len() == g.planes * plane_in && gy.len() == g.planes * plane_out && indices.len() == gy.len());
    planes(gx, plane_in, gy.len(), |p, gx| {
        for (&i, &v) in indices[p * plane_out..(p + 1) * plane_out].iter().zip(&gy[p * plane_out..]) {
            if i >= 0 {
                gx[i as usize] = gx[i as usize] + v;
            }
        }
    });
}

/// The number an average window divides by.
fn divisor(g: &PoolGeometry, rows: usize, cols: usize, count_include_pad: bool) -> usize {
    match g.windows {
        PoolWindows::Sliding { kernel, .. } if count_include_pad => kernel[0] * kernel[1],
        _ => rows * cols,
    }
}

/// Average pooling (adaptive windows included).
pub(crate) fn avg_pool2d<E: Float>(x: &[E], g: &PoolGeometry, count_include_pad: bool, y: &mut [E]) {
    let ([h, w], [oh, ow]) = (g.input, g.output);
    assert!(x.len() == g.planes * h * w && y.len() == g.planes * oh * ow);
    let (rows, cols) = windows(g);
    planes(y, oh * ow, x.len(), |p, out| {
        let x = &x[p * h * w..(p + 1) * h * w];
        for (oi, &(r0, rn, rs)) in rows.iter().enumerate() {
            for (oj, &(c0, cn, cs)) in cols.iter().enumerate() {
                let mut sum: E::Acc = Zero::zero();
                for r in 0..rn {
                    let row = (r0 + r * rs) * w;
                    for c in 0..cn {
                        sum = sum + x[row + c0 + c * cs].to_acc();
                    }
                }
                let n = divisor(g, rn, cn, count_include_pad).max(1);
                out[oi * ow + oj] = E::from_acc(sum / <E::Acc as Dtype>::cast_f64(n as f64));
            }
        }
    });
}

/// `gx +=` the gradient of [`avg_pool2d`]: each output's gradient spread evenly over its taps.
pub(crate) fn avg_pool2d_backward<E: Float>(gy: &[E], g: &PoolGeometry, count_include_pad: bool, gx: &mut [E]) {
    let ([h, w], [oh, ow]) = (g.input, g.output);
    assert!(gx.len() == g.planes * h * w && gy.len() == g.planes * oh * ow);
    let (rows, cols) = windows(g);
    planes(gx, h * w, gx.len(), |p, gx| {
        let gy = &gy[p * oh * ow..(p + 1) * oh * ow];
        for (oi, &(r0, rn, rs)) in rows.iter().enumerate() {
            for (oj, &(c0, cn, cs)) in cols.iter().enumerate() {
                let n = divisor(g, rn, cn, count_include_pad).max(1);
                let share = gy[oi * ow + oj].to_acc() / <E::Acc as Dtype>::cast_f64(n as f64);
                for r in 0..rn {
                    let row = (r0 + r * rs) * w;
                    for c in 0..cn {
                        let i = row + c0 + c * cs;
                        gx[i] = E::from_acc(gx[i].to_acc() + share);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_windows_skip_the_padding() {
        let w = PoolWindows::Sliding { kernel: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1] };
        let g = PoolGeometry { planes: 1, input: [4, 4], output: [2, 2], windows: w };
        let x: Vec<f64> = (0..16).map(f64::from).collect();
        let (mut y, mut idx) = (vec![0.0; 4], vec![0; 4]);
        max_pool2d(&x, &g, &mut y, &mut idx);
        assert_eq!(y, vec![5.0, 7.0, 13.0, 15.0]);
        assert_eq!(idx, vec![5, 7, 13, 15]);
        let mut avg = vec![0.0; 4];
        avg_pool2d(&x, &g, true, &mut avg);
        assert_eq!(avg[0], (0.0 + 1.0 + 4.0 + 5.0) / 9.0);
        avg_pool2d(&x, &g, false, &mut avg);
        assert_eq!(avg[0], (0.0 + 1.0 + 4.0 + 5.0) / 4.0);
    }

    /// The index-free pooling gives the same values as the one that records indices, NaN and
    /// dilated, padded and strided windows included.
    #[test]
    fn values_only_max_pool_matches() {
        for (kernel, stride, padding, dilation) in
            [(3, 2, 1, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 3, 0, 1), (3, 1, 1, 2), (2, 3, 1, 1), (1, 2, 0, 1)]
        {
            let input = match (padding, kernel == stride, kernel) {
                (0, true, 2) => [6, 8], // the 8-wide 2x2 path
                (0, true, _) => [6, 6],
                _ => [7, 6],
            };
            let out = |a: usize| crate::shapes::window_out(input[a], kernel, stride, padding, dilation).unwrap();
            let windows = PoolWindows::Sliding {
                kernel: [kernel; 2],
                stride: [stride; 2],
                padding: [padding; 2],
                dilation: [dilation; 2],
            };
            let g = PoolGeometry { planes: 3, input, output: [out(0), out(1)], windows };
            let mut x: Vec<f32> = (0..3 * input[0] * input[1]).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            x[50] = f32::NAN;
            let n = 3 * g.output[0] * g.output[1];
            let (mut y, mut idx, mut v) = (vec![0.0; n], vec![0; n], vec![0.0; n]);
            max_pool2d(&x, &g, &mut y, &mut idx);
            max_pool2d_values(&x, &g, &mut v);
            let bits =
                |s: &[f32]| s.iter().map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() }).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&v), "{g:?}");
            assert!(kernel < stride || v.iter().any(|f| f.is_nan()), "windows that cover the input see the NaN");
        }
        // adaptive windows (overlapping, of varying widths)
        let g = PoolGeometry { planes: 2, input: [5, 7], output: [3, 4], windows: PoolWindows::Adaptive };
        let x: Vec<f32> = (0..70).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        let (mut y, mut idx, mut v) = (vec![0.0; 24], vec![0; 24], vec![0.0; 24]);
        max_pool2d(&x, &g, &mut y, &mut idx);
        max_pool2d_values(&x, &g, &mut v);
        assert_eq!(y, v);
    }

    #[test]
    fn adaptive_windows_overlap_like_pytorch() {
        let g = PoolGeometry { planes: 1, input: [1, 5], output: [1, 3], windows: PoolWindows::Adaptive };
        assert_eq!((0..3).map(|o| g.window(1, o)).collect::<Vec<_>>(), vec![(0, 2, 1), (1, 3, 1), (3, 2, 1)]);
    }
}
