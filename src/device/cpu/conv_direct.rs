//! The direct f32 convolution kernel: no unfold and no gemm packing.
//!
//! It works on the "shifted" layout of `conv.rs` (`Shifted`): an image's input planes padded,
//! each `plane` elements apart, and an output grid as wide as a padded row, where output
//! position `q` reads tap `t` of every input channel at `q + offsets[t]`. A block of `R` output
//! channels by `C` vectors of consecutive positions is summed in registers over every input
//! channel and tap (one vector load of input per tap and vector, one broadcast weight per
//! channel, `R x C` fused multiply-adds) and stored once. Through gemm the same convolution is
//! one product per tap, each with the input channels as its short inner dimension, each
//! repacking its operands and reading and writing the whole output block again: ResNet-18's
//! 64->64 3x3 convolution of 56x56 images ran at ~220 GF/s that way on this 2-core machine,
//! where onnxruntime's blocked direct kernel runs at ~285.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports, unused_labels, unused_variables))]

#[cfg(target_arch = "x86_64")]
use super::conv_asm;
use super::fast_math::Simd;
#[cfg(target_arch = "x86_64")]
use super::vector::{Avx2, Avx512};
use super::vector::{F32Simd, prefetch};
use crate::compat::prelude::*;
use crate::par::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::__m256;

/// A direct convolution kernel for this CPU's widest vector build.
#[derive(Clone, Copy, Debug)]
pub(super) struct DirectConv {
    simd: Simd,
    /// Output channels per register block.
    rows: usize,
    /// Output positions per register block.
    cols: usize,
}

impl DirectConv {
    /// The kernel of this CPU, `None` where there is no vector build (the caller takes gemm).
    pub(super) fn detect() -> Option<Self> {
        Self::with(Simd::detect())
    }

    /// The kernel of build `simd` (no higher than [`Simd::detect`]'s).
    fn with(simd: Simd) -> Option<Self> {
        match simd {
            // 8 x 3 accumulators of 32 registers, 3 input vectors and a broadcast weight
            Simd::Avx512 => Some(Self { simd, rows: 8, cols: 3 * 16 }),
            // 4 x 3 of 16
            Simd::Avx2 => Some(Self { simd, rows: 4, cols: 3 * 8 }),
            Simd::Baseline => None,
        }
    }

    /// `out_channels` rounded up to whole register blocks: the rows [`DirectConv::run`] writes.
    pub(super) fn padded_channels(&self, out_channels: usize) -> usize {
        out_channels.next_multiple_of(self.rows)
    }

    /// `positions` rounded up to whole register blocks: the columns [`DirectConv::run`] writes.
    pub(super) fn padded_positions(&self, positions: usize) -> usize {
        positions.next_multiple_of(self.cols)
    }

    /// Weights `[out, in, taps]` in the order the kernel reads them: `[out blocks, in, taps,
    /// rows]`, zero in the rows past `out`.
    pub(super) fn pack(&self, w: &[f32], out: usize, inputs: usize, taps: usize) -> Vec<f32> {
        assert_eq!(w.len(), out * inputs * taps, "conv2d kernel: weights do not fit");
        let (r, per_filter) = (self.rows, inputs * taps);
        let mut packed = vec![0.0; self.padded_channels(out) * per_filter];
        // a block at a time (a task each when there are many weights: at batch 1, packing 256
        // channels of 3x3 filters on one thread took a third of the convolution)
        // 16 weights of each filter at a time, so that the writes stay in a few cache lines
        // (filter by filter, every other write lands in a new line)
        const TILE: usize = 16;
        let block = |(b, block): (usize, &mut [f32])| {
            let filters: Vec<&[f32]> = w.chunks_exact(per_filter).skip(b * r).take(r).collect();
            for (t, dst) in block.chunks_mut(TILE * r).enumerate() {
                for (k, filter) in filters.iter().enumerate() {
                    let src = &filter[t * TILE..(t * TILE + TILE).min(per_filter)];
                    for (i, &v) in src.iter().enumerate() {
                        dst[i * r + k] = v;
                    }
                }
            }
        };
        if packed.len() >= 1 << 16 {
            packed.par_chunks_mut(r * per_filter).enumerate().for_each(block);
        } else {
            packed.chunks_mut(r * per_filter).enumerate().for_each(block);
        }
        packed
    }

