//! The AVX2 register blocks of the two direct convolution kernels, in assembly.
//!
//! With 16 vector registers, 12 of them sums, the compiler's build of these loops spilled:
//! the row kernel (`conv_direct.rs`) loaded all nine taps' input vectors before their
//! multiply-adds and kept them on the stack, and the channel-blocked kernel
//! (`conv_blocked.rs`) spent a third of its instructions on addresses. Written out, each loop
//! holds its sums in registers and reads each tap's offset from a [`TapTable`]. Measured on a
//! 2-core AMD EPYC (Zen 3, AVX2 only), ResNet-18 at batch 1 in a graph runtime: the row
//! kernel's 56x56 layers 4.5 ms through the compiled loop; the blocked kernel with its
//! compiled loop 2.8-3.2 ms, and 5-12 % faster again in assembly (see `conv_blocked.rs`, whose
//! input for this block is in groups of up to 8 interleaved channels).
#![cfg(target_arch = "x86_64")]

use crate::compat::prelude::*;
use core::arch::asm;
use core::arch::x86_64::*;

/// `asm!` with the 12 sums `$sums` (`[__m256; 12]`) in registers `{a0}`..`{a11}` for the
/// template (its strings in brackets, each followed by a comma), `ymm12`-`ymm15` free for it,
/// and its other operands after;
/// it evaluates to the sums after the template ran. The template reads memory and writes none.
macro_rules! asm_with_sums {
    ($sums:expr; [$($template:tt)+], $($operand:tt)*) => {{
        let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7, mut a8, mut a9, mut a10, mut a11] = $sums;
        asm!(
            $($template)+
            $($operand)*
            a0 = inout(ymm_reg) a0,
            a1 = inout(ymm_reg) a1,
            a2 = inout(ymm_reg) a2,
            a3 = inout(ymm_reg) a3,
            a4 = inout(ymm_reg) a4,
            a5 = inout(ymm_reg) a5,
            a6 = inout(ymm_reg) a6,
            a7 = inout(ymm_reg) a7,
            a8 = inout(ymm_reg) a8,
            a9 = inout(ymm_reg) a9,
            a10 = inout(ymm_reg) a10,
            a11 = inout(ymm_reg) a11,
            out("ymm12") _,
            out("ymm13") _,
            out("ymm14") _,
            out("ymm15") _,
            options(nostack, readonly),
        );
        [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]
    }};
}

/// The kernels' view of a convolution's taps: `[step bytes, end address, group, tap byte
/// offsets..]`, read by their loops (which are out of general registers for more), where the
/// step takes a loop's pointers from one input channel's plane to the next (the row kernel)
/// or from the last channel of a group of interleaved channels to the next group's first (the
/// channel-blocked kernel, whose groups are `group` channels); and, for the bounds checks, the
/// largest offset and the stride.
pub(super) struct TapTable {
    words: Vec<isize>,
    reach: usize,
    /// Floats from one plane, or group of interleaved planes, to the next.
    stride: usize,
    /// Channels interleaved a group (1: planes).
    group: usize,
}

impl TapTable {
    /// The table of taps at `offsets` (in floats) into input planes `plane` floats apart.
    pub(super) fn new(plane: usize, offsets: &[usize]) -> Self {
        assert!(!offsets.is_empty(), "conv2d kernel: no taps");
        let mut words = Vec::with_capacity(offsets.len() + 3);
        words.push((plane * 4) as isize);
        words.push(0);
        words.push(1);
        words.extend(offsets.iter().map(|&o| (o * 4) as isize));
        // one past the last element; the vector does not grow again, so this stays its end
        words[1] = words.as_ptr_range().end as isize;
        Self { words, reach: offsets.iter().copied().max().unwrap_or(0), stride: plane, group: 1 }
    }

    /// The table of taps at `offsets` (in pixels) into groups of `group` interleaved channels
    /// (`[groups, pixels, group]`), `plane` pixels a plane.
    pub(super) fn interleaved(plane: usize, offsets: &[usize], group: usize) -> Self {
        assert!(group > 0, "conv2d kernel: groups of no channels");
        let offsets: Vec<usize> = offsets.iter().map(|&o| o * group).collect();
        let mut table = Self::new(plane * group, &offsets);
        // the loop steps 4 bytes from a channel to the next within a group
        table.words[0] = (plane * group * 4 - (group - 1) * 4) as isize;
        table.words[2] = group as isize;
        table.group = group;
        table
    }

