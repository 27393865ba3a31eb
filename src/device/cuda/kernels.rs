//! The CUDA C++ sources in `kernels/`, turned into programs NVRTC can compile.
//!
//! The sources include no CUDA headers (so NVRTC needs no include path), and `#include "x.cuh"`
//! between tensile's own files is expanded here. Op codes are not written in the CUDA files:
//! they are generated from the Rust op enums (`UnaryFn`, `BinaryFn`, `CmpFn`), so the two sides
//! cannot disagree about which number means which op.

use crate::ops::{BinaryFn, CmpFn, UnaryFn};

/// The headers the kernel files include.
const HEADERS: &[(&str, &str)] = &[
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("unary.cuh", include_str!("../../../kernels/unary.cuh")),
    ("binary.cuh", include_str!("../../../kernels/binary.cuh")),
    ("block.cuh", include_str!("../../../kernels/block.cuh")),
];

/// One compilation unit of kernels: a file in `kernels/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFile {
    /// Unary and binary ops with gradients, comparisons, `where`, strided copies, casts.
    Elementwise,
    /// Reductions over axes and the max/min gradient.
    Reduce,
    /// Row-wise softmax and log-softmax with gradients.
    Softmax,
    /// Layer norm and RMS norm over rows, with gradients.
    Norm,
    /// Cross-entropy of logit rows against class indices, with its gradient.
    Loss,
    /// `im2col` and `col2im` for convolutions.
    Conv,
}

impl KernelFile {
    /// Every kernel file.
    pub const ALL: &'static [KernelFile] = &[
        KernelFile::Elementwise,
        KernelFile::Reduce,
        KernelFile::Softmax,
        KernelFile::Norm,
        KernelFile::Loss,
        KernelFile::Conv,
    ];

    /// The file's name in `kernels/`.
    pub fn file_name(self) -> &'static str {
        match self {
            KernelFile::Elementwise => "elementwise.cu",
            KernelFile::Reduce => "reduce.cu",
            KernelFile::Softmax => "softmax.cu",
            KernelFile::Norm => "norm.cu",
            KernelFile::Loss => "loss.cu",
            KernelFile::Conv => "conv.cu",
        }
    }

    fn raw(self) -> &'static str {
        match self {
            KernelFile::Elementwise => include_str!("../../../kernels/elementwise.cu"),
            KernelFile::Reduce => include_str!("../../../kernels/reduce.cu"),
            KernelFile::Softmax => include_str!("../../../kernels/softmax.cu"),
            KernelFile::Norm => include_str!("../../../kernels/norm.cu"),
            KernelFile::Loss => include_str!("../../../kernels/loss.cu"),
            KernelFile::Conv => include_str!("../../../kernels/conv.cu"),
        }
    }

    /// The program NVRTC compiles: the op-code definitions, then the file with its includes
    /// expanded (each header once).
    ///
    /// ```
    /// use tensile::device::cuda::KernelFile;
    /// let src = KernelFile::Elementwise.program();
    /// assert!(src.contains("#define UNARY_exp ") && src.contains("unary_fwd_##N"));
    /// assert!(!src.contains("#include"));
    /// ```
    pub fn program(self) -> String {
        let mut out = op_code_defines();
        let mut seen = Vec::new();
        expand(self.raw(), &mut out, &mut seen);
        out
    }
}

fn expand(src: &str, out: &mut String, seen: &mut Vec<&'static str>) {
    for line in src.lines() {
        let include = line.trim().strip_prefix("#include \"").and_then(|r| r.strip_suffix('"'));
        match include {
            Some(name) => {
                let (header, text) = HEADERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("kernels/: no header named {name}"));
                if !seen.contains(header) {
                    seen.push(header);
                    expand(text, out, seen);
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

/// `#define UNARY_<name> <code>` (and `BINARY_`, `CMP_`) for every op, codes as
/// [`unary_code`], [`binary_code`] and [`cmp_code`] give them.
fn op_code_defines() -> String {
    let mut out = String::from("// Op codes, generated from the Rust op enums.\n");
    for (i, name) in UnaryFn::NAMES.iter().enumerate() {
        out.push_str(&format!("#define UNARY_{name} {i}\n"));
    }
    for (i, op) in BinaryFn::ALL.iter().enumerate() {
        out.push_str(&format!("#define BINARY_{} {i}\n", op.name()));
    }
    for (i, op) in CmpFn::ALL.iter().enumerate() {
        out.push_str(&format!("#define CMP_{} {i}\n", op.name()));
    }
    out
}

/// The kernel-side code of a unary op and its two fields (0 where it has fewer).
pub(crate) fn unary_code(op: &UnaryFn) -> (i32, f64, f64) {
    let code = UnaryFn::NAMES.iter().position(|n| *n == op.name()).expect("every unary op has a name");
    let p = op.params();
    (code as i32, p.first().copied().unwrap_or(0.0), p.get(1).copied().unwrap_or(0.0))
}

/// The kernel-side code of a binary op.
pub(crate) fn binary_code(op: BinaryFn) -> i32 {
    BinaryFn::ALL.iter().position(|o| *o == op).expect("every binary op is listed") as i32
}

/// The kernel-side code of a comparison.
pub(crate) fn cmp_code(op: CmpFn) -> i32 {
    CmpFn::ALL.iter().position(|o| *o == op).expect("every comparison is listed") as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op the Rust side knows has a case in the CUDA maths, so none falls to `default`.
    #[test]
    fn every_op_has_a_cuda_case() {
        let unary = include_str!("../../../kernels/unary.cuh");
        for name in UnaryFn::NAMES {
            let case = format!("case UNARY_{name}:");
            assert_eq!(unary.matches(&case).count(), 2, "{case} in f and df");
        }
        let binary = include_str!("../../../kernels/binary.cuh");
        for op in BinaryFn::ALL {
            let case = format!("case BINARY_{}:", op.name());
            assert_eq!(binary.matches(&case).count(), 3, "{case} in f, dfa and dfb");
        }
        for op in CmpFn::ALL {
            assert!(binary.contains(&format!("case CMP_{}:", op.name())));
        }
    }

    #[test]
    fn programs_expand_every_include_once() {
        for file in KernelFile::ALL {
            let p = file.program();
            assert!(!p.contains("#include"), "{file:?}");
            assert_eq!(p.matches("struct Strided {").count(), 1, "{file:?}");
        }
    }
}
