//! 2-D convolution as im2col + gemm: each image's windows are unfolded into a
//! `[patch, output pixels]` matrix (skipped for 1x1 convolutions), and one matrix product per
//! group does the arithmetic. Large images are unfolded a tile of output pixels at a time, so
//! that the tile is still in cache when its product reads it; (image, tile) tasks run in
//! parallel, each thread with its own unfold buffer. Small images are unfolded several side by
//! side, so that one product covers them all. An untiled single image runs gemm on all threads
//! instead. With stride 1 the input gradient is a convolution itself (of the output gradient,
//! with the kernel flipped) and runs the forward's code.
//!
//! Stride-1 convolutions of larger planes skip the unfold ([`Shifted`]): with each input plane
//! padded once and the output computed on a grid as wide as the padded plane, every kernel tap
//! reads the same plane at a fixed offset, so the forward and the weight gradient are one
//! product per tap over strided views of data that stays in cache.
//!
//! Half types are widened to f32 and rounded once at the end (f32 accumulation, as PyTorch does
//! on CPU).

use super::conv_blocked::{BlockedConv, BlockedFilters};
use super::conv_direct::DirectConv;
use super::matmul::{GemmScalar, MatRef, downcast, downcast_mut, gemm_into, gemm_into_raw};
use crate::compat::prelude::*;
use crate::device::ConvGeometry;
use crate::dtypes::Float;
use crate::par::*;
use core::ops::Range;

/// Below this many multiply-adds a convolution runs on one thread.
const PAR_MACS: usize = 1 << 18;

/// The outputs `o` in `0..out_len` whose tap `o * stride + offset` lands in `0..in_len`.
fn valid_outputs(out_len: usize, stride: usize, offset: isize, in_len: usize) -> (usize, usize) {
    let lo = if offset < 0 { (-offset) as usize } else { 0 }.div_ceil(stride);
    let end = in_len as isize - offset; // taps must satisfy o * stride < end
    let hi = if end <= 0 { 0 } else { (end as usize).div_ceil(stride) };
    (lo.min(out_len), hi.min(out_len).max(lo.min(out_len)))
}

/// Walks one group's unfold buffer for output pixels `pixels` (`[patch rows of channels,
/// pixels.len()]`): for every patch row and every output row the range touches,
/// `f(dst, src, seg, valid, off)`, where column `j` of that output row sits at `dst + j` in the
/// buffer, `src` is the input row's first element (`None` in the padding), `seg` the output
/// row's columns inside the range, `valid` the part of `seg` whose taps land in the input row,
/// and `off` the column offset of the tap (column `j` reads input column `j * stride + off`).
fn for_each_patch_row(
    g: &ConvGeometry,
    channels: Range<usize>,
    pixels: Range<usize>,
    mut f: impl FnMut(isize, Option<usize>, (usize, usize), (usize, usize), isize),
) {
    let ([h, w], [kh, kw], [sh, sw], [ph, pw], [dh, dw], [_, ow]) =
        (g.input, g.kernel, g.stride, g.padding, g.dilation, g.output);
    if pixels.is_empty() {
        return;
    }
    let (np, first_row, last_row) = (pixels.len(), pixels.start / ow, (pixels.end - 1) / ow);
    let mut row = 0;
    for c in channels {
        for ki in 0..kh {
            for kj in 0..kw {
                let col_offset = (kj * dw) as isize - pw as isize;
                let (lo, hi) = valid_outputs(ow, sw, col_offset, w);
                for oi in first_row..=last_row {
                    let seg = (pixels.start.saturating_sub(oi * ow), (pixels.end - oi * ow).min(ow));
                    let valid = (lo.clamp(seg.0, seg.1), hi.clamp(seg.0, seg.1));
                    let ii = (oi * sh + ki * dh) as isize - ph as isize;
                    let src = (0..h as isize).contains(&ii).then(|| c * h * w + ii as usize * w);
                    let dst = (row * np + oi * ow) as isize - pixels.start as isize;
                    f(dst, src, seg, valid, col_offset);
                }
                row += 1;
            }
        }
    }
}

/// Unfolds output pixels `pixels` of one group of one image (`[in_per_group, h, w]`) into `col`
/// (`[patch_len, pixels.len()]`), on all threads when `parallel` (each unfolding a block of
/// input channels).
fn im2col<T: GemmScalar>(x: &[T], g: &ConvGeometry, pixels: Range<usize>, col: &mut [T], parallel: bool) {
    let per_channel = g.kernel[0] * g.kernel[1] * pixels.len();
    let channels = g.in_per_group();
    if parallel && channels > 1 && per_channel > 0 {
        // blocks of at least PAR_MACS / 16 elements, so that a task outweighs its scheduling
        let per_task = (PAR_MACS / 16).div_ceil(per_channel).clamp(1, channels.div_ceil(2));
        col[..channels * per_channel].par_chunks_mut(per_task * per_channel).enumerate().for_each(|(t, block)| {
            let first = t * per_task;
            im2col_channels(x, g, first..first + block.len() / per_channel, pixels.clone(), block);
        });
    } else {
        im2col_channels(x, g, 0..channels, pixels, col);
    }
}

/// The rows of input `channels` of [`im2col`], into `col`.
fn im2col_channels<T: GemmScalar>(
    x: &[T],
    g: &ConvGeometry,
    channels: Range<usize>,
    pixels: Range<usize>,
    col: &mut [T],
) {
    if pixels.len() == g.output_pixels() && pixels.len() <= SMALL_PLANE {
        return im2col_small(x, g, channels, col, pixels.len());
    }
    if g.stride == [1, 1] && g.input[1] == g.output[1] {
        return im2col_same_width(x, g, channels, pixels, col);
    }
    let sw = g.stride[1];
    let phases = (sw > 1).then(|| ColumnPhases::new(x, g, channels.clone(), pixels.clone()));
    for_each_patch_row(g, channels, pixels, |dst, src, (j0, j1), (lo, hi), off| {
        let at = |j: usize| (dst + j as isize) as usize;
        let Some(src) = src else {
            col[at(j0)..at(j1)].fill(T::ZERO);
            return;
        };
        col[at(j0)..at(lo)].fill(T::ZERO);
        col[at(hi)..at(j1)].fill(T::ZERO);
        if lo >= hi {
            return; // (clamped to `seg`, `lo` may lie past the taps' row: compute no index)
        }
        let out = &mut col[at(lo)..at(hi)];
        match &phases {
            None => {
                let s = (src as isize + off + lo as isize) as usize;
                out.copy_from_slice(&x[s..s + (hi - lo)]);
            }
            Some(phases) => out.copy_from_slice(phases.taps(src, off, lo..hi)),
        }
    });
}

/// The input rows a strided unfold reads, each split by column phase: phase `p` of a row holds
/// its columns `p, p + stride, p + 2 stride, ..` side by side. Output column `o` of a tap at
/// column offset `off` reads input column `o * stride + off`, so a run of outputs reads a run of
/// one phase: a copy, where the row itself would be a gather (it was most of the stride-2 7x7
/// stem convolution's unfold time, which reads each input element about 12 times).
struct ColumnPhases<T> {
    phases: Vec<T>,
    /// Input rows `rows.start..rows.end` of each channel from `first_channel` are held.
    rows: Range<usize>,
    first_channel: usize,
    /// Elements per phase: `ceil(width / stride)`.
    phase_len: usize,
    stride: usize,
    plane: usize,
    width: usize,
}

impl<T: GemmScalar> ColumnPhases<T> {
    /// The rows of `channels` that output pixels `pixels` read.
    fn new(x: &[T], g: &ConvGeometry, channels: Range<usize>, pixels: Range<usize>) -> Self {
        let ([h, w], [kh, _], [sh, sw], [ph, _], [dh, _], [_, ow]) =
            (g.input, g.kernel, g.stride, g.padding, g.dilation, g.output);
        let (first, last) = (pixels.start / ow, pixels.end.saturating_sub(1) / ow);
        let lo = (first * sh).saturating_sub(ph).min(h);
        let hi = (last * sh + (kh - 1) * dh + 1).saturating_sub(ph).clamp(lo, h);
        let phase_len = w.div_ceil(sw);
        let mut phases = vec![T::ZERO; channels.len() * (hi - lo) * sw * phase_len];
        let input_rows = channels.clone().flat_map(|c| (lo..hi).map(move |r| c * h * w + r * w));
        for (row, out) in input_rows.zip(phases.chunks_exact_mut(sw * phase_len)) {
            let row = &x[row..row + w];
            for (p, out) in out.chunks_exact_mut(phase_len).enumerate() {
                out.iter_mut().zip(row[p..].iter().step_by(sw)).for_each(|(o, &v)| *o = v);
            }
        }
        ColumnPhases {
            phases,
            rows: lo..hi,
            first_channel: channels.start,
            phase_len,
            stride: sw,
            plane: h * w,
            width: w,
        }
    }