    fn taps(&self) -> usize {
        self.words.len() - 3
    }

    fn stride(&self) -> usize {
        self.stride
    }
}

/// The row kernel's block: `sums[r * 3 + v] += Σ_c Σ_t w[c, t, r] * x[c * plane + t + 8 v..]`
/// for 4 output channels `r` by 3 vectors `v` of 8 consecutive positions, over `channels`
/// input channels from `x`'s start; `w` is `[channels, taps, 4]`. Each tap also asks for the
/// next channel's vectors, as the compiled loop does.
///
/// # Safety
/// The CPU runs AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_block(sums: &mut [__m256; 12], x: &[f32], table: &TapTable, w: &[f32], channels: usize) {
    let (plane, taps) = (table.stride(), table.taps());
    assert!(
        channels > 0 && (channels - 1) * plane + table.reach + 24 <= x.len() && w.len() >= channels * taps * 4,
        "conv2d row kernel: a read past the input"
    );
    // SAFETY: the reads are inside `x` (each channel's taps reach `table.reach + 24` floats
    // past its start, checked above) and `w`, the table's inside the table; the prefetches of
    // the channel past the last read nothing the program sees. Only the registers named change.
    *sums = unsafe {
        asm_with_sums!(
            *sums;
            [
            "2:",
            "lea {t}, [{table} + 24]",
            "3:",
            "mov {o}, [{t}]",
            "vmovups ymm12, [{x} + {o}]",
            "vmovups ymm13, [{x} + {o} + 32]",
            "vmovups ymm14, [{x} + {o} + 64]",
            "prefetcht0 [{nx} + {o}]",
            "prefetcht0 [{nx} + {o} + 92]",
            "vbroadcastss ymm15, [{w}]",
            "vfmadd231ps {a0}, ymm15, ymm12",
            "vfmadd231ps {a1}, ymm15, ymm13",
            "vfmadd231ps {a2}, ymm15, ymm14",
            "vbroadcastss ymm15, [{w} + 4]",
            "vfmadd231ps {a3}, ymm15, ymm12",
            "vfmadd231ps {a4}, ymm15, ymm13",
            "vfmadd231ps {a5}, ymm15, ymm14",
            "vbroadcastss ymm15, [{w} + 8]",
            "vfmadd231ps {a6}, ymm15, ymm12",
            "vfmadd231ps {a7}, ymm15, ymm13",
            "vfmadd231ps {a8}, ymm15, ymm14",
            "vbroadcastss ymm15, [{w} + 12]",
            "vfmadd231ps {a9}, ymm15, ymm12",
            "vfmadd231ps {a10}, ymm15, ymm13",
            "vfmadd231ps {a11}, ymm15, ymm14",
            "add {w}, 16",
            "add {t}, 8",
            "cmp {t}, [{table} + 8]",
            "jne 3b",
            "mov {x}, {nx}",
            "add {nx}, [{table}]",
            "dec {c}",
            "jnz 2b",
            ],
            table = in(reg) table.words.as_ptr(),
            t = out(reg) _,
            o = out(reg) _,
            x = inout(reg) x.as_ptr() => _,
            nx = inout(reg) x.as_ptr().wrapping_add(plane) => _,
            w = inout(reg) w.as_ptr() => _,
            c = inout(reg) channels => _,
        )
    };
}

