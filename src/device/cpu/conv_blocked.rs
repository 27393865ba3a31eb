//! The channel-blocked direct f32 convolution kernel, for small and strided output planes.
//!
//! A register block is `V` vectors of consecutive output channels (64 with AVX-512) by `P`
//! output positions: per input channel and tap it loads the block's `V` weight vectors and
//! broadcasts `P` input values, `V x P` fused multiply-adds. Positions are any list of output
//! pixels (each read at its own offset into the padded input), so a block may cross output rows
//! and a stride costs nothing; the row kernel of `conv_direct.rs` has positions in the lanes
//! instead and computes the junk columns of a wide grid, half of a 7x7 plane. The weights are
//! packed as `[output blocks, input channels, taps, block]`, which [`BlockedConv::pack`] does
//! once per call, or once per graph for a runtime's constant weights (this layout is what
//! onnxruntime's NCHWc kernels use for theirs). The AVX2 build's assembly block reads its
//! input in groups of 8 interleaved channels (see [`GROUP`]; an input of fewer channels is one
//! group of them all), into which the input is padded, and its weights of 8 channels a group
//! (`[output blocks, groups, taps, 8, block]`), for its loop unrolled over a group's channels.
//!
//! Measured on ResNet-18 in a graph runtime at batch 1, 2 threads, interleaved with the paths it
//! replaces (unfold + gemm, and the row kernel, on stride-2 phases for strided layers): 12-29 %
//! faster on the layers with 28x28 and 14x14 outputs, even at 7x7, 11 % on the whole model (see
//! [`BlockedConv::worthwhile`]).
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports, unused_variables))]

use super::conv::{SharedOut, Then, pad_plane};
#[cfg(target_arch = "x86_64")]
use super::conv_asm;
use super::fast_math::Simd;
use super::matmul::GemmScalar;
#[cfg(target_arch = "x86_64")]
use super::vector::{Avx2, Avx512};
use super::vector::{F32Simd, Scalar, prefetch};
use crate::compat::prelude::*;
use crate::device::ConvGeometry;
use crate::par::*;
use core::ops::Range;

/// Output positions per register block.
const POSITIONS: usize = 6;

/// At most this many output positions have their sums held at a time (`[positions, block]`,
/// 64 KiB with AVX-512, in L2), while the weights of a chunk of input channels stay in L1
/// across them; a plane is split into tiles of equal lengths (784 positions as 4 x 196, not
/// 3 x 256 + 16: each tile reads all of the block's weights again).
const TILE: usize = 256;

/// A chunk of input channels has at most this many packed weights (18 KiB), so that they stay
/// in the L1 cache across a tile's register blocks (the block's sums go back to the tile
/// between chunks).
const WEIGHTS_IN_L1: usize = 4608;

/// [`WEIGHTS_IN_L1`] for the AVX2 build's assembly block, twice as many: 36 KiB, 64 channels
/// of 3x3 taps, more than the L1 cache holds but read in order, which the hardware prefetcher
/// follows. ResNet-18 at batch 1 in a graph runtime, alternating with 18 KiB in one process:
/// 3 % faster in both orders (36.3 -> 35.3 ms, 39.1 -> 37.8 ms), on every layer; even at
/// batch 32.
const ASM_CHUNK_WEIGHTS: usize = 2 * WEIGHTS_IN_L1;

/// Channels a group of the AVX2 build's interleaved input: a pixel's are 32 bytes, half a
/// cache line, where each channel's plane was a stream of its own (a register block reads 3
/// rows of 32 channels: 96 streams, or 12 groups). The input is interleaved as it is padded.
/// ResNet-18 in a graph runtime on a 2-core AMD EPYC (Zen 3), alternating with the planar
/// layout in one process: 5 % faster at batch 1 (37.1 against 39.1 ms, 41.6 against 44.0),
/// 9 % at batch 32 (1148 against 1260 ms, 6 runs each). An input of fewer channels (ResNet's
/// stem has 3) is one group of them all, so that no lane is a padding zero.
const GROUP: usize = 8;

/// Weights packed for [`BlockedConv::forward`]: `[output blocks, input channels, taps, block]`,
/// zero in the channels past the last filter.
pub(crate) struct BlockedFilters {
    data: Vec<f32>,
    /// Where the weights start in `data` (a cache line's start).
    start: usize,
    /// The geometry's `(out_channels, in_channels, taps)`, checked against the call's.
    dims: (usize, usize, usize),
    block: usize,
    /// Input channels a group (see [`BlockedConv::group`]).
    group: usize,
}

/// The kernel of one vector build.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockedConv {
    simd: Simd,
    /// Vectors of output channels per register block.
    vectors: usize,
}

impl BlockedConv {
    /// The kernel of this CPU: `None` without a vector build. (AVX2's block, 16 channels by 6
    /// positions, is in assembly: compiled, it was no faster than the other paths.)
    pub(crate) fn detect() -> Option<Self> {
        Self::with(Simd::detect()).filter(|k| k.simd != Simd::Baseline)
    }

    /// The kernel of build `simd` (no higher than [`Simd::detect`]'s).
    fn with(simd: Simd) -> Option<Self> {
        match simd {
            // 4 x 6 accumulators, 4 weight vectors and a broadcast of 32 registers
            Simd::Avx512 => Some(Self { simd, vectors: 4 }),
            // 2 x 6, 2 and 1 of 16
            Simd::Avx2 => Some(Self { simd, vectors: 2 }),
            // the reference build, in scalar code (tests)
            Simd::Baseline => Some(Self { simd, vectors: 4 }),
        }
    }

    /// Output channels per block.
    fn block(&self) -> usize {
        self.vectors
            * match self.simd {
                Simd::Avx512 => 16,
                Simd::Avx2 => 8,
                Simd::Baseline => 1,
            }
    }

