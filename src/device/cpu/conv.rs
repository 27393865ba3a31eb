//! 2-D convolution as im2col + gemm: each image's windows are unfolded into a
//! `[patch, output pixels]` matrix (skipped for 1x1 convolutions), and one matrix product per
//! group does the arithmetic. Images run in parallel, each thread with its own unfold buffer;
//! a single image runs gemm on all threads instead.
//!
//! Half types are widened to f32 and rounded once at the end (f32 accumulation, as PyTorch does
//! on CPU).

use super::matmul::{GemmScalar, MatRef, downcast, downcast_mut, gemm_into};
use crate::compat::prelude::*;
use crate::device::ConvGeometry;
use crate::dtypes::Float;
use crate::par::*;

/// Below this many multiply-adds a convolution runs on one thread.
const PAR_MACS: usize = 1 << 18;

/// The outputs `o` in `0..out_len` whose tap `o * stride + offset` lands in `0..in_len`.
fn valid_outputs(out_len: usize, stride: usize, offset: isize, in_len: usize) -> (usize, usize) {
    let lo = if offset < 0 { (-offset) as usize } else { 0 }.div_ceil(stride);
    let end = in_len as isize - offset; // taps must satisfy o * stride < end
    let hi = if end <= 0 { 0 } else { (end as usize).div_ceil(stride) };
    (lo.min(out_len), hi.min(out_len).max(lo.min(out_len)))
}

/// Walks every (patch row, output row) pair of one group's unfolded input: `f(col row slice
/// range start, input row start or None for padding, column range valid, column offset)`.
fn for_each_patch_row(
    g: &ConvGeometry,
    channels: core::ops::Range<usize>,
    mut f: impl FnMut(usize, Option<usize>, (usize, usize), isize),
) {
    let ([h, w], [kh, kw], [sh, sw], [ph, pw], [dh, dw], [oh, ow]) =
        (g.input, g.kernel, g.stride, g.padding, g.dilation, g.output);
    let mut row = channels.start * kh * kw;
    for c in channels {
        for ki in 0..kh {
            for kj in 0..kw {
                let col_offset = (kj * dw) as isize - pw as isize;
                let cols = valid_outputs(ow, sw, col_offset, w);
                for oi in 0..oh {
                    let ii = (oi * sh + ki * dh) as isize - ph as isize;
                    let src = (0..h as isize).contains(&ii).then(|| c * h * w + ii as usize * w);
                    f((row * oh + oi) * ow, src, cols, col_offset);
                }
                row += 1;
            }
        }
    }
}

/// Unfolds one group of one image (`[in_per_group, h, w]`) into `col` (`[patch_len, oh * ow]`),
/// on all threads when `parallel` (each unfolding a block of input channels).
fn im2col<T: GemmScalar>(x: &[T], g: &ConvGeometry, col: &mut [T], parallel: bool) {
    let per_channel = g.kernel[0] * g.kernel[1] * g.output_pixels();
    let channels = g.in_per_group();
    if parallel && channels > 1 && per_channel > 0 {
        // blocks of at least PAR_MACS / 16 elements, so that a task outweighs its scheduling
        let per_task = (PAR_MACS / 16).div_ceil(per_channel).clamp(1, channels.div_ceil(2));
        col[..channels * per_channel].par_chunks_mut(per_task * per_channel).enumerate().for_each(|(t, block)| {
            let first = t * per_task;
            im2col_channels(x, g, first..first + block.len() / per_channel, block, first * per_channel);
        });
    } else {
        im2col_channels(x, g, 0..channels, col, 0);
    }
}

/// The rows of input `channels` of [`im2col`], into `col` (which starts at unfold element `base`).
fn im2col_channels<T: GemmScalar>(
    x: &[T],
    g: &ConvGeometry,
    channels: core::ops::Range<usize>,
    col: &mut [T],
    base: usize,
) {
    let (ow, sw) = (g.output[1], g.stride[1]);
    if g.stride == [1, 1] && g.input[1] == ow {
        return im2col_same_width(x, g, channels, col, base);
    }
    for_each_patch_row(g, channels, |dst, src, (lo, hi), off| {
        let out = &mut col[dst - base..dst - base + ow];
        let Some(src) = src else {
            out.fill(T::ZERO);
            return;
        };
        out[..lo].fill(T::ZERO);
        out[hi..].fill(T::ZERO);
        let start = src as isize + off;
        if sw == 1 {
            let s = (start + lo as isize) as usize;
            out[lo..hi].copy_from_slice(&x[s..s + (hi - lo)]);
        } else {
            for (v, o) in out[lo..hi].iter_mut().zip(lo..) {
                *v = x[(start + (o * sw) as isize) as usize];
            }
        }
    });
}