    /// `out[o, q] = Σ_c Σ_t packed[o, c, t] * x[c * plane + q + offsets[t]]` for every row `o`
    /// below [`DirectConv::padded_channels`] and every `q` below `positions`, a multiple of the
    /// block width ([`DirectConv::padded_positions`]) and the length of `out`'s rows; with
    /// `parallel`, a task per block of rows. Panics unless `x` holds `inputs` planes and every
    /// read stays inside its plane.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        x: &[f32],
        plane: usize,
        inputs: usize,
        offsets: &[usize],
        packed: &[f32],
        out: &mut [f32],
        positions: usize,
        parallel: bool,
    ) {
        let per_block = inputs * offsets.len() * self.rows;
        let reach = offsets.iter().max().map_or(0, |m| m + positions);
        assert!(
            positions.is_multiple_of(self.cols)
                && packed.len().is_multiple_of(per_block.max(1))
                && reach <= plane
                && x.len() >= inputs * plane
                && out.len() == packed.len() / per_block.max(1) * self.rows * positions,
            "conv2d direct kernel: buffers do not fit"
        );
        if per_block == 0 || positions == 0 {
            return out.fill(0.0);
        }
        // (Miri runs no assembly: there the AVX2 build's blocks are compiled from Rust)
        #[cfg(target_arch = "x86_64")]
        let table = (self.simd == Simd::Avx2 && !cfg!(miri)).then(|| conv_asm::TapTable::new(plane, offsets));
        let a = Args {
            x,
            plane,
            inputs,
            offsets,
            packed,
            positions,
            #[cfg(target_arch = "x86_64")]
            table: table.as_ref(),
        };
        if parallel {
            let blocks = out.par_chunks_mut(self.rows * positions).zip(packed.par_chunks(per_block));
            blocks.with_max_len(HEAVY_TASKS).for_each(|(out, packed)| self.run_serial(&Args { packed, ..a }, out));
        } else {
            self.run_serial(&a, out);
        }
    }

    /// [`DirectConv::run`] on this thread.
    fn run_serial(&self, a: &Args<'_>, out: &mut [f32]) {
        match self.simd {
            // SAFETY: `self.simd` came from `Simd::detect` (or is below it, in tests), so the
            // CPU has the features these builds are compiled for.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { run_avx512(a, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { run_avx2(a, out) },
            _ => unreachable!("no direct kernel without a vector build"),
        }
    }
}