    /// The taps of outputs `outputs` on the input row starting at `row_start` (an index into
    /// `x`), at column offset `off`; every tap must lie inside the row.
    fn taps(&self, row_start: usize, off: isize, outputs: Range<usize>) -> &[T] {
        let (c, r) = (row_start / self.plane, row_start % self.plane / self.width);
        let held = (c - self.first_channel) * self.rows.len() + (r - self.rows.start);
        let p = off.rem_euclid(self.stride as isize);
        // output `o` reads column `o * stride + off`, element `o + (off - p) / stride` of phase `p`
        let first = (outputs.start as isize + (off - p) / self.stride as isize) as usize;
        let phase = (held * self.stride + p as usize) * self.phase_len;
        &self.phases[phase + first..phase + first + outputs.len()]
    }
}

/// Output planes of at most this many pixels unfold through a zero-padded copy of each input
/// plane ([`im2col_small`]).
const SMALL_PLANE: usize = 256;

/// `dst = src` for short rows, as fixed-size moves (no `memcpy` call per row).
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    let (mut d, mut s) = (d.into_remainder(), s.remainder());
    if d.len() >= 4 {
        d[..4].copy_from_slice(&s[..4]);
        (d, s) = (&mut d[4..], &s[4..]);
    }
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s;
    }
}

/// [`im2col_channels`] of a whole small image: each input plane is copied once into a
/// zero-bordered buffer, after which every output row of every tap is a plain (strided) copy
/// with no bounds to work out. Small planes spend most of the general paths' time on the
/// per-row set-up (measured: a 32-channel 4x4 image with a 3x3 kernel, 5.1 us there and
/// 1.3-2.0 us here).
///
/// Patch row `r` goes to `col[r * row_stride..][..output pixels]`: `row_stride` is the output
/// pixels for a plain unfold, and wider when several images' unfolds lie side by side.
fn im2col_small<T: GemmScalar>(x: &[T], g: &ConvGeometry, channels: Range<usize>, col: &mut [T], row_stride: usize) {
    // the narrowest planes (a small CNN's 4x4 and 8x8 maps) with the row width as a constant,
    // so each row's copy is a few moves (measured: the digits CNN's 32->64 conv of 4x4 images
    // at batch 32, 190 -> 160 us)
    match (g.stride[1], g.output[1]) {
        (1, 4) => im2col_small_rows::<T, 4>(x, g, channels, col, row_stride),
        (1, 8) => im2col_small_rows::<T, 8>(x, g, channels, col, row_stride),
        _ => im2col_small_rows::<T, 0>(x, g, channels, col, row_stride),
    }
}

/// [`im2col_small`] for output rows `W` wide (`W == 0`: any width).
fn im2col_small_rows<T: GemmScalar, const W: usize>(
    x: &[T],
    g: &ConvGeometry,
    channels: Range<usize>,
    col: &mut [T],
    row_stride: usize,
) {
    let ([h, w], [kh, kw], [sh, sw], [ph, pw], [dh, dw], [oh, ow]) =
        (g.input, g.kernel, g.stride, g.padding, g.dilation, g.output);
    let (hp, wp, op) = (h + 2 * ph, w + 2 * pw, oh * ow);
    let mut plane = vec![T::ZERO; hp * wp];
    let mut row = 0;
    for c in channels {
        let src = &x[c * h * w..(c + 1) * h * w];
        for i in 0..h {
            copy_short(&mut plane[(i + ph) * wp + pw..][..w], &src[i * w..][..w]);
        }
        for ki in 0..kh {
            for kj in 0..kw {
                let out = &mut col[row * row_stride..][..op];
                row += 1;
                for (oi, dst) in out.chunks_exact_mut(ow).enumerate() {
                    // (oi * sh + ki * dh, kj * dw + (ow - 1) * sw) lies inside the padded plane,
                    // by the output size's definition
                    let taps = &plane[(oi * sh + ki * dh) * wp + kj * dw..];
                    if W > 0 {
                        dst[..W].copy_from_slice(&taps[..W]);
                    } else if sw == 1 {
                        copy_short(dst, &taps[..ow]);
                    } else {
                        dst.iter_mut().enumerate().for_each(|(j, v)| *v = taps[j * sw]);
                    }
                }
            }
        }
    }
}

/// [`im2col_channels`] for stride 1 with as many output columns as input columns (a "same"
/// padded convolution): output pixel `p` of a tap then reads input element `p + shift`, so each
/// patch row is one copy, and the columns that wrapped into the neighbouring input row are
/// zeroed after. Small planes would otherwise pay a call per output row.
fn im2col_same_width<T: GemmScalar>(
    x: &[T],
    g: &ConvGeometry,
    channels: Range<usize>,
    pixels: Range<usize>,
    col: &mut [T],
) {
    let ([h, w], [kh, kw], [ph, pw], [dh, dw], [oh, ow]) = (g.input, g.kernel, g.padding, g.dilation, g.output);
    let (p0, np) = (pixels.start, pixels.len());
    let mut row = 0;
    for c in channels {
        for ki in 0..kh {
            // output rows oi reading input row oi + shift inside 0..h
            let shift = (ki * dh) as isize - ph as isize;
            let (a, b) = valid_outputs(oh, 1, shift, h);
            for kj in 0..kw {
                let off = (kj * dw) as isize - pw as isize;
                let (lo, hi) = valid_outputs(ow, 1, off, w);
                let out = &mut col[row * np..(row + 1) * np];
                row += 1;
                // the pixels whose tap lies inside the input, wrapped columns aside
                let (first, last) = ((a * ow + lo).max(p0), ((b.max(1) - 1) * ow + hi).min(pixels.end));
                if a >= b || lo >= hi || first >= last {
                    out.fill(T::ZERO);
                    continue;
                }
                out[..first - p0].fill(T::ZERO);
                out[last - p0..].fill(T::ZERO);
                let src = (c * h * w) as isize + first as isize + shift * w as isize + off;
                let src = src as usize;
                out[first - p0..last - p0].copy_from_slice(&x[src..src + (last - first)]);
                for r in first / ow..=(last - 1) / ow {
                    let zero = |from: usize, to: usize, out: &mut [T]| {
                        let (from, to) = (from.max(first), to.min(last));
                        if from < to {
                            out[from - p0..to - p0].fill(T::ZERO);
                        }
                    };
                    zero(r * ow, r * ow + lo, out);
                    zero(r * ow + hi, (r + 1) * ow, out);
                }
            }
        }
    }
}

/// Adds the unfolded gradient `col` of output pixels `pixels` back onto one group of one
/// image's input gradient.
fn col2im_add<T: GemmScalar>(col: &[T], g: &ConvGeometry, pixels: Range<usize>, gx: &mut [T]) {
    let sw = g.stride[1];
    for_each_patch_row(g, 0..g.in_per_group(), pixels, |base, dst, _, (lo, hi), off| {
        let Some(dst) = dst else { return };
        let start = dst as isize + off;
        for o in lo..hi {
            let i = (start + (o * sw) as isize) as usize;
            gx[i] = gx[i] + col[(base + o as isize) as usize];
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
        outputs
            .par_iter_mut()
            .with_max_len(HEAVY_TASKS)
            .enumerate()
            .for_each(|(n, out)| T::with_scratch(scratch_len, |s| f(n, out, s)));
    } else {
        T::with_scratch(scratch_len, |s| {
            for (n, out) in outputs.iter_mut().enumerate() {
                f(n, out, s);
            }
        });
    }
}

/// `out += Σ_n f(n)` over the batch's images, where `f(n, sum, scratch)` adds image `n`'s share
/// into `sum`: in parallel, each task sums its images into a buffer of its own and the buffers
/// are added at the end; serially, straight into `out`.
fn sum_over_images<T: GemmScalar>(
    batch: usize,
    scratch_len: usize,
    parallel_images: bool,
    out: &mut [T],
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync + Send,
) {
    if !parallel_images {
        return T::with_scratch(scratch_len, |s| (0..batch).for_each(|n| f(n, out, s)));
    }
    let partial = (0..batch)
        .into_par_iter()
        .fold(
            || vec![T::ZERO; out.len()],
            |mut sum, n| {
                T::with_scratch(scratch_len, |s| f(n, &mut sum, s));
                sum
            },
        )
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a = *a + b);
            a
        });
    if let Some(p) = partial {
        out.iter_mut().zip(p).for_each(|(a, b)| *a = *a + b);
    }
}

/// What a forward convolution does to each row segment of its output right after computing it
/// (`then(output channel, segment)`), while the segment is in cache: a bias and an activation
/// cost no pass of their own over the output.
pub(crate) type Then<'a, T> = Option<&'a (dyn Fn(usize, &mut [T]) + Sync)>;

/// A tile's unfold buffer holds about this many elements at most, so that it is still in the
/// core's L2 cache when its product reads it (ResNet-18's first 3x3 unfold is 7 MB an image).
const TILE_ELEMS: usize = 1 << 16;

/// The weight gradient's unfold tiles hold about this many elements at most (8 MB of f32).
const WEIGHT_GRAD_TILE_ELEMS: usize = 1 << 21;

/// Tiles are at least this many output pixels wide: each tile's product repacks the weights.
const MIN_TILE_PIXELS: usize = 128;