/// [`im2col_channels`] for stride 1 with as many output columns as input columns (a "same"
/// padded convolution): a tap's valid output rows then read consecutive input elements, so
/// each patch row is one copy, and the columns that wrapped into the next input row are
/// zeroed after. Small planes would otherwise pay a call per output row.
fn im2col_same_width<T: GemmScalar>(
    x: &[T],
    g: &ConvGeometry,
    channels: core::ops::Range<usize>,
    col: &mut [T],
    base: usize,
) {
    let ([h, w], [kh, kw], [ph, pw], [dh, dw], [oh, ow]) = (g.input, g.kernel, g.padding, g.dilation, g.output);
    let op = oh * ow;
    for c in channels {
        for ki in 0..kh {
            // output rows oi reading input row oi + ki * dh - ph inside 0..h
            let shift = (ki * dh) as isize - ph as isize;
            let (a, b) = valid_outputs(oh, 1, shift, h);
            for kj in 0..kw {
                let off = (kj * dw) as isize - pw as isize;
                let (lo, hi) = valid_outputs(ow, 1, off, w);
                let row = (c * kh + ki) * kw + kj;
                let out = &mut col[row * op - base..][..op];
                if a >= b || lo >= hi {
                    out.fill(T::ZERO);
                    continue;
                }
                out[..a * ow].fill(T::ZERO);
                out[b * ow..].fill(T::ZERO);
                let (first, last) = (a * ow + lo, (b - 1) * ow + hi);
                let src = (c * h * w) as isize + (a as isize + shift) * w as isize + (lo as isize + off);
                let src = src as usize;
                out[first..last].copy_from_slice(&x[src..src + (last - first)]);
                for r in a..b {
                    for v in &mut out[r * ow..r * ow + lo] {
                        *v = T::ZERO;
                    }
                    for v in &mut out[r * ow + hi..(r + 1) * ow] {
                        *v = T::ZERO;
                    }
                }
            }
        }
    }
}

/// Adds the unfolded gradient `col` back onto one group of one image's input gradient.
fn col2im_add<T: GemmScalar>(col: &[T], g: &ConvGeometry, gx: &mut [T]) {
    let sw = g.stride[1];
    for_each_patch_row(g, 0..g.in_per_group(), |src_row, dst, (lo, hi), off| {
        let Some(dst) = dst else { return };
        let start = dst as isize + off;
        for o in lo..hi {
            let i = (start + (o * sw) as isize) as usize;
            gx[i] = gx[i] + col[src_row + o];
        }
    });
}

/// Runs `f(image index, scratch buffer)` for every image: in parallel with one scratch buffer
/// per thread, or serially (the caller then parallelises inside) for small batches.
fn per_image<T: GemmScalar, O: Send>(
    outputs: &mut [O],
    scratch_len: usize,
    parallel_images: bool,
    f: impl Fn(usize, &mut O, &mut [T]) + Sync + Send,
) {
    if parallel_images {
        outputs.par_iter_mut().enumerate().for_each(|(n, out)| T::with_scratch(scratch_len, |s| f(n, out, s)));
    } else {
        T::with_scratch(scratch_len, |s| {
            for (n, out) in outputs.iter_mut().enumerate() {
                f(n, out, s);
            }
        });
    }
}

/// How the work is split: (images in parallel, gemm on all threads).
fn split(g: &ConvGeometry) -> (bool, bool) {
    if g.macs() < PAR_MACS {
        return (false, false); // small work: no thread pool
    }
    let images = g.batch >= crate::par::threads();
    (images, !images)
}

fn forward<T: GemmScalar>(x: &[T], w: &[T], g: &ConvGeometry, y: &mut [T], accumulate: bool) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let (images, gemm_par) = split(g);
    let mut ys: Vec<&mut [T]> = y.chunks_mut(g.out_channels * op).collect();
    let scratch = if g.is_pointwise() { 0 } else { patch * op };
    per_image(&mut ys, scratch, images, |n, y, col| {
        let x = &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip];
        for gi in 0..g.groups {
            let xg = &x[gi * cg * ip..(gi + 1) * cg * ip];
            let cols = if g.is_pointwise() {
                MatRef::rows(xg, cg, op)
            } else {
                im2col(xg, g, col, gemm_par);
                MatRef::rows(&col[..], patch, op)
            };
            let wg = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch);
            gemm_into(wg, cols, &mut y[gi * og * op..(gi + 1) * og * op], op, accumulate, gemm_par);
        }
    });
}