/// The operands of [`DirectConv::run`].
#[derive(Clone, Copy)]
struct Args<'a> {
    x: &'a [f32],
    plane: usize,
    inputs: usize,
    offsets: &'a [usize],
    packed: &'a [f32],
    /// Output positions, also the length of an output row.
    positions: usize,
    /// The taps for the AVX2 build's assembly blocks (`conv_asm.rs`), built once per call.
    #[cfg(target_arch = "x86_64")]
    table: Option<&'a conv_asm::TapTable>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn run_avx512(a: &Args<'_>, out: &mut [f32]) {
    blocks::<_, 8, 3, false>(Avx512(()), a, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2(a: &Args<'_>, out: &mut [f32]) {
    blocks::<_, 4, 3, true>(Avx2(()), a, out)
}

/// The packed weights of a block's input channels, at most this many floats (16 KiB), are
/// summed over before the block's sums go back to memory: they stay in the L1 cache across the
/// block's positions, and so does the input of those channels around a block's positions.
/// (With every channel at once, 256 channels of 14x14 planes read both from L2 and ran ~1.4x
/// slower than through gemm.)
const WEIGHTS_IN_L1: usize = 4096;

/// Adds one input channel's share to a block's sums: every tap's `C` vectors of `x` (the
/// channel's plane from the block's first position) times the tap's `R` weights. `T` is the
/// tap count when it is known at build time (the 3x3 kernels: an unrolled loop, the offsets
/// in registers), 0 otherwise.
///
/// Each tap also asks for the same vectors of the next channel (`next` elements on), which the
/// block reads next: the planes are far apart and each read row is a stream of its own, more
/// of them than the hardware prefetcher follows (measured in-process A/B, 3x3 convolutions at
/// batch 1: 3-5 % faster at 56x56 and 28x28, 9-12 % for a stride of 2).
#[inline(always)]
fn add_channel<S: F32Simd, const R: usize, const C: usize, const T: usize>(
    s: S,
    acc: &mut [[S::V; C]; R],
    x: &[f32],
    offsets: &[usize],
    w: &[f32],
    next: usize,
) {
    let lanes = S::LANES;
    let offsets = if T > 0 { &offsets[..T] } else { offsets };
    for (&off, w) in offsets.iter().zip(w.chunks_exact(R)) {
        for v in 0..C {
            prefetch::<true>(x.as_ptr().wrapping_add(next + off + v * lanes));
        }
        // one bounds check for the tap's vectors (the loads' own are then known to pass)
        let taps = &x[off..off + C * lanes];
        let xv: [S::V; C] = core::array::from_fn(|v| s.load(&taps[v * lanes..]));
        for (r, acc) in acc.iter_mut().enumerate() {
            let wv = s.splat(w[r]);
            for (acc, &xv) in acc.iter_mut().zip(&xv) {
                *acc = s.mul_add(wv, xv, *acc);
            }
        }
    }
}

/// Every `R x (C vectors)` block of the output, for a chunk of input channels at a time (see
/// [`WEIGHTS_IN_L1`]), the first chunk storing its sums and the others adding to them.
/// `ASM`: the blocks are summed by `conv_asm.rs` (the AVX2 build, 4 x 3 vectors of 8, only).
#[inline(always)]
fn blocks<S: F32Simd, const R: usize, const C: usize, const ASM: bool>(s: S, a: &Args<'_>, out: &mut [f32]) {
    let (lanes, taps) = (S::LANES, a.offsets.len());
    let per_block = a.inputs * taps * R;
    // equal chunks (64 channels as 32 + 32, not 56 + 8)
    let chunk = a.inputs.div_ceil(a.inputs.div_ceil((WEIGHTS_IN_L1 / (taps * R)).max(1)));
    #[cfg(target_arch = "x86_64")]
    let table = a.table.filter(|_| ASM);
    #[cfg(target_arch = "x86_64")]
    assert!(
        table.is_none() || (S::LANES == 8 && R == 4 && C == 3 && size_of::<S::V>() == size_of::<__m256>()),
        "conv2d row kernel: the assembly block is 4 x 3 vectors of 8"
    );
    for c0 in (0..a.inputs).step_by(chunk) {
        let channels = c0..(c0 + chunk).min(a.inputs);
        for (b, weights) in a.packed.chunks_exact(per_block).enumerate() {
            let weights = &weights[channels.start * taps * R..channels.end * taps * R];
            let rows = &mut out[b * R * a.positions..(b + 1) * R * a.positions];
            for q in (0..a.positions).step_by(C * lanes) {
                let mut acc = [[s.splat(0.0); C]; R];
                if c0 > 0 {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let row = &rows[r * a.positions + q..][..C * lanes];
                        *acc = core::array::from_fn(|v| s.load(&row[v * lanes..]));
                    }
                }
                // the AVX2 build sums in assembly (`conv_asm.rs`)
                let summed = 'asm: {
                    #[cfg(target_arch = "x86_64")]
                    if let Some(table) = table {
                        // SAFETY: only the AVX2 build has a table (`ASM`, set by `run_avx2`),
                        // where `S::V` is `__m256` and a block 4 x 3 of them: the same type.
                        let sums = unsafe { &mut *(&mut acc as *mut [[S::V; C]; R]).cast::<[__m256; 12]>() };
                        // SAFETY: that build runs on AVX2 + FMA CPUs only.
                        unsafe { conv_asm::row_block(sums, &a.x[c0 * a.plane + q..], table, weights, channels.len()) };
                        break 'asm true;
                    }
                    false
                };
                if !summed {
                    for (c, w) in channels.clone().zip(weights.chunks_exact(taps * R)) {
                        let x = &a.x[c * a.plane + q..(c + 1) * a.plane];
                        match taps {
                            9 => add_channel::<S, R, C, 9>(s, &mut acc, x, a.offsets, w, a.plane),
                            _ => add_channel::<S, R, C, 0>(s, &mut acc, x, a.offsets, w, a.plane),
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    let row = &mut rows[r * a.positions + q..][..C * lanes];
                    for (v, &acc) in acc.iter().enumerate() {
                        s.store(&mut row[v * lanes..], acc);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing puts filter `o`'s weight `i` at row `o % rows` of block `o / rows`, serially and
    /// (for many weights) a task per block, with zero rows past the last filter.
    #[test]
    #[cfg_attr(miri, ignore)] // a hundred thousand weights; the small case runs the same loop
    fn packing_interleaves_a_block_of_filters() {
        let Some(k) = DirectConv::detect() else { return };
        for (out, inputs) in [(k.rows + 1, 3), (2 * k.rows - 1, 1000)] {
            let w: Vec<f32> = (0..out * inputs * 9).map(|i| i as f32).collect();
            let packed = k.pack(&w, out, inputs, 9);
            assert_eq!(packed.len(), k.padded_channels(out) * inputs * 9);
            for (j, &v) in packed.iter().enumerate() {
                let (b, i, r) = (j / (inputs * 9 * k.rows), (j / k.rows) % (inputs * 9), j % k.rows);
                let o = b * k.rows + r;
                assert_eq!(v, if o < out { w[o * inputs * 9 + i] } else { 0.0 }, "{out} {inputs} at {j}");
            }
        }
    }

    /// Every build this CPU runs against the sum by its definition, with channel counts that
    /// leave a partial register block and a partial chunk of input channels.
    #[test]
    fn blocks_match_the_definition() {
        for simd in [Simd::Avx2, Simd::Avx512].into_iter().filter(|&s| s as u8 <= Simd::detect() as u8) {
            let k = DirectConv::with(simd).expect("a vector build");
            let (out, inputs, offsets) = (k.rows + 3, 2 * WEIGHTS_IN_L1 / (6 * k.rows) + 5, [0usize, 1, 2, 9, 10, 11]);
            let positions = k.padded_positions(2 * k.cols - 5);
            let plane = positions + 11 + 3;
            let x: Vec<f32> = (0..inputs * plane).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            let w: Vec<f32> = (0..out * inputs * offsets.len()).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
            let rows = k.padded_channels(out);
            let stride = positions;
            let mut y = vec![f32::NAN; rows * stride];
            let packed = k.pack(&w, out, inputs, offsets.len());
            k.run(&x, plane, inputs, &offsets, &packed, &mut y, positions, false);
            let mut split = vec![f32::NAN; rows * stride];
            k.run(&x, plane, inputs, &offsets, &packed, &mut split, positions, true);
            assert_eq!(y, split, "{simd:?}: a task per block");
            for o in 0..rows {
                for q in 0..positions {
                    let mut want = 0.0;
                    for c in 0..inputs {
                        for (t, off) in offsets.iter().enumerate() {
                            let wv = if o < out { w[(o * inputs + c) * offsets.len() + t] } else { 0.0 };
                            want += wv * x[c * plane + q + off];
                        }
                    }
                    assert_eq!(y[o * stride + q], want, "{simd:?} row {o} position {q}");
                }
            }
        }
    }
}