/// The output pixels a forward unfold tile holds (all of them: no tiling).
fn tile_pixels(g: &ConvGeometry) -> usize {
    let op = g.output_pixels().max(1);
    let want = (TILE_ELEMS / g.patch_len().max(1)).max(MIN_TILE_PIXELS);
    if g.is_pointwise() || want >= op {
        return op;
    }
    // equal tiles, as many as a multiple of the threads (a batch of one keeps them all busy)
    op.div_ceil(op.div_ceil(want).next_multiple_of(crate::par::threads()))
}

/// A destination that tasks on several threads write through, each to elements of its own.
#[derive(Clone, Copy)]
pub(super) struct SharedOut<T>(pub(super) *mut T);

// SAFETY: the pointer is only written through by tasks that write disjoint elements (see each
// use), while the buffer it points into is borrowed mutably by the function that runs them.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as for `Send`: shared between tasks that each write their own elements.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The element `offset` past the start (a method, so that closures capture the whole
    /// `SharedOut`, not its non-`Sync` field).
    pub(super) fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// [`forward`] a tile of `tile` output pixels at a time: each (image, tile) task unfolds its
/// pixels into its thread's scratch buffer and multiplies the weights by them straight into its
/// columns of `y`, while the unfolded tile is still in cache.
fn forward_tiled<T: GemmScalar>(
    x: &[T],
    w: &[T],
    g: &ConvGeometry,
    y: &mut [T],
    accumulate: bool,
    tile: usize,
    then: Then<'_, T>,
) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    assert!(y.len() == g.batch * g.out_channels * op && tile > 0, "conv2d kernel: output does not fit {g:?}");
    let tiles = op.div_ceil(tile);
    let out = SharedOut(y.as_mut_ptr());
    let task = |item: usize| {
        let (n, t) = (item / tiles, item % tiles);
        let pixels = t * tile..(t * tile + tile).min(op);
        let x = &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip];
        T::with_scratch(patch * pixels.len(), |col| {
            for gi in 0..g.groups {
                im2col(&x[gi * cg * ip..(gi + 1) * cg * ip], g, pixels.clone(), col, false);
                let wg = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch);
                let first = (n * g.out_channels + gi * og) * op + pixels.start;
                // SAFETY: `y` holds `batch x out_channels x op` elements (asserted above) and is
                // borrowed mutably until every task has ended; this task writes rows
                // `gi * og..(gi + 1) * og` of image `n` at columns `pixels`, which no other
                // task (another image, group or tile) writes; the rows are `op >= pixels.len()`
                // apart.
                unsafe { gemm_into_raw(wg, MatRef::rows(col, patch, pixels.len()), out.at(first), op, accumulate) };
                let Some(then) = then else { continue };
                for r in 0..og {
                    // SAFETY: as for the product: this row segment of `y` is this task's alone,
                    // and nothing else refers to it while the slice lives.
                    let seg = unsafe { core::slice::from_raw_parts_mut(out.at(first + r * op), pixels.len()) };
                    then(gi * og + r, seg);
                }
            }
        });
    };
    if g.macs() >= PAR_MACS {
        (0..g.batch * tiles).into_par_iter().with_max_len(HEAVY_TASKS).for_each(task);
    } else {
        (0..g.batch * tiles).for_each(task);
    }
}

/// A product should have at least this many output columns: below it, gemm's fixed cost per call
/// (packing the weights) outweighs a small image's arithmetic, so small images are unfolded side
/// by side and multiplied together. Measured at batch 32, alternating the settings in one
/// process: ResNet-18's 512->512 conv of 7x7 images, one image a product 35-53 ms, 3 images
/// (this value) 34-38 ms; the digits CNN's 32->64 conv of 4x4 images, 4 images a product
/// 0.20-0.26 ms, 8 (this value) 0.21-0.25 ms, 16 images 0.22-0.28 ms.
const MIN_PRODUCT_COLUMNS: usize = 128;

/// How many images one product of [`forward_side_by_side`] takes (1: each image alone).
fn images_per_product(g: &ConvGeometry) -> usize {
    let op = g.output_pixels().max(1);
    if g.batch < 2 || 2 * op > MIN_PRODUCT_COLUMNS {
        return 1;
    }
    // as many products as threads at least, when the work is worth the threads
    let per_thread = if g.macs() >= PAR_MACS { g.batch.div_ceil(crate::par::threads()) } else { g.batch };
    MIN_PRODUCT_COLUMNS.div_ceil(op).min(per_thread).max(1)
}

/// [`forward`] for small images, `per_product` images at a time: their unfolded windows side by
/// side in one `[patch, images x pixels]` matrix, one product per group, and the product's
/// columns copied out to each image (where the epilogue runs on them).
fn forward_side_by_side<T: GemmScalar>(
    x: &[T],
    w: &[T],
    g: &ConvGeometry,
    y: &mut [T],
    accumulate: bool,
    per_product: usize,
    then: Then<'_, T>,
) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let task = |(t, y): (usize, &mut [T])| {
        let images = t * per_product..((t + 1) * per_product).min(g.batch);
        let cols = images.len() * op;
        T::with_scratch(patch * cols + og * cols, |scratch| {
            let (wide, product) = scratch.split_at_mut(patch * cols);
            for gi in 0..g.groups {
                for (b, n) in images.clone().enumerate() {
                    let xg = &x[n * g.in_channels * ip + gi * cg * ip..][..cg * ip];
                    if g.is_pointwise() {
                        for (r, src) in xg.chunks_exact(op).enumerate() {
                            wide[r * cols + b * op..][..op].copy_from_slice(src);
                        }
                    } else {
                        // straight into this image's columns (no unfold of its own to copy)
                        im2col_small(xg, g, 0..cg, &mut wide[b * op..], cols);
                    }
                }
                let wg = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch);
                gemm_into(wg, MatRef::rows(wide, patch, cols), product, cols, false, false);
                // Overwriting, the epilogue runs on each channel's row of the product (all its
                // images at once: one call where there would be one per image); accumulating,
                // on each image's segment after the sum.
                let (early, late) = if accumulate { (None, then) } else { (then, None) };
                if let Some(then) = early {
                    product[..og * cols].chunks_exact_mut(cols).enumerate().for_each(|(r, row)| then(gi * og + r, row));
                }
                for b in 0..images.len() {
                    for r in 0..og {
                        let seg = &mut y[(b * g.out_channels + gi * og + r) * op..][..op];
                        let src = &product[r * cols + b * op..][..op];
                        if accumulate {
                            seg.iter_mut().zip(src).for_each(|(o, v)| *o = *o + *v);
                        } else {
                            copy_short(seg, src);
                        }
                        if let Some(then) = late {
                            then(gi * og + r, seg);
                        }
                    }
                }
            }
        });
    };
    let per_task = per_product * g.out_channels * op;
    if g.macs() >= PAR_MACS {
        y.par_chunks_mut(per_task).with_max_len(HEAVY_TASKS).enumerate().for_each(task);
    } else {
        y.chunks_mut(per_task).enumerate().for_each(task);
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

/// The way [`forward`] runs a convolution.
enum ForwardPath {
    /// Shifted views of the padded input, summed by the direct kernel (f32) or by gemm per tap.
    Shifted(Shifted, Option<DirectConv>),
    /// Unfolded a tile of this many output pixels at a time ([`forward_tiled`]).
    Tiled(usize),
    /// Unfolded this many images side by side into one product ([`forward_side_by_side`]).
    SideBySide(usize),
    /// Each image unfolded whole (or not at all, 1x1) and multiplied alone.
    PerImage,
}

/// The path of `g`'s forward, `f32` or not (the direct kernel is f32's), on this CPU.
fn forward_path(g: &ConvGeometry, f32: bool) -> ForwardPath {
    let kernel = DirectConv::detect().filter(|_| f32);
    if let Some((k, s)) = kernel.and_then(|k| Shifted::direct(g, &k).map(|s| (k, s))) {
        return ForwardPath::Shifted(s, Some(k));
    }
    if let Some(s) = Shifted::worthwhile(g).filter(|_| split(g).0) {
        // (a batch smaller than the threads keeps the unfold, whose single image is split
        // between the threads: shifted, it measured 1.2-1.3x slower at batch 1)
        return ForwardPath::Shifted(s, None);
    }
    let tile = tile_pixels(g);
    if tile < g.output_pixels() {
        return ForwardPath::Tiled(tile);
    }
    match images_per_product(g) {
        1 => ForwardPath::PerImage,
        per_product => ForwardPath::SideBySide(per_product),
    }
}

fn forward<T: GemmScalar>(x: &[T], w: &[T], g: &ConvGeometry, y: &mut [T], accumulate: bool, then: Then<'_, T>) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    match forward_path(g, downcast::<T, f32>(x).is_some()) {
        ForwardPath::Shifted(s, k) => return forward_shifted(x, w, g, &s, k, y, accumulate, then),
        ForwardPath::Tiled(tile) => return forward_tiled(x, w, g, y, accumulate, tile, then),
        ForwardPath::SideBySide(n) => return forward_side_by_side(x, w, g, y, accumulate, n, then),
        ForwardPath::PerImage => {}
    }
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
                im2col(xg, g, 0..op, col, gemm_par);
                MatRef::rows(&col[..], patch, op)
            };
            let wg = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch);
            let yg = &mut y[gi * og * op..(gi + 1) * og * op];
            gemm_into(wg, cols, yg, op, accumulate, gemm_par);
            if let Some(then) = then {
                let row = |(r, seg): (usize, &mut [T])| then(gi * og + r, seg);
                match gemm_par {
                    true => yg.par_chunks_mut(op).enumerate().for_each(row),
                    false => yg.chunks_mut(op).enumerate().for_each(row),
                }
            }
        }
    });
}