/// The template of one input channel `$c` (0 to 7) of a group of interleaved ones in
/// [`channel_block`]'s loops (the step-per-channel loop's is channel 0, its pointers moved on): its two weight vectors at `{w} + 64 $c`, its value at
/// each of the 6 positions (`{p0}`..`{p5}`, plus the tap's offset `{o}`, plus `4 $c`)
/// broadcast and multiplied into the sums.
#[rustfmt::skip]
macro_rules! group_channel {
    ($c:literal) => {
        concat!(
            "vmovups ymm12, [{w} + ", $c, " * 64]\n",
            "vmovups ymm13, [{w} + ", $c, " * 64 + 32]\n",
            "vbroadcastss ymm14, [{p0} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a0}, ymm12, ymm14\n",
            "vfmadd231ps {a1}, ymm13, ymm14\n",
            "vbroadcastss ymm15, [{p1} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a2}, ymm12, ymm15\n",
            "vfmadd231ps {a3}, ymm13, ymm15\n",
            "vbroadcastss ymm14, [{p2} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a4}, ymm12, ymm14\n",
            "vfmadd231ps {a5}, ymm13, ymm14\n",
            "vbroadcastss ymm15, [{p3} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a6}, ymm12, ymm15\n",
            "vfmadd231ps {a7}, ymm13, ymm15\n",
            "vbroadcastss ymm14, [{p4} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a8}, ymm12, ymm14\n",
            "vfmadd231ps {a9}, ymm13, ymm14\n",
            "vbroadcastss ymm15, [{p5} + {o} + ", $c, " * 4]\n",
            "vfmadd231ps {a10}, ymm12, ymm15\n",
            "vfmadd231ps {a11}, ymm13, ymm15\n",
        )
    };
}

/// The template that moves the 6 position pointers `{p0}`..`{p5}` on by `$by` (a register
/// or a number of bytes).
#[rustfmt::skip]
macro_rules! step_positions {
    ($by:literal) => {
        concat!(
            "add {p0}, ", $by, "\n",
            "add {p1}, ", $by, "\n",
            "add {p2}, ", $by, "\n",
            "add {p3}, ", $by, "\n",
            "add {p4}, ", $by, "\n",
            "add {p5}, ", $by, "\n",
        )
    };
}

/// [`channel_block`]'s loop for groups of `$g` channels, unrolled over a group's channels
/// `$c` (0 to `$g - 1`): the sums `$acc` after `$groups` groups from the positions `$p(0)`..
/// `$p(5)` and the weights `$w` (`[groups, taps, $g, 16]`).
macro_rules! unrolled_groups {
    ($acc:expr, $table:expr, $w:expr, $groups:expr, $p:expr; $g:literal: $($c:literal),+) => {
        asm_with_sums!(
            $acc;
            [
            "2:",
            "lea {t}, [{table} + 24]",
            "3:",
            "mov {o}, [{t}]",
            $(group_channel!($c),)+
            concat!("add {w}, ", $g, " * 64"),
            "add {t}, 8",
            "cmp {t}, [{table} + 8]",
            "jne 3b",
            // the table's step is from a group's last channel to the next group's first
            "mov {o}, [{table}]",
            concat!("add {o}, ", $g, " * 4 - 4"),
            step_positions!("{o}"),
            "dec {c}",
            "jnz 2b",
            ],
            table = in(reg) $table.words.as_ptr(),
            t = out(reg) _,
            o = out(reg) _,
            w = inout(reg) $w.as_ptr() => _,
            c = inout(reg) $groups => _,
            p0 = inout(reg) $p(0) => _,
            p1 = inout(reg) $p(1) => _,
            p2 = inout(reg) $p(2) => _,
            p3 = inout(reg) $p(3) => _,
            p4 = inout(reg) $p(4) => _,
            p5 = inout(reg) $p(5) => _,
        )
    };
}

/// Whether [`channel_block`] reads groups of `group` channels with a loop unrolled over them,
/// and so their weights a group at a time (`[groups, taps, group, 16]`): 8, and 3 (an RGB
/// image: ResNet-18's stem, alternating with a step a channel in one process, 2.90 against 3.17
/// ms alone at batch 1, 65.4 against 70.0 ms at batch 32).
pub(super) fn unrolled(group: usize) -> bool {
    matches!(group, 3 | 8)
}