fn input_grad<T: GemmScalar>(gy: &[T], w: &[T], g: &ConvGeometry, gx: &mut [T]) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let (images, gemm_par) = split(g);
    let mut gxs: Vec<&mut [T]> = gx.chunks_mut(g.in_channels * ip).collect();
    let scratch = if g.is_pointwise() { 0 } else { patch * op };
    per_image(&mut gxs, scratch, images, |n, gx, col| {
        let gy = &gy[n * g.out_channels * op..(n + 1) * g.out_channels * op];
        for gi in 0..g.groups {
            let wg_t = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch).t();
            let gyg = MatRef::rows(&gy[gi * og * op..(gi + 1) * og * op], og, op);
            let gxg = &mut gx[gi * cg * ip..(gi + 1) * cg * ip];
            if g.is_pointwise() {
                gemm_into(wg_t, gyg, gxg, op, true, gemm_par);
            } else {
                gemm_into(wg_t, gyg, col, op, false, gemm_par);
                col2im_add(col, g, gxg);
            }
        }
    });
}

fn weight_grad<T: GemmScalar>(x: &[T], gy: &[T], g: &ConvGeometry, gw: &mut [T]) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let (images, gemm_par) = split(g);
    let one_image = |n: usize, gw: &mut [T], col: &mut Vec<T>| {
        let x = &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip];
        let gy = &gy[n * g.out_channels * op..(n + 1) * g.out_channels * op];
        for gi in 0..g.groups {
            let xg = &x[gi * cg * ip..(gi + 1) * cg * ip];
            let cols_t = if g.is_pointwise() {
                MatRef::rows(xg, cg, op).t()
            } else {
                im2col(xg, g, col, gemm_par);
                MatRef::rows(&col[..], patch, op).t()
            };
            let gyg = MatRef::rows(&gy[gi * og * op..(gi + 1) * og * op], og, op);
            gemm_into(gyg, cols_t, &mut gw[gi * og * patch..(gi + 1) * og * patch], patch, true, gemm_par);
        }
    };
    let scratch = if g.is_pointwise() { 0 } else { patch * op };
    if images {
        // Each thread sums its images' gradients into its own buffer; the buffers are added at the end.
        let partial = (0..g.batch)
            .into_par_iter()
            .fold(
                || (vec![T::ZERO; gw.len()], vec![T::ZERO; scratch]),
                |(mut acc, mut col), n| {
                    one_image(n, &mut acc, &mut col);
                    (acc, col)
                },
            )
            .map(|(acc, _)| acc)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a = *a + b);
                a
            });
        if let Some(p) = partial {
            gw.iter_mut().zip(p).for_each(|(a, b)| *a = *a + b);
        }
    } else {
        let mut col = vec![T::ZERO; scratch];
        for n in 0..g.batch {
            one_image(n, gw, &mut col);
        }
    }
}

/// Calls `f` on the buffers as gemm's element type: f32 and f64 in place, half types through
/// f32 copies (`out` widened first only when `f` adds to it).
fn in_gemm_type<E: Float>(
    a: &[E],
    b: &[E],
    out: &mut [E],
    reads_out: bool,
    f32_fn: impl FnOnce(&[f32], &[f32], &mut [f32]),
    f64_fn: impl FnOnce(&[f64], &[f64], &mut [f64]),
) {
    if let (Some(a), Some(b)) = (downcast::<E, f32>(a), downcast::<E, f32>(b)) {
        f32_fn(a, b, downcast_mut::<E, f32>(out).expect("same dtype"));
    } else if let (Some(a), Some(b)) = (downcast::<E, f64>(a), downcast::<E, f64>(b)) {
        f64_fn(a, b, downcast_mut::<E, f64>(out).expect("same dtype"));
    } else {
        let widen = |s: &[E]| s.iter().map(|v| v.as_f32()).collect::<Vec<f32>>();
        let mut o32 = if reads_out { widen(out) } else { vec![0.0; out.len()] };
        f32_fn(&widen(a), &widen(b), &mut o32);
        out.iter_mut().zip(o32).for_each(|(o, v)| *o = E::cast_f32(v));
    }
}

fn check_lens(g: &ConvGeometry, x: usize, w: usize, y: usize) {
    assert!(
        x == g.batch * g.in_channels * g.input_pixels()
            && w == g.out_channels * g.patch_len()
            && y == g.batch * g.out_channels * g.output_pixels(),
        "conv2d kernel: buffers of {x}, {w}, {y} elements do not fit {g:?}"
    );
}

/// `y (+)= x ⋆ w` over contiguous buffers.
pub(crate) fn conv2d_forward<E: Float>(x: &[E], w: &[E], g: &ConvGeometry, y: &mut [E], accumulate: bool) {
    check_lens(g, x.len(), w.len(), y.len());
    in_gemm_type(
        x,
        w,
        y,
        accumulate,
        |x, w, y| forward(x, w, g, y, accumulate),
        |x, w, y| forward(x, w, g, y, accumulate),
    );
}