/// With stride 1 the input gradient is itself a convolution: of `gy`, padded by
/// `dilation * (kernel - 1) - padding`, with the kernel flipped and each group's channel axes
/// swapped. This is its geometry (`None` for other strides, 1x1 kernels and paddings wider than
/// the kernel's reach). Run as one, it takes the forward's unfold + gemm with its long inner
/// dimension, instead of a product over only the output channels and a scatter-add (measured
/// 29-34 ms down to 25 ms for 32x64x56x56 with a 3x3 kernel).
fn input_grad_as_convolution(g: &ConvGeometry) -> Option<ConvGeometry> {
    if g.stride != [1, 1] || g.is_pointwise() {
        return None;
    }
    let pad = |i: usize| (g.dilation[i] * (g.kernel[i] - 1)).checked_sub(g.padding[i]);
    let t = ConvGeometry::new(
        g.batch,
        g.out_channels,
        g.in_channels,
        g.groups,
        g.output,
        g.kernel,
        [1, 1],
        [pad(0)?, pad(1)?],
        g.dilation,
    )?;
    (t.output == g.input).then_some(t)
}

/// The weights of [`input_grad_as_convolution`]: `[out, in/groups, kh, kw]` becomes
/// `[in, out/groups, kh, kw]`, each window turned by 180 degrees.
fn flipped_transposed<T: GemmScalar>(w: &[T], g: &ConvGeometry) -> Vec<T> {
    let (cg, og, [kh, kw]) = (g.in_per_group(), g.out_per_group(), g.kernel);
    let mut out = vec![T::ZERO; w.len()];
    for gi in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                let src = ((gi * og + o) * cg + c) * kh * kw;
                let dst = ((gi * cg + c) * og + o) * kh * kw;
                for i in 0..kh * kw {
                    out[dst + i] = w[src + kh * kw - 1 - i];
                }
            }
        }
    }
    out
}

/// `gx += ∂(x ⋆ w)/∂x applied to gy`: for stride 1 as a convolution of `gy`, otherwise
/// unfolding `tile` output pixels at a time and folding them back.
fn input_grad<T: GemmScalar>(gy: &[T], w: &[T], g: &ConvGeometry, gx: &mut [T], tile: usize) {
    if let Some(t) = input_grad_as_convolution(g) {
        return forward(gy, &flipped_transposed(w, g), &t, gx, true, None);
    }
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let (images, gemm_par) = split(g);
    let mut gxs: Vec<&mut [T]> = gx.chunks_mut(g.in_channels * ip).collect();
    let scratch = if g.is_pointwise() { 0 } else { patch * tile };
    per_image(&mut gxs, scratch, images, |n, gx, col| {
        let gy = &gy[n * g.out_channels * op..(n + 1) * g.out_channels * op];
        for gi in 0..g.groups {
            let wg_t = MatRef::rows(&w[gi * og * patch..(gi + 1) * og * patch], og, patch).t();
            let gyg = &gy[gi * og * op..(gi + 1) * og * op];
            let gxg = &mut gx[gi * cg * ip..(gi + 1) * cg * ip];
            if g.is_pointwise() {
                gemm_into(wg_t, MatRef::rows(gyg, og, op), gxg, op, true, gemm_par);
                continue;
            }
            // a tile of output pixels at a time: its unfolded gradient is folded back in cache
            for first in (0..op).step_by(tile) {
                let pixels = first..(first + tile).min(op);
                let col = &mut col[..patch * pixels.len()];
                let gy_tile = MatRef::strided_rows(&gyg[first..], og, pixels.len(), op);
                gemm_into(wg_t, gy_tile, col, pixels.len(), false, gemm_par);
                col2im_add(col, g, pixels, gxg);
            }
        }
    });
}

/// The layout of a convolution seen through shifted views. Each input plane is copied with its
/// zero border (`[hp, wp]`) and split into `sh x sw` phase planes of `phase` =
/// `[ceil(hp / sh), ceil(wp / sw)]` (phase `(a, b)` holds the padded rows `a, a + sh, ..` and
/// columns `b, b + sw, ..`; with stride 1 there is one phase, the padded plane itself). The
/// channels' copies are `plane` elements apart, the elements past the last phase zero. The
/// output is written as `oh` rows of `phase[1]` columns, the columns past `ow` junk (zero in
/// the weight gradient's copy of the output gradient). Output position `q` of that wide grid
/// then reads tap `(ki, kj)` at `q` plus a fixed offset into its channel's copy (in the phase
/// of `(ki dh mod sh, kj dw mod sw)`, `ki dh / sh` rows and `kj dw / sw` columns in): every tap
/// is the same copy at its own offset, a strided view, so no unfolded copy is needed.
#[derive(Clone, Copy)]
struct Shifted {
    phase: [usize; 2],
    plane: usize,
    /// Positions of the wide output grid: `oh * phase[1]`.
    wide: usize,
}

/// Columns of the wide output grid that [`forward_shifted`] sums over the taps at a time.
const SHIFTED_CHUNK: usize = 1024;

/// Fewer input channels per group than this make the shifted products too thin (each tap's
/// product has them as its inner dimension in the forward, as its width in the weight gradient).
const SHIFTED_MIN_CHANNELS: usize = 16;

/// The direct kernel computes whole register blocks of the wide grid, junk columns and the
/// rounding up to a block included: below this share of valid outputs the unfold + gemm wins.
/// Measured on ResNet-18's 3x3 convolutions: 512 channels at 7x7 (half of the grid valid) ran
/// slower direct; 256 channels at 14x14 (82 % valid) 1.9 against 1.7 ms at batch 1, even at
/// batch 32 within this machine's noise; 28x28 and larger planes (91 % and up) gain.
const DIRECT_MIN_VALID: f64 = 0.85;

impl Shifted {
    /// The layout where shifted views through gemm pay, measured against im2col + gemm
    /// (32x64x56x56, 3x3: weight gradient 54 -> 36 ms, forward 40 -> 33 ms; a 5x5 kernel, 16
    /// channels, 112x112 planes gain too): stride 1, planes above [`SMALL_PLANE`] (below it
    /// the unfold stays in cache and wins: 512 channels at 7x7 ran 1.2-1.4x slower shifted),
    /// and at least [`SHIFTED_MIN_CHANNELS`] input channels a group (3 ran 2.5x slower).
    fn worthwhile(g: &ConvGeometry) -> Option<Self> {
        let fits = g.stride == [1, 1] && !g.is_pointwise() && g.in_per_group() >= SHIFTED_MIN_CHANNELS;
        (fits && g.output_pixels() > SMALL_PLANE).then(|| Self::new(g)).flatten()
    }

    /// The layout where the f32 direct kernel `k` pays: any stride and input channel count (its
    /// work per input channel and tap is a whole register block), at least [`DIRECT_MIN_VALID`]
    /// of the outputs it computes valid (output channels of a group rounded up to a block
    /// count too), and not 1x1: unit-stride 1x1 is a product without an unfold already, and a
    /// strided one (ResNet's downsampling) ran 13-25 % faster through its unfold (a
    /// subsampling copy) and gemm than through the kernel, whose one tap per channel is too
    /// little work per block.
    fn direct(g: &ConvGeometry, k: &DirectConv) -> Option<Self> {
        let s = Self::phased(g);
        let og = g.out_per_group();
        let computed = k.padded_positions(s.wide) * k.padded_channels(og);
        let valid = (g.output_pixels() * og) as f64 / computed.max(1) as f64;
        (g.kernel != [1, 1] && valid >= DIRECT_MIN_VALID).then_some(s)
    }

    /// The layout of any stride-1 convolution (`None` for other strides).
    fn new(g: &ConvGeometry) -> Option<Self> {
        (g.stride == [1, 1]).then(|| Self::phased(g))
    }

    /// The layout of any convolution.
    fn phased(g: &ConvGeometry) -> Self {
        let ([h, w], [ph, pw], [oh, _], [sh, sw]) = (g.input, g.padding, g.output, g.stride);
        let padded = [h + 2 * ph, w + 2 * pw];
        let phase = [padded[0].div_ceil(sh), padded[1].div_ceil(sw)];
        // the last phase's taps reach `(kw - 1) dw / sw` columns past its end
        let plane = sh * sw * phase[0] * phase[1] + (g.kernel[1] - 1) * g.dilation[1] / sw;
        Self { phase, plane, wide: oh * phase[1] }
    }

    /// The offset of tap `t` (`ki * kw + kj`) in a channel's copy.
    fn tap_offset(&self, g: &ConvGeometry, t: usize) -> usize {
        let (ki, kj) = (t / g.kernel[1], t % g.kernel[1]);
        let (r, c) = (ki * g.dilation[0], kj * g.dilation[1]);
        let [sh, sw] = g.stride;
        ((r % sh) * sw + c % sw) * self.phase[0] * self.phase[1] + (r / sh) * self.phase[1] + c / sw
    }