    /// Input channels a group of the padded input for `inputs` channels: the AVX2 build's
    /// assembly reads groups of up to [`GROUP`] interleaved channels, the other builds planes
    /// (1). With groups of `GROUP` (or 3, see `conv_asm::unrolled`), the weights are packed a
    /// group at a time (`[output blocks, groups, taps, group, block]`, zero past the last
    /// channel), for the assembly's loop unrolled over a group.
    fn group(&self, inputs: usize) -> usize {
        if self.assembly() { GROUP.min(inputs) } else { 1 }
    }

    /// Whether the register blocks are `conv_asm.rs`'s: the AVX2 build's (Miri runs no
    /// assembly: there the AVX2 build's blocks are compiled from Rust, on planes).
    fn assembly(&self) -> bool {
        cfg!(target_arch = "x86_64") && self.simd == Simd::Avx2 && !cfg!(miri)
    }

    /// Whether this kernel, with weights packed once, is the forward's fastest path for `g`;
    /// `unfold_tiled`: whether the path it would replace unfolds an image a tile at a time.
    ///
    /// Measured on ResNet-18's layers in a graph runtime at batch 1, with and without packed
    /// weights interleaved in one process: 12-20 % faster than the row kernel and unfold +
    /// gemm at 28x28 and 14x14, 21-29 % for the stride-2 layers with 28x28 and 14x14 outputs,
    /// even at 7x7 (where the 9 MB of weights stream from memory either way); 11 % on the
    /// whole model. So: one group; a stride, or outputs of at most 28x28 (a 56x56 plane at
    /// stride 1 is the row kernel's, whose junk columns are few there); not 1x1 (its
    /// subsampling unfold and gemm ran 2x faster); whole blocks of output channels for the
    /// threads (a block a task, so 64 channels at batch 1 stay with the row kernel); and enough
    /// products per output (input channels times taps, at least 16 x 9) to pay for a block's
    /// trips to memory: ResNet-18's stem (3 channels of 7x7 taps, stride 2) ran 6 % faster here
    /// than with the row kernel at batch 1 and even at batch 32, the digits CNN's first layer
    /// (1 channel of 3x3) 1.2-1.7x slower.
    ///
    /// With at least an image per thread, in the AVX2 build always (with 4 images a thread, its
    /// tasks are an image each; see [`BlockedConv::forward`]): ResNet-18 at batch 32 ran 3.5 %
    /// faster in all, every 3x3 layer faster, and at batch 4 4 % (171 against 178 ms). In the
    /// other builds, only where the other path is the tiled unfold, whose every tile's product
    /// repacks the weights (2.4 MB for 256 channels, 64 times a layer at batch 32): ResNet-18's
    /// 14x14 layers at batch 32, three configurations alternating in one process, ran 6-23 %
    /// faster here than tiled, and 10-19 % with this kernel's runs first (their 82 % valid grid
    /// also beat the row kernel). Where the row kernel takes the layer (28x28 at a stride of 2:
    /// 6 % slower here) or whole images are unfolded side by side into one product (7x7: even to
    /// 12 % slower here), those stay.
    ///
    /// On AVX2 (no AVX-512), also stride-1 planes above 28x28: there the row kernel's block is
    /// 4 channels by 24 positions, and each block reads the whole input again. ResNet-18's
    /// 56x56 layers at batch 1 on a 2-core AMD EPYC (Zen 3) ran 2.9 ms here against 4.4 ms
    /// with the row kernel (both compiled from Rust, before their blocks were in assembly).
    pub(crate) fn worthwhile(&self, g: &ConvGeometry, unfold_tiled: bool) -> bool {
        let block = self.block();
        g.groups == 1
            && (g.stride != [1, 1] || g.output_pixels() <= 28 * 28 || self.simd == Simd::Avx2)
            && g.kernel != [1, 1]
            && g.out_channels.is_multiple_of(block)
            && g.batch * (g.out_channels / block) >= crate::par::threads()
            && (g.batch < crate::par::threads() || unfold_tiled || self.simd == Simd::Avx2)
            && g.in_channels * g.kernel[0] * g.kernel[1] >= 16 * 9
    }

    /// `w` (`[out, in, kh, kw]`) in the order the kernel reads it.
    pub(crate) fn pack(&self, w: &[f32], g: &ConvGeometry) -> BlockedFilters {
        let (out, inputs, taps, block) = (g.out_channels, g.in_channels, g.kernel[0] * g.kernel[1], self.block());
        assert!(g.groups == 1 && w.len() == out * inputs * taps, "conv2d blocked kernel: weights do not fit {g:?}");
        let group = self.group(inputs);
        let per_block = inputs.next_multiple_of(group) * taps * block;
        // where filter weight `i` (`[in, taps]`) goes, in rows of `block`: a group at a time
        // for the assembly's loops unrolled over a group
        #[cfg(target_arch = "x86_64")]
        let by_group = conv_asm::unrolled(group);
        #[cfg(not(target_arch = "x86_64"))]
        let by_group = false;
        let row = |i: usize| match by_group {
            true => ((i / taps / group) * taps + i % taps) * group + i / taps % group,
            false => i,
        };
        // from a cache line's start: the AVX2 block's 64-byte rows of weights then each fill one
        // (a large vector comes from the system 16 bytes into a page, so that half the block's
        // 32-byte loads crossed two lines: ResNet-18 at batch 1, alternating in one process,
        // 39.8 against 40.6 ms)
        let total = out.div_ceil(block) * per_block;
        let mut data = vec![0.0; total + 15];
        let start = data.as_ptr().align_offset(64).min(15);
        let packed = &mut data[start..start + total];
        // a task per block; within one, 16 weights of each filter at a time (a cache line
        // read, and a few kilobytes of writes that stay in L1)
        const TILE: usize = 16;
        let per_filter = inputs * taps;
        let pack_block = |(b, dst): (usize, &mut [f32])| {
            let filters: Vec<&[f32]> = w.chunks_exact(per_filter).skip(b * block).take(block).collect();
            for t in (0..per_filter).step_by(TILE) {
                for (r, filter) in filters.iter().enumerate() {
                    for (i, &v) in filter.iter().enumerate().take(t + TILE).skip(t) {
                        dst[row(i) * block + r] = v;
                    }
                }
            }
        };
        if packed.len() >= 1 << 16 {
            packed.par_chunks_mut(per_block).enumerate().for_each(pack_block);
        } else {
            packed.chunks_mut(per_block).enumerate().for_each(pack_block);
        }
        BlockedFilters { data, start, dims: (out, inputs, taps), block, group }
    }