/// `gx += ∂(x ⋆ w)/∂x applied to gy`.
pub(crate) fn conv2d_input_grad<E: Float>(gy: &[E], w: &[E], g: &ConvGeometry, gx: &mut [E]) {
    check_lens(g, gx.len(), w.len(), gy.len());
    in_gemm_type(gy, w, gx, true, |gy, w, gx| input_grad(gy, w, g, gx), |gy, w, gx| input_grad(gy, w, g, gx));
}

/// `gw += ∂(x ⋆ w)/∂w applied to gy`.
pub(crate) fn conv2d_weight_grad<E: Float>(x: &[E], gy: &[E], g: &ConvGeometry, gw: &mut [E]) {
    check_lens(g, x.len(), gw.len(), gy.len());
    in_gemm_type(x, gy, gw, true, |x, gy, gw| weight_grad(x, gy, g, gw), |x, gy, gw| weight_grad(x, gy, g, gw));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, for comparison.
    fn direct(x: &[f64], w: &[f64], g: &ConvGeometry) -> Vec<f64> {
        let (cg, og) = (g.in_per_group(), g.out_per_group());
        let mut y = vec![0.0; g.batch * g.out_channels * g.output_pixels()];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                let gi = o / og;
                for oi in 0..g.output[0] {
                    for oj in 0..g.output[1] {
                        let mut s = 0.0;
                        for c in 0..cg {
                            for ki in 0..g.kernel[0] {
                                for kj in 0..g.kernel[1] {
                                    let ii = (oi * g.stride[0] + ki * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let ij = (oj * g.stride[1] + kj * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if ii < 0 || ij < 0 || ii >= g.input[0] as isize || ij >= g.input[1] as isize {
                                        continue;
                                    }
                                    let xc = gi * cg + c;
                                    let xv = x[((n * g.in_channels + xc) * g.input[0] + ii as usize) * g.input[1]
                                        + ij as usize];
                                    let wv = w[((o * cg + c) * g.kernel[0] + ki) * g.kernel[1] + kj];
                                    s += xv * wv;
                                }
                            }
                        }
                        y[((n * g.out_channels + o) * g.output[0] + oi) * g.output[1] + oj] = s;
                    }
                }
            }
        }
        y
    }

    /// im2col + gemm against the definition, with stride, padding, dilation and groups (Miri
    /// runs this: it covers the unsafe gemm call).
    #[test]
    fn matches_definition() {
        for (groups, stride, padding, dilation) in [(1, 1, 0, 1), (2, 2, 1, 1), (1, 1, 2, 2), (2, 1, 1, 1)] {
            let g =
                ConvGeometry::new(2, 2, 4, groups, [4, 5], [2, 3], [stride; 2], [padding; 2], [dilation; 2]).unwrap();
            let x: Vec<f64> = (0..2 * 2 * 20).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..4 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let mut y = vec![0.0; 2 * 4 * g.output_pixels()];
            conv2d_forward(&x, &w, &g, &mut y, false);
            assert_eq!(y, direct(&x, &w, &g), "{g:?}");
        }
    }

    /// A batch of one large enough for the threaded path (channel blocks unfolded in parallel,
    /// the product split by rows) gives the definition's values too.
    #[test]
    #[cfg_attr(miri, ignore)] // millions of steps; the small cases above cover the unsafe call
    fn threaded_single_image_matches_definition() {
        let g = ConvGeometry::new(1, 8, 40, 1, [24, 24], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        assert!(g.macs() >= PAR_MACS && split(&g) == (false, true));
        let x: Vec<f64> = (0..8 * 576).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let w: Vec<f64> = (0..40 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
        let mut y = vec![0.0; 40 * g.output_pixels()];
        conv2d_forward(&x, &w, &g, &mut y, false);
        assert_eq!(y, direct(&x, &w, &g));
    }

    /// The gradients satisfy `<gy, conv(x, w)> = <input_grad(gy), x> = <weight_grad(gy), w>`
    /// (the convolution is bilinear).
    #[test]
    fn gradients_are_adjoint() {
        let g = ConvGeometry::new(2, 4, 2, 2, [5, 4], [3, 2], [2, 1], [1, 1], [1, 2]).unwrap();
        let x: Vec<f64> = (0..2 * 4 * 20).map(|i| ((i * 3) % 13) as f64 - 6.0).collect();
        let w: Vec<f64> = (0..2 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
        let gy: Vec<f64> = (0..2 * 2 * g.output_pixels()).map(|i| ((i * 11) % 5) as f64 - 2.0).collect();
        let y = direct(&x, &w, &g);
        let (mut gx, mut gw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
        conv2d_input_grad(&gy, &w, &g, &mut gx);
        conv2d_weight_grad(&x, &gy, &g, &mut gw);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        assert_eq!(dot(&gy, &y), dot(&gx, &x));
        assert_eq!(dot(&gy, &y), dot(&gw, &w));
    }
}