    /// Copies one image's planes (`[channels, h, w]`) into `xp` (`[channels, plane]`) with
    /// their zero borders, split into phases (those no tap reads left as they were: only junk
    /// outputs read them).
    fn pad_input<T: GemmScalar>(&self, g: &ConvGeometry, x: &[T], xp: &mut [T], parallel: bool) {
        let ([h, w], [ph, pw], [sh, sw], [hq, wq]) = (g.input, g.padding, g.stride, self.phase);
        // only the phases some tap reads are written (a 1x1 stride-2 kernel reads one of four)
        let used = |axis: usize, p: usize| (0..g.kernel[axis]).any(|k| k * g.dilation[axis] % g.stride[axis] == p);
        let (rows, cols): (Vec<bool>, Vec<bool>) =
            ((0..sh).map(|a| used(0, a)).collect(), (0..sw).map(|b| used(1, b)).collect());
        let phased = |(src, dst): (&[T], &mut [T])| {
            for (p, phase) in dst[..sh * sw * hq * wq].chunks_exact_mut(hq * wq).enumerate() {
                if rows[p / sw] && cols[p % sw] {
                    phase.fill(T::ZERO);
                }
            }
            dst[sh * sw * hq * wq..].fill(T::ZERO);
            for (r, row) in src.chunks_exact(w).enumerate() {
                let pr = ph + r;
                if !rows[pr % sh] {
                    continue;
                }
                let line = &mut dst[(pr % sh) * sw * hq * wq + (pr / sh) * wq..];
                if sw == 2 && cols[0] && cols[1] {
                    split_pairs(row, pw, line.split_at_mut(hq * wq));
                    continue;
                }
                // phase `b` of the row takes its padded columns `b, b + sw, ..`
                for b in (0..sw).filter(|&b| cols[b]) {
                    let first = (b + sw - pw % sw) % sw; // the first column of `row` in it
                    let out = &mut line[b * hq * wq + (pw + first) / sw..];
                    for (o, &v) in out.iter_mut().zip(row.iter().skip(first).step_by(sw)) {
                        *o = v;
                    }
                }
            }
        };
        let one_channel = |(src, dst): (&[T], &mut [T])| {
            if [sh, sw] == [1, 1] { pad_plane(src, dst, g.input, g.padding) } else { phased((src, dst)) }
        };
        if parallel {
            x.par_chunks(h * w).zip(xp.par_chunks_mut(self.plane)).for_each(one_channel);
        } else {
            x.chunks_exact(h * w).zip(xp.chunks_exact_mut(self.plane)).for_each(one_channel);
        }
    }

    /// Copies one image's output gradient (`[channels, oh, ow]`) into the wide grid
    /// (`[channels, wide]`), junk columns zero.
    fn widen_output<T: GemmScalar>(&self, g: &ConvGeometry, gy: &[T], wide: &mut [T]) {
        let ([_, ow], wp) = (g.output, self.phase[1]);
        for (src, dst) in gy.chunks_exact(g.output_pixels()).zip(wide.chunks_exact_mut(self.wide)) {
            for (row, line) in src.chunks_exact(ow).zip(dst.chunks_exact_mut(wp)) {
                line[..ow].copy_from_slice(row);
                line[ow..].fill(T::ZERO);
            }
        }
    }
}

/// One channel's plane (`[h, w]`, the geometry's `input`) into `dst` with its zero borders
/// (`padding` on each side), as rows of `w + 2 pw`; elements past the padded plane are zeroed.
pub(super) fn pad_plane<T: GemmScalar>(src: &[T], dst: &mut [T], [h, w]: [usize; 2], [ph, pw]: [usize; 2]) {
    let wp = w + 2 * pw;
    dst[..ph * wp].fill(T::ZERO);
    for (r, row) in src.chunks_exact(w).enumerate() {
        let line = &mut dst[(ph + r) * wp..(ph + r + 1) * wp];
        line[..pw].fill(T::ZERO);
        line[pw..pw + w].copy_from_slice(row);
        line[pw + w..].fill(T::ZERO);
    }
    dst[(ph + h) * wp..].fill(T::ZERO);
}

/// One input row into its two column phases of stride 2 (`even` and `odd`, each from the row's
/// place in its phase): input column `c` is padded column `pw + c`, element `(pw + c) / 2` of
/// phase `(pw + c) % 2`. One pass over pairs of columns, which compiles to vector shuffles; the
/// general strided copy moves one element at a time (it was 15 % of a 64->128 stride-2 3x3
/// convolution at batch 1; in-process A/B, that convolution runs 9-12 % faster, ResNet's stem
/// 4-6 %).
fn split_pairs<T: Copy>(row: &[T], pw: usize, (even, odd): (&mut [T], &mut [T])) {
    let lead = (pw % 2).min(row.len()); // with odd padding, column 0 opens the odd phase
    if lead == 1 {
        odd[pw / 2] = row[0];
    }
    let (start, pairs) = ((pw + lead) / 2, row[lead..].chunks_exact(2));
    let (n, tail) = (pairs.len(), pairs.remainder());
    for ((e, o), pair) in even[start..start + n].iter_mut().zip(&mut odd[start..start + n]).zip(pairs) {
        *e = pair[0];
        *o = pair[1];
    }
    if let [v] = tail {
        even[start + n] = *v;
    }
}

/// The stride-1 forward without an unfold: per image, group and tap, the tap's weights
/// (`[out/groups, in/groups]`, a strided view) times the padded input read at the tap's offset
/// (`[in/groups, wide]`), summed into the wide output grid, whose valid columns are then copied
/// (or added) into `y` and given the epilogue.
#[allow(clippy::too_many_arguments)]
fn forward_shifted<T: GemmScalar>(
    x: &[T],
    w: &[T],
    g: &ConvGeometry,
    s: &Shifted,
    kernel: Option<DirectConv>,
    y: &mut [T],
    accumulate: bool,
    then: Then<'_, T>,
) {
    let (cg, og, patch, ip, op, kk) = (
        g.in_per_group(),
        g.out_per_group(),
        g.patch_len(),
        g.input_pixels(),
        g.output_pixels(),
        g.kernel[0] * g.kernel[1],
    );
    let ([_, ow], wp) = (g.output, s.phase[1]);
    let (images, gemm_par) = split(g);
    // With the direct kernel (f32 only) the weights are packed once per group, the output grid
    // is rounded up to whole register blocks, and each channel's copy is that much longer
    // (zeros), so that the last block reads inside it.
    let direct = kernel.zip(downcast::<T, f32>(w)).map(|(k, w)| {
        let packed: Vec<Vec<f32>> = w.chunks_exact(og * patch).map(|wg| k.pack(wg, og, cg, kk)).collect();
        (k, packed)
    });
    let (rows, wide_len) = match &direct {
        Some((k, _)) => (k.padded_channels(og), k.padded_positions(s.wide)),
        None => (og, s.wide),
    };
    let s = &Shifted { plane: s.plane + (wide_len - s.wide), ..*s };
    let offsets: Vec<usize> = (0..kk).map(|t| s.tap_offset(g, t)).collect();
    let xp_len = g.in_channels * s.plane;
    let mut ys: Vec<&mut [T]> = y.chunks_mut(g.out_channels * op).collect();
    per_image(&mut ys, xp_len + rows * wide_len, images, |n, y, scratch| {
        let (xp, wide) = scratch.split_at_mut(xp_len);
        s.pad_input(g, &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip], xp, gemm_par);
        for gi in 0..g.groups {
            if let Some((k, packed)) = &direct {
                let xg = downcast::<T, f32>(&xp[gi * cg * s.plane..(gi + 1) * cg * s.plane]).expect("f32");
                let wide = downcast_mut::<T, f32>(wide).expect("f32");
                k.run(xg, s.plane, cg, &offsets, &packed[gi], wide, wide_len, gemm_par);
            } else {
                // a chunk of the wide grid at a time, so that its sum stays in cache across the taps
                for q0 in (0..s.wide).step_by(SHIFTED_CHUNK) {
                    let cols = SHIFTED_CHUNK.min(s.wide - q0);
                    for (t, &offset) in offsets.iter().enumerate() {
                        let a = MatRef {
                            data: &w[gi * og * patch + t..],
                            rows: og,
                            cols: cg,
                            row_stride: patch,
                            col_stride: kk,
                        };
                        let b = MatRef::strided_rows(&xp[gi * cg * s.plane + offset + q0..], cg, cols, s.plane);
                        gemm_into(a, b, &mut wide[q0..], s.wide, t > 0, gemm_par);
                    }
                }
            }
            let copy_out = |(r, (dst, src)): (usize, (&mut [T], &[T]))| {
                for (d, line) in dst.chunks_exact_mut(ow).zip(src.chunks_exact(wp)) {
                    if accumulate {
                        d.iter_mut().zip(line).for_each(|(d, v)| *d = *d + *v);
                    } else {
                        d.copy_from_slice(&line[..ow]);
                    }
                }
                if let Some(then) = then {
                    then(gi * og + r, dst);
                }
            };
            let dst = &mut y[gi * og * op..(gi + 1) * og * op];
            if gemm_par {
                dst.par_chunks_mut(op).zip(wide.par_chunks(wide_len)).enumerate().for_each(copy_out);
            } else {
                dst.chunks_mut(op).zip(wide.chunks(wide_len)).enumerate().for_each(copy_out);
            }
        }
    });
}