    /// `y (+)= x ⋆ w` for the weights `f` packed, then `then(output channel, segment)` on each
    /// part of `y` right after it is written.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        f: &BlockedFilters,
        g: &ConvGeometry,
        y: &mut [f32],
        accumulate: bool,
        then: Then<'_, f32>,
    ) {
        let (out, inputs, taps, block) = (g.out_channels, g.in_channels, g.kernel[0] * g.kernel[1], self.block());
        let group = self.group(inputs);
        assert!(
            g.groups == 1 && f.dims == (out, inputs, taps) && f.block == block && f.group == group,
            "conv2d blocked kernel: weights packed for another convolution"
        );
        let ([h, w], [ph, pw], [_, ow], [sh, sw], [dh, dw]) = (g.input, g.padding, g.output, g.stride, g.dilation);
        if y.is_empty() {
            return;
        }
        if inputs * h * w == 0 {
            // no input: the sums are zero
            for (r, row) in y.chunks_exact_mut(g.output_pixels()).enumerate() {
                if !accumulate {
                    row.fill(0.0);
                }
                if let Some(then) = then {
                    then(r % out, row);
                }
            }
            return;
        }
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let plane = hp * wp;
        let op = g.output_pixels();
        let (threads, blocks) = (crate::par::threads(), out.div_ceil(block));
        // How the work is split into tasks (at most one task writes any part of `y`):
        // - In the AVX2 build with 4 images a thread or more, a task per image, which pads its
        //   image into a buffer of its own (in the core's L2 cache, where padding every image
        //   first left them in memory) and takes its tiles in turn, every block of output
        //   channels for each tile, so that the tile's input stays in cache across the blocks.
        //   ResNet-18 at batch 32 in a graph runtime on a 2-core AMD EPYC (Zen 3), 20 runs
        //   alternating with the paths this kernel did not take before (the row kernel, the
        //   unfold + gemm): 1085 against 1124 ms, every 3x3 layer faster (56x56 64-70 against
        //   70-72 ms, 14x14 64-66 against 71) but the stem, even. Block-major tasks (below) were
        //   20-60 % slower than those paths on the 56x56 and 28x28 layers.
        //   Small planes are stacked: a task takes `stack` images, padded one above the other
        //   into one taller plane, so that register blocks run across them (a 7x7 plane alone
        //   is 9 blocks of 6 slots for 49 positions, 4 of them 33 blocks for 196, not 36) and a
        //   chunk's weights are read once for them all (512 channels of 3x3 are 9 MB, from
        //   memory). ResNet-18 at batch 32, alternating in one process: its 7x7 layers at
        //   stride 1 ran 70 ms against 83-91 unstacked, the model 1157 against 1210 ms; the
        //   digits CNN's 4x4 layer 0.220 against 0.229 ms.
        // - Otherwise, with few (image, block) pairs, each image's plane is split into tiles
        //   that are tasks of their own, a task per (block, image, tile), at least 4 tasks a
        //   thread: this machine's cores drift apart in speed, and with a task per block (4 at
        //   batch 1 for 64 channels) the faster core sat idle at the end of each layer.
        //   ResNet-18 at batch 1, alternating runs in one process: 8-16 % faster in all, the
        //   56x56 layers 2.7 -> 2.0 ms in one round.
        // - Otherwise a task is one block over a group of images, block-major, so that a block's
        //   weights stay in the core's L2 cache across the images (with an image a task and its
        //   blocks in turn, 512 channels of 7x7 planes at batch 32 streamed their 9 MB of weights
        //   from memory for every image, and ran 10 % slower than gemm; measured before the AVX2
        //   block was in assembly, and kept for the AVX-512 build, not measured since).
        let per_image = self.simd == Simd::Avx2 && g.batch >= 4 * threads;
        // (as many images as fill a tile, leaving 4 tasks a thread)
        let stack = match per_image {
            true => (TILE / op).min(g.batch / (4 * threads)).max(1),
            false => 1,
        };
        // the AVX2 build's input is interleaved, in one group when there are fewer channels than
        // GROUP
        let asm = self.assembly();
        let groups = inputs.div_ceil(group);
        let tap_offsets: Vec<usize> = (0..taps).map(|t| (t / g.kernel[1]) * dh * wp + (t % g.kernel[1]) * dw).collect();
        // a task's positions, over its `stack` images one above the other
        let span = stack * op;
        let at = Offsets {
            plane: stack * plane,
            inputs,
            #[cfg(target_arch = "x86_64")]
            table: asm.then(|| conv_asm::TapTable::interleaved(stack * plane, &tap_offsets, group)),
            group,
            taps: tap_offsets,
            positions: (0..span).map(|q| (q / op) * plane + (q % op / ow) * sh * wp + (q % ow) * sw).collect(),
        };
        let per_block = inputs.next_multiple_of(group) * taps * block;
        let split = !per_image && g.batch * blocks < 8 * threads;
        let tiles = match split {
            // (tiles of 4 register blocks at least)
            true => op.div_ceil(TILE).max(4 * threads / (g.batch * blocks)).min(op.div_ceil(4 * POSITIONS)),
            false => span.div_ceil(TILE),
        };
        let tile_len = span.div_ceil(tiles);
        let tiles = span.div_ceil(tile_len);
        let tile_at = |t: usize| t * tile_len..((t + 1) * tile_len).min(span);
        let padded = groups * group * plane;
        let y_len = y.len();
        let dst = SharedOut(y.as_mut_ptr());
        // The sums of block `b` of the `tile` of the task's images from `n` (their padded
        // input `xp`) into the output.
        let one = |xp: &[f32], n: usize, b: usize, tile: Range<usize>, sums: &mut [f32]| {
            let weights = &f.data[f.start + b * per_block..f.start + (b + 1) * per_block];
            let sums = &mut sums[..tile.len() * block];
            self.tile(xp, &at, weights, tile.clone(), sums);
            // each image's part of the tile, its sums to its channels' rows 8 channels at a time
            let rows = block.min(out - b * block);
            for image in tile.start / op..tile.end.div_ceil(op) {
                let part = tile.start.max(image * op)..tile.end.min((image + 1) * op);
                let sums = &sums[(part.start - tile.start) * block..];
                for r0 in (0..rows).step_by(8) {
                    let k = 8.min(rows - r0);
                    let start = |r: usize| ((n + image) * out + b * block + r0 + r) * op + part.start - image * op;
                    assert!(start(k - 1) + part.len() <= y_len, "conv2d blocked kernel: output does not fit {g:?}");
                    let mut segs: [&mut [f32]; 8] = core::array::from_fn(|r| match r < k {
                        // SAFETY: inside `y` (checked above for the last of the rows, the others
                        // are before it), which is borrowed mutably until every task has ended;
                        // each (image, output channel, position) is written by one task only,
                        // and nothing else refers to it while the slice lives.
                        true => unsafe { core::slice::from_raw_parts_mut(dst.at(start(r)), part.len()) },
                        false => &mut [],
                    });
                    sums_to_rows(sums, block, r0, &mut segs[..k], accumulate);
                    if let Some(then) = then {
                        for (r, seg) in segs[..k].iter_mut().enumerate() {
                            then(b * block + r0 + r, seg);
                        }
                    }
                }
            }
        };
        // Image `n`'s groups of planes padded into `xp` (a group of 1 is a plane), each group
        // `stride` floats from the last; `parallel`: in tasks of 64 KiB at least.
        let pad = |n: usize, xp: &mut [f32], stride: usize, parallel: bool| {
            const MIN_TASK: usize = 1 << 14;
            let x = &x[n * inputs * h * w..(n + 1) * inputs * h * w];
            let group_len = group * h * w;
            let one = |(k, xp): (usize, &mut [f32])| {
                let src = &x[k * group_len..((k + 1) * group_len).min(x.len())];
                pad_interleaved(src, &mut xp[..group * plane], group, g.input, g.padding)
            };
            match parallel {
                true => {
                    let groups_in = xp.par_chunks_mut(stride).enumerate();
                    groups_in.with_min_len(MIN_TASK.div_ceil(group * plane)).for_each(one)
                }
                false => xp.chunks_mut(stride).enumerate().for_each(one),
            }
        };
        if per_image {
            return (0..g.batch.div_ceil(stack)).into_par_iter().with_max_len(HEAVY_TASKS).for_each(|task| {
                let images = task * stack..((task + 1) * stack).min(g.batch);
                f32::with_scratch(stack * padded + tile_len * block, |scratch| {
                    let (xp, sums) = scratch.split_at_mut(stack * padded);
                    for (i, n) in images.clone().enumerate() {
                        pad(n, &mut xp[i * group * plane..], stack * group * plane, false);
                    }
                    let span = images.len() * op;
                    for tile in (0..tiles).map(tile_at).filter(|t| t.start < span) {
                        let tile = tile.start..tile.end.min(span);
                        (0..blocks).for_each(|b| one(xp, images.start, b, tile.clone(), sums));
                    }
                })
            });
        }
        let (image_parts, tile_parts) =
            if split { (g.batch, tiles) } else { ((2 * threads).div_ceil(blocks).min(g.batch), 1) };
        let per_part = g.batch.div_ceil(image_parts);
        let image_parts = g.batch.div_ceil(per_part);
        // Task `t`: block `b`, images `part * per_part..`, tiles `tile_part` (all when not split).
        let task = |xp: &[f32], t: usize, sums: &mut [f32]| {
            let (b, part, tile_part) = (t / (image_parts * tile_parts), t / tile_parts % image_parts, t % tile_parts);
            let tile_range = if split { tile_part..tile_part + 1 } else { 0..tiles };
            for n in part * per_part..((part + 1) * per_part).min(g.batch) {
                let xp = &xp[n * padded..(n + 1) * padded];
                tile_range.clone().for_each(|t| one(xp, n, b, tile_at(t), sums));
            }
        };
        f32::with_scratch(g.batch * padded, |xp| {
            // every image padded first, in parallel (a single image's planes too)
            xp.par_chunks_mut(padded).enumerate().for_each(|(n, xp)| pad(n, xp, group * plane, true));
            let xp = &*xp;
            (0..blocks * image_parts * tile_parts)
                .into_par_iter()
                .with_max_len(HEAVY_TASKS)
                .for_each(|t| f32::with_scratch(tile_len * block, |sums| task(xp, t, sums)));
        });
    }

    /// The sums of `tile`'s output positions for one block of output channels (`weights`),
    /// into `sums` (`[positions, block]`).
    fn tile(&self, xp: &[f32], at: &Offsets, weights: &[f32], tile: Range<usize>, sums: &mut [f32]) {
        match self.simd {
            // SAFETY: `self.simd` came from `Simd::detect` (or is below it, in tests), so the
            // CPU has the features these builds are compiled for.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { tile_avx512(xp, at, weights, tile, sums) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { tile_avx2(xp, at, weights, tile, sums) },
            _ => tile_blocks::<_, 4, false>(Scalar, xp, at, weights, tile, sums),
        }
    }
}