/// The channel-blocked kernel's block: `sums[p, o] (+)= Σ_c Σ_t w[c, t, o] * x[c / G, pos[p] +
/// t, c % G]` for 16 output channels `o` by the positions `pos`, over `channels` input
/// channels from a group's first; `x` holds groups of `G` interleaved channels (`[groups,
/// pixels, G]`, the table's [`TapTable::interleaved`]), `pos` and the taps count floats from
/// `x`'s start (`G` a pixel); `sums` is `[positions, 16]`, added to unless `first`. The sums of
/// 6 positions are computed; a shorter block repeats a position in `pos` and has only its own
/// stored.
///
/// With groups of 8 (or 3, see [`unrolled`]), `w` is `[groups, taps, group, 16]` (zero past
/// the last channel, whose input is zero too) and a tap's channels are one unrolled step: per 12 multiply-adds, 20
/// instructions where a step per channel had 25 with the table read, the pointer updates and
/// the loop test. On a 2-core AMD EPYC (Zen 3), whose cores run other machines' threads beside
/// ours at times, the fewer instructions were 20 % faster in those slow phases (a register
/// block alone, medians of 20 runs: 4.60 against 3.88, and 4.45 against 3.67 G multiply-adds a
/// second, a loop of nothing but multiply-adds 5.3), as if the two threads took turns issuing.
/// In a graph runtime, alternating with the step per channel in one process: ResNet-18 35.1
/// against 37.2 ms at batch 1 (its 56x56 and 7x7 layers 10 % faster), 1004 against 1173 ms at
/// batch 32; the digits CNN at batch 32 0.338 against 0.368 ms. Other groups (of fewer channels
/// than 8 in all) step a channel at a time, `w` `[channels, taps, 16]`.
///
/// # Safety
/// The CPU runs AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channel_block(
    sums: &mut [f32],
    first: bool,
    x: &[f32],
    pos: &[usize; 6],
    table: &TapTable,
    w: &[f32],
    channels: usize,
) {
    let (stride, group, taps) = (table.stride(), table.group, table.taps());
    let last = pos.iter().copied().max().unwrap_or(0);
    let groups = channels.div_ceil(group);
    assert!(
        channels > 0
            && (groups - 1) * stride + last + table.reach + group - 1 < x.len()
            && w.len() >= if unrolled(group) { groups * group } else { channels } * taps * 16,
        "conv2d blocked kernel: a read past the input"
    );
    assert!(sums.len() <= 6 * 16 && sums.len().is_multiple_of(16), "conv2d blocked kernel: sums of 1 to 6 positions");
    let mut acc = [_mm256_setzero_ps(); 12];
    if !first {
        for (a, s) in acc.iter_mut().zip(sums.chunks_exact(8)) {
            // SAFETY: `s` holds 8 floats.
            *a = unsafe { _mm256_loadu_ps(s.as_ptr()) };
        }
    }
    let p = |i: usize| x.as_ptr().wrapping_add(pos[i]);
    // SAFETY (every loop): every read is inside `x` (the last group's, at the last position's
    // last tap and its last lane, checked above) or `w`, the table's inside the table. Only the
    // registers named change.
    // (the groups `unrolled` names)
    let acc = match group {
        // SAFETY: see above.
        8 => unsafe { unrolled_groups!(acc, table, w, groups, p; 8: 0, 1, 2, 3, 4, 5, 6, 7) },
        // SAFETY: see above.
        3 => unsafe { unrolled_groups!(acc, table, w, groups, p; 3: 0, 1, 2) },
        // SAFETY: see above.
        _ => unsafe {
            asm_with_sums!(
                acc;
                [
                "2:",
                "mov {k}, [{table} + 16]",
                "3:",
                "lea {t}, [{table} + 24]",
                "4:",
                "mov {o}, [{t}]",
                group_channel!(0),
                "add {w}, 64",
                "add {t}, 8",
                "cmp {t}, [{table} + 8]",
                "jne 4b",
                "dec {c}",
                "jz 5f",
                "dec {k}",
                "jz 6f",
                step_positions!("4"),
                "jmp 3b",
                "6:",
                "mov {o}, [{table}]",
                step_positions!("{o}"),
                "jmp 2b",
                "5:",
                ],
                table = in(reg) table.words.as_ptr(),
                t = out(reg) _,
                o = out(reg) _,
                k = out(reg) _,
                w = inout(reg) w.as_ptr() => _,
                c = inout(reg) channels => _,
                p0 = inout(reg) p(0) => _,
                p1 = inout(reg) p(1) => _,
                p2 = inout(reg) p(2) => _,
                p3 = inout(reg) p(3) => _,
                p4 = inout(reg) p(4) => _,
                p5 = inout(reg) p(5) => _,
            )
        },
    };
    for (a, s) in acc.iter().zip(sums.chunks_exact_mut(8)) {
        // SAFETY: `s` holds 8 floats.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), *a) };
    }
}