/// The stride-1 weight gradient without an unfold: per image and tap, one product of the wide
/// output gradient (`[out/groups, wide]`) and the padded input read at the tap's offset
/// (`[wide, in/groups]`, a strided view), summed into a tap-major buffer that is transposed into
/// `gw` at the end. Both copies of an image fit in L2, where the unfold of a 56x56 image with 64
/// channels (7 MB) does not.
fn weight_grad_shifted<T: GemmScalar>(x: &[T], gy: &[T], g: &ConvGeometry, s: &Shifted, gw: &mut [T]) {
    let (cg, og, ip, op, kk) =
        (g.in_per_group(), g.out_per_group(), g.input_pixels(), g.output_pixels(), g.kernel[0] * g.kernel[1]);
    let (images, gemm_par) = split(g);
    let (xp_len, wide_len) = (g.in_channels * s.plane, g.out_channels * s.wide);
    // acc: [groups, taps, out/groups, in/groups]
    let one_image = |n: usize, acc: &mut [T], scratch: &mut [T]| {
        let (xp, wide) = scratch.split_at_mut(xp_len);
        s.pad_input(g, &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip], xp, false);
        s.widen_output(g, &gy[n * g.out_channels * op..(n + 1) * g.out_channels * op], wide);
        for gi in 0..g.groups {
            let a = MatRef::rows(&wide[gi * og * s.wide..(gi + 1) * og * s.wide], og, s.wide);
            for t in 0..kk {
                let first = gi * cg * s.plane + s.tap_offset(g, t);
                let b = MatRef { data: &xp[first..], rows: s.wide, cols: cg, row_stride: 1, col_stride: s.plane };
                let out = &mut acc[(gi * kk + t) * og * cg..(gi * kk + t + 1) * og * cg];
                gemm_into(a, b, out, cg, true, gemm_par);
            }
        }
    };
    let mut acc = vec![T::ZERO; gw.len()];
    sum_over_images(g.batch, xp_len + wide_len, images, &mut acc, one_image);
    // [groups, taps, out, in] -> [groups, out, in, taps]
    for gi in 0..g.groups {
        for t in 0..kk {
            let block = &acc[(gi * kk + t) * og * cg..(gi * kk + t + 1) * og * cg];
            for (oc, v) in block.iter().enumerate() {
                let i = (gi * og + oc / cg) * cg * kk + (oc % cg) * kk + t;
                gw[i] = gw[i] + *v;
            }
        }
    }
}