/// Where the kernel reads: an input channel's padded plane is `plane` elements long; tap `t`
/// of output position `q` is at `positions[q] + taps[t]` in it.
struct Offsets {
    plane: usize,
    inputs: usize,
    taps: Vec<usize>,
    positions: Vec<usize>,
    /// Channels a group of the padded input, interleaved (`[groups, pixels, group]`, the AVX2
    /// build's assembly blocks; `plane` and `positions` count pixels); 1 for planes.
    group: usize,
    /// The taps for the AVX2 build's assembly blocks (`conv_asm.rs`), built once per call.
    #[cfg(target_arch = "x86_64")]
    table: Option<conv_asm::TapTable>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn tile_avx512(xp: &[f32], at: &Offsets, weights: &[f32], tile: Range<usize>, sums: &mut [f32]) {
    tile_blocks::<_, 4, false>(Avx512(()), xp, at, weights, tile, sums)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2(xp: &[f32], at: &Offsets, weights: &[f32], tile: Range<usize>, sums: &mut [f32]) {
    tile_blocks::<_, 2, true>(Avx2(()), xp, at, weights, tile, sums)
}

/// A chunk of input channels at a time (see [`WEIGHTS_IN_L1`] and [`ASM_CHUNK_WEIGHTS`]),
/// every register block of the tile: the first chunk stores its sums, the others add to them.
/// `ASM`: the blocks are `conv_asm.rs`'s (the AVX2 build, 2 vectors of 8 channels, only).
#[inline(always)]
fn tile_blocks<S: F32Simd, const V: usize, const ASM: bool>(
    s: S,
    xp: &[f32],
    at: &Offsets,
    weights: &[f32],
    tile: Range<usize>,
    sums: &mut [f32],
) {
    let (taps, block) = (at.taps.len(), V * S::LANES);
    let per_channel = taps * block;
    // equal chunks (64 channels as 32 + 32, not 56 + 8), of whole groups when interleaved
    #[cfg(target_arch = "x86_64")]
    let table = at.table.as_ref().filter(|_| ASM);
    #[cfg(target_arch = "x86_64")]
    assert!(
        table.is_none() || (S::LANES == 8 && V == 2),
        "conv2d blocked kernel: the assembly block is 2 vectors of 8"
    );
    #[cfg(target_arch = "x86_64")]
    let asm = table.is_some();
    #[cfg(not(target_arch = "x86_64"))]
    let asm = false;
    // the compiled blocks read planes
    assert!(asm || at.group == 1, "conv2d blocked kernel: interleaved input for a compiled block");
    let chunk_weights = if asm { ASM_CHUNK_WEIGHTS } else { WEIGHTS_IN_L1 };
    let chunk = at.inputs.div_ceil(at.inputs.div_ceil((chunk_weights / per_channel).max(1)));
    let lanes = at.group;
    let chunk = chunk.next_multiple_of(lanes);
    for c0 in (0..at.inputs).step_by(chunk) {
        let channels = c0..(c0 + chunk).min(at.inputs);
        let x = &xp[channels.start * at.plane..channels.end.next_multiple_of(lanes) * at.plane];
        // (whole groups of weights: zero past the last channel)
        let w = &weights[channels.start * per_channel..channels.end.next_multiple_of(lanes) * per_channel];
        // register blocks of equal sizes (49 positions as 4 x 6 + 5 x 5, not 8 x 6 + 1: a
        // block of 1 loads as many weights as a block of 6)
        let len = tile.len();
        let blocks = len.div_ceil(POSITIONS);
        // The next chunk's weights are asked for, a share per register block, while this
        // chunk's are summed: they come from memory when the weights outgrow the caches, and
        // the hardware prefetcher stops at each 4 KiB page (measured: 3 % on ResNet-18 at batch
        // 1, 5-10 % on its 7x7 and 14x14 layers).
        let next = weights.get(channels.end.next_multiple_of(lanes) * per_channel..).unwrap_or(&[]);
        let next = &next[..next.len().min(chunk * per_channel)];
        let share = next.len().div_ceil(blocks).next_multiple_of(16);
        let mut q = tile.start;
        for i in 0..blocks {
            for line in next.iter().skip(i * share).take(share).step_by(16) {
                prefetch::<false>(line);
            }
            let n = len / blocks + usize::from(i < len % blocks);
            let base = at.positions[q];
            // the block's positions from its first (a short last block repeats its last one)
            let pos: [usize; POSITIONS] = core::array::from_fn(|i| (at.positions[q + i.min(n - 1)] - base) * lanes);
            let base = base * lanes;
            let sums = &mut sums[(q - tile.start) * block..(q - tile.start + n) * block];
            // every read of the block is inside `x`: the kernel reads without bounds checks
            let last = pos[n - 1] / lanes + at.taps.iter().max().copied().unwrap_or(0);
            let reach = ((channels.len().div_ceil(lanes) - 1) * at.plane + last) * lanes + lanes - 1;
            let x = &x[base..];
            assert!(reach < x.len(), "conv2d blocked kernel: a read past the input");
            let first = c0 == 0;
            #[cfg(target_arch = "x86_64")]
            if let Some(table) = table {
                // the AVX2 build sums in assembly (`conv_asm.rs`)
                // SAFETY: the AVX2 build (`ASM`) runs on AVX2 + FMA CPUs only.
                unsafe { conv_asm::channel_block(sums, first, x, &pos, table, w, channels.len()) };
                q += n;
                continue;
            }
            match (n, taps) {
                (6, 9) => block_sums::<S, V, 6, 9>(s, x, &pos, at, w, sums, first),
                (6, _) => block_sums::<S, V, 6, 0>(s, x, &pos, at, w, sums, first),
                (5, 9) => block_sums::<S, V, 5, 9>(s, x, &pos, at, w, sums, first),
                (5, _) => block_sums::<S, V, 5, 0>(s, x, &pos, at, w, sums, first),
                (4, _) => block_sums::<S, V, 4, 0>(s, x, &pos, at, w, sums, first),
                (3, _) => block_sums::<S, V, 3, 0>(s, x, &pos, at, w, sums, first),
                (2, _) => block_sums::<S, V, 2, 0>(s, x, &pos, at, w, sums, first),
                (_, _) => block_sums::<S, V, 1, 0>(s, x, &pos, at, w, sums, first),
            }
            q += n;
        }
    }
}

/// One register block: `V` vectors of output channels by `P` positions (`pos`, from `x`'s
/// start), summed over `w`'s input channels and taps, stored to `sums` (`[P, block]`) or,
/// unless `first`, added to it. `T` is the tap count when known at build time (0 otherwise).
/// The caller checks that every read (the last channel's, at the last position's last tap) is
/// inside `x`; the reads here are not checked again (with a check per broadcast, a block ran
/// ~10 % slower).
#[inline(always)]
fn block_sums<S: F32Simd, const V: usize, const P: usize, const T: usize>(
    s: S,
    x: &[f32],
    pos: &[usize; POSITIONS],
    at: &Offsets,
    w: &[f32],
    sums: &mut [f32],
    first: bool,
) {
    let (lanes, block) = (S::LANES, V * S::LANES);
    let taps = if T > 0 { &at.taps[..T] } else { &at.taps[..] };
    {
        let pos: [usize; P] = core::array::from_fn(|p| pos[p]);
        let sums = &mut sums[..P * block];
        let mut acc = [[s.splat(0.0); V]; P];
        if !first {
            for (p, acc) in acc.iter_mut().enumerate() {
                *acc = core::array::from_fn(|v| s.load(&sums[p * block + v * lanes..]));
            }
        }
        for (c, w) in w.chunks_exact(taps.len() * block).enumerate() {
            for (&off, w) in taps.iter().zip(w.chunks_exact(block)) {
                let wv: [S::V; V] = core::array::from_fn(|v| s.load(&w[v * lanes..]));
                for (p, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `c * plane + off + pos[p]` is at most the caller's checked reach:
                    // `c` is below the chunk's channel count (`w` holds their weights), `off` one
                    // of the taps and `pos[p]` at most the last position.
                    let xv = s.splat(unsafe { *x.get_unchecked(c * at.plane + off + pos[p]) });
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = s.mul_add(wv, xv, *acc);
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                s.store(&mut sums[p * block + v * lanes..], acc);
            }
        }
    }
}

/// Channels `r0..r0 + rows.len()` (at most 8) of a tile's sums (`[positions, block]`) into
/// their rows of the output (`rows`, a position each), or added to them. With AVX2, 8 channels
/// of 8 positions are transposed in registers (column by column, as scalars, this copy was 13 %
/// of ResNet-18's stem convolution and 2 % of the model at batch 1).
fn sums_to_rows(sums: &[f32], block: usize, r0: usize, rows: &mut [&mut [f32]], accumulate: bool) {
    assert!(rows.len() <= 8 && r0 + rows.len() <= block, "conv2d blocked kernel: rows past the block");
    let positions = rows.first().map_or(0, |r| r.len());
    assert!(
        sums.len() >= positions * block && rows.iter().all(|r| r.len() == positions),
        "conv2d blocked kernel: sums and rows of different lengths"
    );
    #[cfg(target_arch = "x86_64")]
    let done = match rows.len() == 8 && Simd::detect() != Simd::Baseline {
        // SAFETY: the CPU has AVX2 (`Simd::detect`).
        true => unsafe { sums_to_rows_avx2(sums, block, r0, rows, accumulate) },
        false => 0,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (r, row) in rows.iter_mut().enumerate() {
        let from = sums[done * block..].iter().skip(r0 + r).step_by(block);
        match accumulate {
            true => row[done..].iter_mut().zip(from).for_each(|(d, &v)| *d += v),
            false => row[done..].iter_mut().zip(from).for_each(|(d, &v)| *d = v),
        }
    }
}

/// [`sums_to_rows`] for 8 rows and whole groups of 8 positions, by 8x8 transposes; returns
/// the positions done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sums_to_rows_avx2(sums: &[f32], block: usize, r0: usize, rows: &mut [&mut [f32]], accumulate: bool) -> usize {
    use core::arch::x86_64::*;
    let s = Avx2(());
    let whole = rows.first().map_or(0, |r| r.len()) / 8 * 8;
    for p in (0..whole).step_by(8) {
        // position `p + i`'s 8 channels, then pairs, quads and halves of them interleaved
        let v: [__m256; 8] = core::array::from_fn(|i| s.load(&sums[(p + i) * block + r0..]));
        let lo = |a: usize, b: usize| _mm256_unpacklo_ps(v[a], v[b]);
        let hi = |a: usize, b: usize| _mm256_unpackhi_ps(v[a], v[b]);
        let t = [lo(0, 1), hi(0, 1), lo(2, 3), hi(2, 3), lo(4, 5), hi(4, 5), lo(6, 7), hi(6, 7)];
        let u = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xee>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xee>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xee>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xee>(t[5], t[7]),
        ];
        // channel `r`'s 8 positions
        let channel = |r: usize| match r < 4 {
            true => _mm256_permute2f128_ps::<0x20>(u[r], u[r + 4]),
            false => _mm256_permute2f128_ps::<0x31>(u[r - 4], u[r]),
        };
        for (r, row) in rows.iter_mut().enumerate() {
            let dst = &mut row[p..p + 8];
            let c = channel(r);
            let c = if accumulate { s.add(s.load(dst), c) } else { c };
            s.store(dst, c);
        }
    }
    whole
}

/// Up to `group` input planes (`x`, `[channels, h, w]`) padded into one group of interleaved
/// planes (`dst`, `[padded pixels, group]`), zero in the padding and in the channels past the
/// last. A pixel's channels are gathered and stored together (zeroing the group first and
/// writing it a channel at a time was 3 % of ResNet-18 at batch 1; this is 1.5 %).
fn pad_interleaved(x: &[f32], dst: &mut [f32], group: usize, input: [usize; 2], padding: [usize; 2]) {
    match group {
        GROUP => pad_group::<GROUP>(x, dst, input, padding),
        7 => pad_group::<7>(x, dst, input, padding),
        6 => pad_group::<6>(x, dst, input, padding),
        5 => pad_group::<5>(x, dst, input, padding),
        4 => pad_group::<4>(x, dst, input, padding),
        3 => pad_group::<3>(x, dst, input, padding),
        2 => pad_group::<2>(x, dst, input, padding),
        _ => {
            assert!(group == 1, "conv2d blocked kernel: groups of 1 to {GROUP} channels");
            pad_plane(x, dst, input, padding)
        }
    }
}

/// [`pad_interleaved`] for groups of `G` channels.
fn pad_group<const G: usize>(x: &[f32], dst: &mut [f32], [h, w]: [usize; 2], [ph, pw]: [usize; 2]) {
    let wp = w + 2 * pw;
    let plane = h * w;
    let channels = x.len() / plane;
    dst[..ph * wp * G].fill(0.0);
    dst[(ph + h) * wp * G..].fill(0.0);
    for r in 0..h {
        let line = &mut dst[(ph + r) * wp * G..(ph + r + 1) * wp * G];
        line[..pw * G].fill(0.0);
        line[(pw + w) * G..].fill(0.0);
        let rows: [&[f32]; G] = core::array::from_fn(|c| match c < channels {
            true => &x[c * plane + r * w..c * plane + (r + 1) * w],
            false => &[],
        });
        let pixels = line[pw * G..(pw + w) * G].chunks_exact_mut(G).enumerate();
        if channels == G {
            for (k, pixel) in pixels {
                pixel.copy_from_slice(&core::array::from_fn::<f32, G, _>(|c| rows[c][k]));
            }
        } else {
            for (k, pixel) in pixels {
                pixel.copy_from_slice(&core::array::from_fn::<f32, G, _>(|c| rows[c].get(k).copied().unwrap_or(0.0)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition (integer values: every sum is exact in f32).
    fn definition(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
        let mut y = vec![0.0; g.batch * g.out_channels * g.output_pixels()];
        for (i, y) in y.iter_mut().enumerate() {
            let (n, o, q) = (
                i / (g.out_channels * g.output_pixels()),
                (i / g.output_pixels()) % g.out_channels,
                i % g.output_pixels(),
            );
            let (oi, oj) = (q / g.output[1], q % g.output[1]);
            for c in 0..g.in_channels {
                for ki in 0..g.kernel[0] {
                    for kj in 0..g.kernel[1] {
                        let ii = (oi * g.stride[0] + ki * g.dilation[0]).checked_sub(g.padding[0]);
                        let ij = (oj * g.stride[1] + kj * g.dilation[1]).checked_sub(g.padding[1]);
                        let (Some(ii), Some(ij)) = (ii, ij) else { continue };
                        if ii < g.input[0] && ij < g.input[1] {
                            let xv = x[((n * g.in_channels + c) * g.input[0] + ii) * g.input[1] + ij];
                            *y += xv * w[((o * g.in_channels + c) * g.kernel[0] + ki) * g.kernel[1] + kj];
                        }
                    }
                }
            }
        }
        y
    }

    /// Every build this CPU runs against the definition: stride, padding, dilation, a kernel
    /// of 6 taps (no unrolled loop), a partial block of output channels, input channels in
    /// several chunks (and in partial groups, interleaved), planes of several tiles, register blocks of unequal sizes, tasks of a
    /// tile each and of whole images (split by image and by block); then `accumulate` and the
    /// epilogue.
    #[test]
    fn matches_the_definition() {
        let builds =
            [Simd::Baseline, Simd::Avx2, Simd::Avx512].into_iter().filter(|&s| s as u8 <= Simd::detect() as u8);
        for k in builds.filter_map(BlockedConv::with) {
            let block = k.block();
            let cases = [
                (1, 37, block, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1]),
                (3, 16, block + 3, [9, 8], [3, 3], [2, 2], [1, 1], [1, 1]),
                (2, 20, 2 * block, [17, 17], [3, 3], [1, 1], [1, 1], [1, 1]),
                (1, 18, block, [8, 8], [1, 1], [2, 2], [0, 0], [1, 1]),
                (2, 17, block - 1, [9, 10], [2, 3], [1, 2], [2, 1], [2, 1]),
                // two chunks of input channels, the last group of the second partial
                (1, 75, block, [6, 5], [3, 3], [1, 1], [1, 1], [1, 1]),
                // fewer channels than a group: one group of 3 (a stem), and planes
                (1, 3, block, [13, 12], [7, 7], [2, 2], [3, 3], [1, 1]),
                (2, 1, block, [9, 7], [3, 3], [1, 1], [1, 1], [1, 1]),
                // enough images that each is a task (AVX2), or enough (image, block) pairs that
                // tiles are not tasks of their own
                (8 * crate::par::threads(), 16, 2 * block, [5, 6], [3, 3], [1, 1], [1, 1], [1, 1]),
                (4 * crate::par::threads(), 3, block, [11, 10], [7, 7], [2, 2], [3, 3], [1, 1]),
                // small planes stacked (AVX2): 3 images of 5x5 outputs a task, the last task's 1
                (12 * crate::par::threads() + 1, 10, block, [9, 9], [3, 3], [2, 2], [1, 1], [1, 1]),
            ];
            // (Miri, slower by a few thousand times, runs the last case: a stride, padding and
            // dilation, 6 taps, a partial block of output channels and two images)
            for (i, (batch, inputs, out, input, kernel, stride, padding, dilation)) in cases.into_iter().enumerate() {
                if cfg!(miri) && i != 4 {
                    continue;
                }
                let g = ConvGeometry::new(batch, inputs, out, 1, input, kernel, stride, padding, dilation).unwrap();
                let x: Vec<f32> = (0..batch * inputs * g.input_pixels()).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
                let w: Vec<f32> = (0..out * g.patch_len()).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
                let want = definition(&x, &w, &g);
                let packed = k.pack(&w, &g);
                let mut y = vec![f32::NAN; want.len()];
                k.forward(&x, &packed, &g, &mut y, false, None);
                assert_eq!(y, want, "{:?} {g:?}", k.simd);
                let then = |c: usize, seg: &mut [f32]| seg.iter_mut().for_each(|v| *v -= c as f32);
                k.forward(&x, &packed, &g, &mut y, true, Some(&then));
                for (i, (&y, &v)) in y.iter().zip(&want).enumerate() {
                    let c = (i / g.output_pixels()) % out;
                    assert_eq!(y, 2.0 * v - c as f32, "{:?} {g:?} at {i}", k.simd);
                }
            }
        }
    }

    /// A tile's sums go to their rows whole, from any first channel, for 8 rows (transposed in
    /// registers with AVX2, which Miri runs in its AVX2 pass) and fewer, stored or added.
    #[test]
    fn sums_to_rows_transposes_a_tile() {
        let (positions, block) = (19, 24);
        let sums: Vec<f32> = (0..positions * block).map(|i| i as f32).collect();
        for (r0, k, accumulate) in [(0, 8, false), (8, 8, true), (16, 8, false), (3, 5, true)] {
            let mut rows: Vec<Vec<f32>> = (0..k).map(|r| vec![r as f32 * 0.5; positions]).collect();
            let mut segs: Vec<&mut [f32]> = rows.iter_mut().map(|r| &mut r[..]).collect();
            sums_to_rows(&sums, block, r0, &mut segs, accumulate);
            for (r, row) in rows.iter().enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    let want = sums[p * block + r0 + r] + if accumulate { r as f32 * 0.5 } else { 0.0 };
                    assert_eq!(v, want, "row {} position {p}", r0 + r);
                }
            }
        }
    }

    /// A runtime's packed weights give what the other paths give without them.
    #[test]
    fn packed_once_matches_the_forward() {
        let Some(k) = BlockedConv::detect() else { return };
        let batch = 1;
        let g = ConvGeometry::new(batch, 16, 64 * crate::par::threads(), 1, [28, 28], [3, 3], [2, 2], [1, 1], [1, 1])
            .unwrap();
        assert_eq!(k.worthwhile(&g, false), crate::par::threads() > 1);
        if !k.worthwhile(&g, false) {
            return;
        }
        let x: Vec<f32> = (0..batch * 16 * 28 * 28).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let w: Vec<f32> = (0..g.out_channels * 16 * 9).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let packed = super::super::conv::blocked_filters(&w, &g).expect("worthwhile");
        let (mut a, mut b) = (vec![0.0; g.out_channels * 196], vec![0.0; g.out_channels * 196]);
        super::super::conv::conv2d_forward(&x, &w, &g, &mut a, false, None, Some(&packed));
        super::super::conv::conv2d_forward(&x, &w, &g, &mut b, false, None, None);
        assert_eq!(a, b);
        assert_eq!(a, definition(&x, &w, &g));
    }

    /// With an image per thread the weights are packed where the unfold would be tiled (256
    /// channels of 14x14), and in the AVX2 build wherever the kernel applies (16 channels of
    /// 28x28 too; elsewhere those keep the row kernel), and give what the unfold gives.
    #[test]
    fn packed_at_a_batch_per_thread_for_tiled_unfolds_and_avx2() {
        let Some(k) = BlockedConv::detect() else { return };
        let batch = crate::par::threads();
        let small = ConvGeometry::new(batch, 16, 64, 1, [28, 28], [3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let w: Vec<f32> = (0..64 * 16 * 9).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let packed = super::super::conv::blocked_filters(&w, &small);
        assert_eq!(packed.is_some(), k.simd == Simd::Avx2);
        let g = ConvGeometry::new(batch, 256, 64, 1, [14, 14], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let x: Vec<f32> = (0..batch * 256 * 196).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let w: Vec<f32> = (0..64 * 256 * 9).map(|i| ((i * 5) % 7) as f32 - 3.0).collect();
        let packed = super::super::conv::blocked_filters(&w, &g).expect("a tiled unfold");
        let (mut a, mut b) = (vec![0.0; batch * 64 * 196], vec![0.0; batch * 64 * 196]);
        super::super::conv::conv2d_forward(&x, &w, &g, &mut a, false, None, Some(&packed));
        super::super::conv::conv2d_forward(&x, &w, &g, &mut b, false, None, None);
        assert_eq!(a, definition(&x, &w, &g));
        assert_eq!(a, b);
    }
}