/// `gw += ∂(x ⋆ w)/∂w applied to gy`, unfolding `tile` output pixels at a time.
fn weight_grad<T: GemmScalar>(x: &[T], gy: &[T], g: &ConvGeometry, gw: &mut [T], tile: usize) {
    let (cg, og, patch, ip, op) =
        (g.in_per_group(), g.out_per_group(), g.patch_len(), g.input_pixels(), g.output_pixels());
    let (images, gemm_par) = split(g);
    let one_image = |n: usize, gw: &mut [T], col: &mut [T]| {
        let x = &x[n * g.in_channels * ip..(n + 1) * g.in_channels * ip];
        let gy = &gy[n * g.out_channels * op..(n + 1) * g.out_channels * op];
        for gi in 0..g.groups {
            let xg = &x[gi * cg * ip..(gi + 1) * cg * ip];
            let gyg = &gy[gi * og * op..(gi + 1) * og * op];
            let gwg = &mut gw[gi * og * patch..(gi + 1) * og * patch];
            if g.is_pointwise() {
                gemm_into(MatRef::rows(gyg, og, op), MatRef::rows(xg, cg, op).t(), gwg, patch, true, gemm_par);
                continue;
            }
            // a tile of output pixels at a time, multiplied while its unfold is in cache
            for first in (0..op).step_by(tile) {
                let pixels = first..(first + tile).min(op);
                let col = &mut col[..patch * pixels.len()];
                im2col(xg, g, pixels.clone(), col, gemm_par);
                let cols_t = MatRef::rows(&col[..], patch, pixels.len()).t();
                let gy_tile = MatRef::strided_rows(&gyg[first..], og, pixels.len(), op);
                gemm_into(gy_tile, cols_t, gwg, patch, true, gemm_par);
            }
        }
    };
    let scratch = if g.is_pointwise() { 0 } else { patch * tile };
    sum_over_images(g.batch, scratch, images, gw, one_image);
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

/// `y (+)= x ⋆ w` over contiguous buffers, then `then(output channel, segment)` on every row
/// segment of `y` (see [`Then`]). `packed`: `w` as [`blocked_filters`] packed it, for f32
/// convolutions that run many times with the same weights (a graph runtime's).
pub(crate) fn conv2d_forward<E: Float>(
    x: &[E],
    w: &[E],
    g: &ConvGeometry,
    y: &mut [E],
    accumulate: bool,
    then: Then<'_, E>,
    packed: Option<&BlockedFilters>,
) {
    check_lens(g, x.len(), w.len(), y.len());
    // f32 and f64 run `then` inside the kernel; half types (computed in f32, then rounded)
    // after it, on the rounded output.
    let native = downcast::<E, f32>(x).is_some() || downcast::<E, f64>(x).is_some();
    let in_kernel = if native { then } else { None };
    let then32 = in_kernel.map(|f| move |c: usize, s: &mut [f32]| f(c, downcast_mut::<f32, E>(s).expect("E is f32")));
    let then64 = in_kernel.map(|f| move |c: usize, s: &mut [f64]| f(c, downcast_mut::<f64, E>(s).expect("E is f64")));
    // Weights packed once (a graph runtime's constants) take the channel-blocked kernel; packed
    // on each call they cost more than it gains (at batch 1, 512 channels at 7x7 ran 2x slower:
    // 9 MB of weights rewritten per call).
    if let (Some(f), Some(k), Some(x)) = (packed, BlockedConv::detect(), downcast::<E, f32>(x)) {
        let y = downcast_mut::<E, f32>(y).expect("E is f32");
        return k.forward(x, f, g, y, accumulate, then32.as_ref().map(|f| f as _));
    }
    in_gemm_type(
        x,
        w,
        y,
        accumulate,
        |x, w, y| forward(x, w, g, y, accumulate, then32.as_ref().map(|f| f as _)),
        |x, w, y| forward(x, w, g, y, accumulate, then64.as_ref().map(|f| f as _)),
    );
    if let (false, Some(then)) = (native, then) {
        for (row, seg) in y.chunks_mut(g.output_pixels().max(1)).enumerate() {
            then(row % g.out_channels, seg);
        }
    }
}

/// `w` packed for the channel-blocked kernel when that kernel runs `g` on this CPU (f32 only):
/// what [`conv2d_forward`] would otherwise pack on each call.
pub(crate) fn blocked_filters(w: &[f32], g: &ConvGeometry) -> Option<BlockedFilters> {
    check_lens(g, g.batch * g.in_channels * g.input_pixels(), w.len(), g.batch * g.out_channels * g.output_pixels());
    let tiled = matches!(forward_path(g, true), ForwardPath::Tiled(_));
    BlockedConv::detect().filter(|k| k.worthwhile(g, tiled)).map(|k| k.pack(w, g))
}

/// `gx += ∂(x ⋆ w)/∂x applied to gy`.
pub(crate) fn conv2d_input_grad<E: Float>(gy: &[E], w: &[E], g: &ConvGeometry, gx: &mut [E]) {
    check_lens(g, gx.len(), w.len(), gy.len());
    let tile = tile_pixels(g);
    in_gemm_type(
        gy,
        w,
        gx,
        true,
        |gy, w, gx| input_grad(gy, w, g, gx, tile),
        |gy, w, gx| input_grad(gy, w, g, gx, tile),
    );
}

/// `gw += ∂(x ⋆ w)/∂w applied to gy`.
pub(crate) fn conv2d_weight_grad<E: Float>(x: &[E], gy: &[E], g: &ConvGeometry, gw: &mut [E]) {
    check_lens(g, x.len(), gw.len(), gy.len());
    // The pixels are this product's inner dimension, so long tiles pay (measured: a whole
    // 56x56 image 2-5 % faster than the forward's tiles); bounded to keep the scratch modest.
    let tile = (WEIGHT_GRAD_TILE_ELEMS / g.patch_len().max(1)).max(tile_pixels(g)).min(g.output_pixels().max(1));
    in_gemm_type(
        x,
        gy,
        gw,
        true,
        |x, gy, gw| match Shifted::worthwhile(g) {
            Some(s) => weight_grad_shifted(x, gy, g, &s, gw),
            None => weight_grad(x, gy, g, gw, tile),
        },
        |x, gy, gw| match Shifted::worthwhile(g) {
            Some(s) => weight_grad_shifted(x, gy, g, &s, gw),
            None => weight_grad(x, gy, g, gw, tile),
        },
    );
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
    /// runs this and `tiles_match_definition`: they cover the unsafe gemm calls, which the
    /// convolution tests it leaves out reach through the same functions).
    #[test]
    fn matches_definition() {
        for (groups, stride, padding, dilation) in [(1, 1, 0, 1), (2, 2, 1, 1), (1, 1, 2, 2), (2, 1, 1, 1)] {
            let g =
                ConvGeometry::new(2, 2, 4, groups, [4, 5], [2, 3], [stride; 2], [padding; 2], [dilation; 2]).unwrap();
            let x: Vec<f64> = (0..2 * 2 * 20).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..4 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let mut y = vec![0.0; 2 * 4 * g.output_pixels()];
            conv2d_forward(&x, &w, &g, &mut y, false, None, None);
            assert_eq!(y, direct(&x, &w, &g), "{g:?}");
            // an epilogue that adds the channel index, in f64 and (rounded first) in f16
            let then = |c: usize, seg: &mut [f64]| seg.iter_mut().for_each(|v| *v += c as f64);
            conv2d_forward(&x, &w, &g, &mut y, false, Some(&then), None);
            let op = g.output_pixels();
            let want: Vec<f64> =
                direct(&x, &w, &g).iter().enumerate().map(|(i, v)| v + ((i / op) % 4) as f64).collect();
            assert_eq!(y, want, "{g:?}, with an epilogue");
            let half = |v: &[f64]| v.iter().map(|&v| half::f16::from_f64(v)).collect::<Vec<_>>();
            let then16 = |c: usize, seg: &mut [half::f16]| {
                seg.iter_mut().for_each(|v| *v = half::f16::from_f64(v.to_f64() + c as f64))
            };
            let mut y16 = half(&y);
            conv2d_forward(&half(&x), &half(&w), &g, &mut y16, false, Some(&then16), None);
            assert_eq!(y16, half(&want), "{g:?}, f16 with an epilogue");
        }
    }

    /// Tiles of every width, which start and end inside output rows, give the untiled values
    /// (same-width and strided unfolds, padding, dilation, groups). Miri runs this: it covers
    /// the tasks' shared writes into `y`.
    #[test]
    fn tiles_match_definition() {
        let cases = [
            (1, 1, 1, 1, 3),
            (2, 2, 1, 1, 2),
            (1, 1, 2, 2, 3),
            (2, 1, 0, 1, 2),
            (1, 1, 1, 1, 2),
            (1, 2, 2, 2, 3),
            (1, 3, 1, 1, 3),
        ];
        // (Miri, slower by a few thousand times, runs groups, a stride and a dilation)
        for (groups, stride, padding, dilation, kw) in cases.into_iter().take(if cfg!(miri) { 3 } else { cases.len() })
        {
            let g =
                ConvGeometry::new(2, 2, 4, groups, [4, 5], [3, kw], [stride; 2], [padding; 2], [dilation; 2]).unwrap();
            let x: Vec<f64> = (0..2 * 2 * 20).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..4 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let want = direct(&x, &w, &g);
            let tiles: &[usize] = if cfg!(miri) { &[2, 3] } else { &[1, 2, 3, 4, 5, 7] };
            for &tile in tiles {
                let mut y = vec![0.0; 2 * 4 * g.output_pixels()];
                forward_tiled(&x, &w, &g, &mut y, false, tile, None);
                assert_eq!(y, want, "{g:?}, tiles of {tile}");
                // accumulated, then an epilogue that adds the channel index
                let then = |c: usize, seg: &mut [f64]| seg.iter_mut().for_each(|v| *v += c as f64);
                forward_tiled(&x, &w, &g, &mut y, true, tile, Some(&then));
                let op = g.output_pixels();
                let twice: Vec<f64> = want.iter().enumerate().map(|(i, v)| 2.0 * v + ((i / op) % 4) as f64).collect();
                assert_eq!(y, twice, "{g:?}, tiles of {tile}, accumulated");
            }
        }
    }

    /// Strided unfolds read the input by column phase ([`ColumnPhases`]): a stem-like 7x7
    /// stride-2 kernel and a dilated stride-3 one, over planes wider than a row of taps, in
    /// tiles that start and end anywhere, give the definition's values.
    #[test]
    #[cfg_attr(miri, ignore = "minutes under Miri; no unsafe of its own (see matches_definition)")]
    fn strided_unfolds_match_definition() {
        for (kernel, stride, padding, dilation) in [(7, 2, 3, 1), (3, 3, 1, 2), (2, 2, 0, 1)] {
            let (input, k) = ([9, 13], [kernel; 2]);
            let g = ConvGeometry::new(1, 3, 2, 1, input, k, [stride; 2], [padding; 2], [dilation; 2]).unwrap();
            let x: Vec<f64> = (0..3 * 9 * 13).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..2 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let want = direct(&x, &w, &g);
            for tile in [1, 3, 7, g.output_pixels()] {
                let mut y = vec![0.0; 2 * g.output_pixels()];
                forward_tiled(&x, &w, &g, &mut y, false, tile, None);
                assert_eq!(y, want, "{g:?}, tiles of {tile}");
            }
        }
    }

    /// Images unfolded side by side, any number per product (the last product short), with
    /// groups, a 1x1 kernel, accumulation and an epilogue, give the definition's values.
    #[test]
    #[cfg_attr(miri, ignore = "minutes under Miri; no unsafe of its own (see matches_definition)")]
    fn side_by_side_images_match_definition() {
        let three = ConvGeometry::new(5, 4, 6, 2, [4, 5], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let pointwise = ConvGeometry::new(5, 4, 6, 1, [4, 5], [1, 1], [1, 1], [0, 0], [1, 1]).unwrap();
        // output rows 4 and 8 wide (the constant-width unfolds), and a strided one
        let four = ConvGeometry::new(5, 4, 6, 2, [4, 4], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let eight = ConvGeometry::new(5, 4, 6, 1, [3, 8], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let strided = ConvGeometry::new(5, 4, 6, 1, [5, 7], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        for g in [three, pointwise, four, eight, strided] {
            assert!(images_per_product(&g) > 1);
            let x: Vec<f64> = (0..5 * 4 * g.input_pixels()).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..6 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let want = direct(&x, &w, &g);
            let then = |c: usize, seg: &mut [f64]| seg.iter_mut().for_each(|v| *v += c as f64);
            for per_product in 1..=5 {
                let mut y = vec![1.0; want.len()];
                forward_side_by_side(&x, &w, &g, &mut y, true, per_product, Some(&then));
                let op = g.output_pixels();
                let expect: Vec<f64> = want.iter().enumerate().map(|(i, v)| v + 1.0 + ((i / op) % 6) as f64).collect();
                assert_eq!(y, expect, "{g:?}, {per_product} per product");
                forward_side_by_side(&x, &w, &g, &mut y, false, per_product, None);
                assert_eq!(y, want, "{g:?}, {per_product} per product");
            }
        }
    }

    /// The shifted-view forward and weight gradient against the definition and the unfolding
    /// kernels: rectangular kernels, unequal paddings, dilation, groups, accumulation and an
    /// epilogue (small planes, which the dispatch would send to the unfold).
    #[test]
    #[cfg_attr(miri, ignore = "minutes under Miri; no unsafe of its own (see matches_definition)")]
    fn shifted_views_match_definition() {
        let cases = [
            ConvGeometry::new(2, 4, 6, 1, [5, 6], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap(),
            ConvGeometry::new(3, 4, 6, 2, [6, 5], [3, 2], [1, 1], [2, 0], [1, 2]).unwrap(),
            ConvGeometry::new(2, 2, 3, 1, [4, 7], [1, 3], [1, 1], [0, 2], [1, 1]).unwrap(),
            ConvGeometry::new(2, 3, 2, 1, [5, 5], [2, 2], [1, 1], [0, 0], [2, 1]).unwrap(),
        ];
        for g in cases {
            let s = Shifted::new(&g).unwrap();
            let x: Vec<f64> =
                (0..g.batch * g.in_channels * g.input_pixels()).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..g.out_channels * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let gy: Vec<f64> =
                (0..g.batch * g.out_channels * g.output_pixels()).map(|i| ((i * 3) % 5) as f64 - 2.0).collect();
            let want = direct(&x, &w, &g);
            let mut y = vec![0.0; want.len()];
            forward_shifted(&x, &w, &g, &s, None, &mut y, false, None);
            assert_eq!(y, want, "{g:?}");
            let then = |c: usize, seg: &mut [f64]| seg.iter_mut().for_each(|v| *v += c as f64);
            forward_shifted(&x, &w, &g, &s, None, &mut y, true, Some(&then));
            let op = g.output_pixels();
            let twice: Vec<f64> =
                want.iter().enumerate().map(|(i, v)| 2.0 * v + ((i / op) % g.out_channels) as f64).collect();
            assert_eq!(y, twice, "{g:?}, accumulated with an epilogue");
            // f32 takes the direct kernel (where the CPU has a vector build)
            let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let mut y32 = vec![0.0f32; want.len()];
            forward_shifted(&f32s(&x), &f32s(&w), &g, &s, DirectConv::detect(), &mut y32, false, None);
            assert_eq!(y32, f32s(&want), "{g:?} in f32");
            let then32 = |c: usize, seg: &mut [f32]| seg.iter_mut().for_each(|v| *v += c as f32);
            forward_shifted(&f32s(&x), &f32s(&w), &g, &s, DirectConv::detect(), &mut y32, true, Some(&then32));
            assert_eq!(y32, f32s(&twice), "{g:?} in f32, accumulated with an epilogue");
            let (mut by_unfold, mut by_views) = (vec![1.0; w.len()], vec![1.0; w.len()]);
            weight_grad(&x, &gy, &g, &mut by_unfold, op);
            weight_grad_shifted(&x, &gy, &g, &s, &mut by_views);
            assert_eq!(by_views, by_unfold, "{g:?}");
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
            let ones = vec![1.0; w.len()];
            assert_eq!(dot(&gy, &want), dot(&by_views, &w) - dot(&ones, &w), "{g:?}: adjoint");
        }
        // strides other than 1 have no shifted layout; thin or small convolutions keep the unfold
        let strided = ConvGeometry::new(1, 16, 16, 1, [40, 40], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let thin = ConvGeometry::new(1, 3, 16, 1, [40, 40], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let wide = ConvGeometry::new(1, 16, 16, 1, [40, 40], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        assert!(Shifted::new(&strided).is_none() && Shifted::worthwhile(&thin).is_none());
        assert!(Shifted::worthwhile(&cases[0]).is_none() && Shifted::worthwhile(&wide).is_some());
    }

    /// The direct kernel over phase-split copies (strides above 1, dilation, groups, odd
    /// sizes) gives the definition's values, and so do gemm's products over the same layout.
    #[test]
    fn phased_direct_kernel_matches_definition() {
        let Some(k) = DirectConv::detect() else { return };
        let cases = [
            // ResNet's stem, smaller: 3 channels, 7x7, stride 2, padding 3
            ConvGeometry::new(2, 3, 9, 1, [13, 12], [7, 7], [2, 2], [3, 3], [1, 1]).unwrap(),
            ConvGeometry::new(1, 5, 8, 1, [11, 10], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap(),
            ConvGeometry::new(2, 4, 16, 2, [10, 11], [3, 2], [3, 2], [2, 0], [1, 2]).unwrap(),
            ConvGeometry::new(1, 2, 8, 1, [9, 9], [3, 3], [1, 2], [0, 1], [2, 1]).unwrap(),
            ConvGeometry::new(3, 6, 8, 1, [7, 8], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap(),
            // stride 2 in columns with even and odd paddings and widths (the paired row split)
            ConvGeometry::new(1, 3, 8, 1, [9, 9], [3, 3], [2, 2], [2, 2], [1, 1]).unwrap(),
            ConvGeometry::new(1, 2, 8, 1, [8, 11], [3, 3], [2, 2], [0, 0], [1, 1]).unwrap(),
            ConvGeometry::new(2, 2, 8, 1, [11, 13], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap(),
            ConvGeometry::new(1, 2, 8, 1, [5, 1], [1, 3], [1, 2], [0, 1], [1, 1]).unwrap(),
            // ResNet's downsampling 1x1, stride 2: one phase of four read
            ConvGeometry::new(2, 4, 8, 1, [9, 8], [1, 1], [2, 2], [0, 0], [1, 1]).unwrap(),
        ];
        for g in cases {
            let s = Shifted::phased(&g);
            let x: Vec<f64> =
                (0..g.batch * g.in_channels * g.input_pixels()).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let w: Vec<f64> = (0..g.out_channels * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let want: Vec<f32> = direct(&x, &w, &g).iter().map(|&v| v as f32).collect();
            let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let mut y = vec![f32::NAN; want.len()];
            forward_shifted(&f32s(&x), &f32s(&w), &g, &s, Some(k), &mut y, false, None);
            assert_eq!(y, want, "{g:?}");
            // the same through gemm, one product per tap
            let mut by_gemm = vec![f32::NAN; want.len()];
            forward_shifted(&f32s(&x), &f32s(&w), &g, &s, None, &mut by_gemm, false, None);
            assert_eq!(by_gemm, want, "{g:?} through gemm");
        }
        // the dispatch takes the direct kernel for the stem, not for half-empty register blocks
        let stem = ConvGeometry::new(2, 3, 64, 1, [224, 224], [7, 7], [2, 2], [3, 3], [1, 1]).unwrap();
        let small = ConvGeometry::new(2, 512, 512, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        assert!(Shifted::direct(&stem, &k).is_some() && Shifted::direct(&small, &k).is_none());
    }

    /// The dispatch sends a batch of wide stride-1 planes to the shifted views, with the same
    /// values as the definition (forward) and the unfold (weight gradient).
    #[test]
    #[cfg_attr(miri, ignore)] // millions of steps; the test above covers the kernels
    fn dispatched_shifted_views_match() {
        let g = ConvGeometry::new(2, 16, 8, 1, [20, 18], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        assert!(Shifted::worthwhile(&g).is_some() && split(&g).0);
        let x: Vec<f64> = (0..2 * 16 * 360).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let w: Vec<f64> = (0..8 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
        let gy: Vec<f64> = (0..2 * 8 * g.output_pixels()).map(|i| ((i * 3) % 5) as f64 - 2.0).collect();
        let mut y = vec![0.0; gy.len()];
        conv2d_forward(&x, &w, &g, &mut y, false, None, None);
        assert_eq!(y, direct(&x, &w, &g));
        let (mut gw, mut want) = (vec![0.0; w.len()], vec![0.0; w.len()]);
        conv2d_weight_grad(&x, &gy, &g, &mut gw);
        weight_grad(&x, &gy, &g, &mut want, g.output_pixels());
        assert_eq!(gw, want);
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
        conv2d_forward(&x, &w, &g, &mut y, false, None, None);
        assert_eq!(y, direct(&x, &w, &g));
        // f32: the direct kernel, its copies and its blocks split between the threads, with an
        // epilogue; a stride-2 window too
        let then = |c: usize, seg: &mut [f32]| seg.iter_mut().for_each(|v| *v += c as f32);
        let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let strided = ConvGeometry::new(1, 8, 40, 1, [47, 47], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        for g in [g, strided] {
            let x: Vec<f64> = (0..8 * g.input_pixels()).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let (x, w) = (&x[..], &w[..40 * g.patch_len()]);
            let mut y32 = vec![0f32; 40 * g.output_pixels()];
            conv2d_forward(&f32s(x), &f32s(w), &g, &mut y32, false, Some(&then), None);
            let op = g.output_pixels();
            let want: Vec<f32> =
                direct(x, w, &g).iter().enumerate().map(|(i, v)| (v + (i / op) as f64) as f32).collect();
            assert_eq!(y32, want, "{g:?}");
        }
    }

    /// The gradients satisfy `<gy, conv(x, w)> = <input_grad(gy), x> = <weight_grad(gy), w>`
    /// (the convolution is bilinear).
    #[test]
    #[cfg_attr(miri, ignore = "minutes under Miri; no unsafe of its own (see matches_definition)")]
    fn gradients_are_adjoint() {
        let strided = ConvGeometry::new(2, 4, 2, 2, [5, 4], [3, 2], [2, 1], [1, 1], [1, 2]).unwrap();
        let same_width = ConvGeometry::new(2, 4, 2, 1, [5, 4], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        // stride 1 with dilation, groups and unequal paddings: the input gradient as a convolution
        let dilated = ConvGeometry::new(2, 4, 2, 2, [5, 4], [3, 2], [1, 1], [2, 1], [1, 2]).unwrap();
        assert!(input_grad_as_convolution(&strided).is_none() && input_grad_as_convolution(&dilated).is_some());
        for g in [strided, same_width, dilated] {
            let x: Vec<f64> = (0..2 * 4 * 20).map(|i| ((i * 3) % 13) as f64 - 6.0).collect();
            let w: Vec<f64> = (0..2 * g.patch_len()).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
            let gy: Vec<f64> = (0..2 * 2 * g.output_pixels()).map(|i| ((i * 11) % 5) as f64 - 2.0).collect();
            let y = direct(&x, &w, &g);
            let (mut gx, mut gw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
            conv2d_input_grad(&gy, &w, &g, &mut gx);
            conv2d_weight_grad(&x, &gy, &g, &mut gw);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
            assert_eq!(dot(&gy, &y), dot(&gx, &x), "{g:?}");
            assert_eq!(dot(&gy, &y), dot(&gw, &w), "{g:?}");
            // a tile of output pixels at a time: the same gradients (small integers: exact sums)
            let tiles: Vec<usize> = if cfg!(miri) { vec![3] } else { (1..=g.output_pixels()).collect() };
            for tile in tiles {
                let (mut tgx, mut tgw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
                input_grad(&gy, &w, &g, &mut tgx, tile);
                weight_grad(&x, &gy, &g, &mut tgw, tile);
                assert_eq!((&tgx, &tgw), (&gx, &gw), "{g:?}, tiles of {tile}");
            }
        }
    }
}
