//! The graph IR: values with static dims and dtypes, and nodes whose ops are the device kernels'
//! primitives (one enum, [`Op`], versioned by [`IR_VERSION`]).
//!
//! A graph is fully static: every value's dims are known, so a node's output can be checked
//! against its op and inputs ([`Op::infer`]) when a graph is built, loaded or rewritten.

use crate::compat::prelude::*;
use crate::device::{ConvGeometry, Layout, PoolGeometry, PoolWindows};
use crate::dtypes::DType;
use crate::error::{Error, Result};
use crate::ops::{BinaryFn, CmpFn, ReduceKind, UnaryFn};

/// The version of the op set and of its file encoding. A file written by a newer version is
/// refused by name, not misread; older versions are subsets and still load (2 added
/// [`Op::FusedConv`]).
pub const IR_VERSION: u32 = 2;

/// A value's index in [`Graph::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    /// The index into [`Graph::values`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for ValueId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a value is: its dims and dtype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueInfo {
    /// The sizes, outermost first.
    pub dims: Vec<usize>,
    /// The element type.
    pub dtype: DType,
}

impl ValueInfo {
    /// A value of `dims` and `dtype`.
    pub fn new(dims: &[usize], dtype: DType) -> Self {
        Self { dims: dims.to_vec(), dtype }
    }
    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    /// The number of bytes of its data.
    pub fn bytes(&self) -> usize {
        self.numel() * self.dtype.bytes()
    }
}

/// Element-wise ops a fused node runs, on a small register machine (see [`Op::FusedElementwise`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Push the fused node's input `i`.
    Input(u8),
    /// Apply a unary op to the top of the stack.
    Unary(UnaryFn),
    /// Pop `b`, pop `a`, push `a op b`.
    Binary(BinaryFn),
}

/// The op of a node: one device primitive with its attributes.
///
/// Inputs are listed per op; unless an op says otherwise, its output is contiguous with the
/// dims recorded in the graph, and float ops keep their input's dtype.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// `[x]`: `f(x)` element-wise.
    Unary(UnaryFn),
    /// `[a, b]` of the output's dims: `f(a, b)` element-wise.
    Binary(BinaryFn),
    /// `[a, b]` of equal dims and dtype: a bool tensor.
    Compare(CmpFn),
    /// `[cond, a, b]`: `cond ? a : b`.
    Where,
    /// `[x]`: converted to the output's dtype.
    Cast,
    /// `[x]`: sum, max or min over `axes` (sorted); the output keeps the other dims.
    Reduce {
        /// Which reduction.
        kind: ReduceKind,
        /// The reduced axes of the input.
        axes: Vec<usize>,
    },
    /// `[a, b]`: a matrix product of rank 1-4 operands, paired as the typed `matmul` pairs them
    /// (PyTorch's `matmul` semantics for those ranks).
    MatMul,
    /// `[x]`: the same elements in row-major order with the output's dims.
    Reshape,
    /// `[x]`: axes reordered; output axis `i` is input axis `perm[i]`.
    Permute {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// `[x]`: repeated along the output's new axes `axes` (sorted); the other output axes are
    /// the input's, in order.
    Broadcast {
        /// The new axes of the output.
        axes: Vec<usize>,
    },
    /// `[x]`: every `step`-th element along `axis` from `start`; the output's dim there is the
    /// count taken.
    Narrow {
        /// The axis.
        axis: usize,
        /// The first index taken.
        start: usize,
        /// The distance between taken indices.
        step: usize,
    },
    /// `[x]`: index `index` along `axis`, which is dropped.
    Select {
        /// The axis.
        axis: usize,
        /// The index.
        index: usize,
    },
    /// `[x0, x1, ..]`: joined along `axis`.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// `[x0, x1, ..]` of equal dims: stacked along a new leading axis.
    Stack,
    /// `[x]`: softmax (log-softmax when `log`) over the last axis.
    SoftmaxRows {
        /// Log-softmax.
        log: bool,
    },
    /// `[x, w]`: a 2-D convolution (cross-correlation, NCHW) of these sizes.
    Conv {
        /// The sizes.
        geometry: ConvGeometry,
    },
    /// `[x, w]`: the transpose of the convolution `geometry` describes (its input is that
    /// convolution's output).
    ConvTranspose {
        /// The convolution it transposes.
        geometry: ConvGeometry,
    },
    /// `[x]`: max pooling over planes (`x` viewed as `[planes, h, w]`).
    MaxPool {
        /// The sizes.
        geometry: PoolGeometry,
    },
    /// `[x]`: average pooling over planes.
    AvgPool {
        /// The sizes.
        geometry: PoolGeometry,
        /// Whether padding counts in the divisor.
        count_include_pad: bool,
    },
    /// `[x, index]`: `out[o, j, i] = x[o, index[o, j, i], i]` with `x` folded to `dims`
    /// (`[outer, n, inner]`) and the index read through `index` (a view of its contiguous
    /// buffer, `[outer, m, inner]`).
    Gather {
        /// `x` as `[outer, n, inner]`.
        dims: [usize; 3],
        /// How the index is read.
        index: Layout,
    },
    /// `[x, w?, b?]`: each last-axis row normalised (layer norm; RMS norm when `!center`), then
    /// scaled by `w` and shifted by `b` when present.
    Norm {
        /// Added to the variance.
        eps: f64,
        /// Subtract the mean (layer norm) or not (RMS norm).
        center: bool,
        /// Whether `w` is an input.
        weight: bool,
        /// Whether `b` is an input.
        bias: bool,
    },
    /// `[x0, x1, ..]` of the output's dims (broadcast views allowed): a fused chain of
    /// element-wise ops, evaluated per element by `steps` (made by the fusion pass).
    FusedElementwise {
        /// The program; it leaves one value on the stack.
        steps: Vec<Step>,
    },
    /// `[x, w, b?]`: `act(x wᵀ + b)`, a linear layer with its activation (made by the fusion
    /// pass). `x` is `[.., k]`, `w` is `[n, k]`, `b` is `[n]`.
    FusedLinear {
        /// Whether `b` is an input.
        bias: bool,
        /// The activation applied to the result, if any.
        activation: Option<UnaryFn>,
    },
    /// `[x, w, b?, z?]`: `act(conv(x, w) + b + z)`, a convolution with its per-channel bias, a
    /// residual `z` of the output's dims and an activation, each optional (made by the fusion
    /// pass). `x` and `w` are as for [`Op::Conv`], `b` is `[out_channels]`.
    FusedConv {
        /// The sizes.
        geometry: ConvGeometry,
        /// Whether `b` is an input.
        bias: bool,
        /// Whether `z` is an input.
        residual: bool,
        /// The activation applied to the result, if any.
        activation: Option<UnaryFn>,
    },
}

impl Op {
    /// A short name (`"matmul"`, `"unary.exp"`), as the text form prints it.
    pub fn name(&self) -> String {
        match self {
            Op::Unary(f) => f.name().to_string(),
            Op::Binary(f) => f.name().to_string(),
            Op::Compare(f) => f.name().to_string(),
            Op::Where => "where".into(),
            Op::Cast => "cast".into(),
            Op::Reduce { kind, .. } => match kind {
                ReduceKind::Sum => "sum".into(),
                ReduceKind::Max => "amax".into(),
                ReduceKind::Min => "amin".into(),
            },
            Op::MatMul => "matmul".into(),
            Op::Reshape => "reshape".into(),
            Op::Permute { .. } => "permute".into(),
            Op::Broadcast { .. } => "broadcast".into(),
            Op::Narrow { .. } => "narrow".into(),
            Op::Select { .. } => "select".into(),
            Op::Concat { .. } => "concat".into(),
            Op::Stack => "stack".into(),
            Op::SoftmaxRows { log: false } => "softmax".into(),
            Op::SoftmaxRows { log: true } => "log_softmax".into(),
            Op::Conv { .. } => "conv2d".into(),
            Op::ConvTranspose { .. } => "conv_transpose2d".into(),
            Op::MaxPool { .. } => "max_pool2d".into(),
            Op::AvgPool { .. } => "avg_pool2d".into(),
            Op::Gather { .. } => "gather".into(),
            Op::Norm { center: true, .. } => "layer_norm".into(),
            Op::Norm { center: false, .. } => "rms_norm".into(),
            Op::FusedElementwise { .. } => "fused_elementwise".into(),
            Op::FusedLinear { .. } => "linear".into(),
            Op::FusedConv { .. } => "fused_conv2d".into(),
        }
    }

    /// Whether the op only re-views its input (no kernel runs, no buffer is written).
    pub fn is_view(&self) -> bool {
        matches!(self, Op::Reshape | Op::Permute { .. } | Op::Broadcast { .. } | Op::Narrow { .. } | Op::Select { .. })
    }

    /// The output this op gives for these inputs, or an `Err` saying why they do not fit it.
    /// `hint` is the output the graph records: ops whose attributes do not determine the output
    /// (reshape, cast) take its dims or dtype from it.
    pub fn infer(&self, inputs: &[&ValueInfo], hint: &ValueInfo) -> core::result::Result<ValueInfo, String> {
        let arity = |n: usize| -> core::result::Result<(), String> {
            if inputs.len() == n { Ok(()) } else { Err(format!("takes {n} inputs, has {}", inputs.len())) }
        };
        let float = |v: &ValueInfo| -> core::result::Result<(), String> {
            if v.dtype.is_float() { Ok(()) } else { Err(format!("needs a float input, has {}", v.dtype)) }
        };
        let same = |a: &ValueInfo, b: &ValueInfo| -> core::result::Result<(), String> {
            if a == b {
                Ok(())
            } else {
                Err(format!("inputs differ: {:?} {} vs {:?} {}", a.dims, a.dtype, b.dims, b.dtype))
            }
        };
        match self {
            Op::Unary(_) | Op::SoftmaxRows { .. } => {
                arity(1)?;
                float(inputs[0])?;
                if matches!(self, Op::SoftmaxRows { .. }) && inputs[0].dims.is_empty() {
                    return Err("softmax needs at least one axis".into());
                }
                Ok(inputs[0].clone())
            }
            Op::Binary(_) => {
                arity(2)?;
                float(inputs[0])?;
                same(inputs[0], inputs[1])?;
                Ok(inputs[0].clone())
            }
            Op::Compare(_) => {
                arity(2)?;
                same(inputs[0], inputs[1])?;
                Ok(ValueInfo::new(&inputs[0].dims, DType::Bool))
            }
            Op::Where => {
                arity(3)?;
                if inputs[0].dtype != DType::Bool {
                    return Err("the condition must be bool".into());
                }
                float(inputs[1])?;
                same(inputs[1], inputs[2])?;
                if inputs[0].dims != inputs[1].dims {
                    return Err(format!("condition {:?} vs values {:?}", inputs[0].dims, inputs[1].dims));
                }
                Ok(inputs[1].clone())
            }
            Op::Cast => {
                arity(1)?;
                Ok(ValueInfo::new(&inputs[0].dims, hint.dtype))
            }
            Op::Reduce { axes, .. } => {
                arity(1)?;
                float(inputs[0])?;
                let x = &inputs[0].dims;
                if !axes.windows(2).all(|w| w[0] < w[1]) || axes.iter().any(|&a| a >= x.len()) {
                    return Err(format!("axes {axes:?} do not fit rank {}", x.len()));
                }
                let dims: Vec<usize> = (0..x.len()).filter(|a| !axes.contains(a)).map(|a| x[a]).collect();
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::MatMul => {
                arity(2)?;
                float(inputs[0])?;
                if inputs[0].dtype != inputs[1].dtype {
                    return Err("operands of different dtypes".into());
                }
                let dims = matmul_dims(&inputs[0].dims, &inputs[1].dims)?;
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::Reshape => {
                arity(1)?;
                if inputs[0].numel() != hint.numel() {
                    return Err(format!("cannot reshape {:?} into {:?}", inputs[0].dims, hint.dims));
                }
                Ok(ValueInfo::new(&hint.dims, inputs[0].dtype))
            }
            Op::Permute { perm } => {
                arity(1)?;
                let x = &inputs[0].dims;
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len() || perm.iter().any(|&p| p >= x.len() || core::mem::replace(&mut seen[p], true))
                {
                    return Err(format!("{perm:?} is not a permutation of rank {}", x.len()));
                }
                let dims: Vec<usize> = perm.iter().map(|&p| x[p]).collect();
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::Broadcast { axes } => {
                arity(1)?;
                let x = &inputs[0].dims;
                let out = &hint.dims;
                let sorted = axes.windows(2).all(|w| w[0] < w[1]);
                if !sorted || out.len() != x.len() + axes.len() || axes.iter().any(|&a| a >= out.len()) {
                    return Err(format!("cannot broadcast {x:?} to {out:?} along {axes:?}"));
                }
                let kept: Vec<usize> = (0..out.len()).filter(|a| !axes.contains(a)).map(|a| out[a]).collect();
                if &kept != x {
                    return Err(format!("cannot broadcast {x:?} to {out:?} along {axes:?}"));
                }
                Ok(ValueInfo::new(out, inputs[0].dtype))
            }
            Op::Narrow { axis, start, step } => {
                arity(1)?;
                let x = &inputs[0].dims;
                let (axis, start, step) = (*axis, *start, *step);
                if axis >= x.len() || step == 0 || hint.dims.len() != x.len() {
                    return Err(format!("narrow of axis {axis} (step {step}) does not fit {x:?}"));
                }
                let len = hint.dims[axis];
                let last =
                    if len == 0 { Some(start) } else { (len - 1).checked_mul(step).and_then(|v| v.checked_add(start)) };
                if last.is_none_or(|l| (len > 0 && l >= x[axis]) || (len == 0 && l > x[axis])) {
                    return Err(format!("{len} elements from {start} by {step} exceed axis {axis} of {x:?}"));
                }
                let mut dims = x.clone();
                dims[axis] = len;
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::Select { axis, index } => {
                arity(1)?;
                let x = &inputs[0].dims;
                if *axis >= x.len() || *index >= x[*axis] {
                    return Err(format!("index {index} of axis {axis} is outside {x:?}"));
                }
                let mut dims = x.clone();
                dims.remove(*axis);
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::Concat { axis } => {
                if inputs.is_empty() {
                    return Err("concat needs inputs".into());
                }
                let first = inputs[0];
                float(first)?;
                if *axis >= first.dims.len() {
                    return Err(format!("axis {axis} does not fit {:?}", first.dims));
                }
                let mut dims = first.dims.clone();
                dims[*axis] = 0;
                for v in inputs {
                    let agree = v.dtype == first.dtype
                        && v.dims.len() == first.dims.len()
                        && (0..dims.len()).all(|d| d == *axis || v.dims[d] == first.dims[d]);
                    if !agree {
                        return Err(format!("cannot concat {:?} with {:?} along {axis}", first.dims, v.dims));
                    }
                    dims[*axis] += v.dims[*axis];
                }
                Ok(ValueInfo::new(&dims, first.dtype))
            }
            Op::Stack => {
                if inputs.is_empty() {
                    return Err("stack needs inputs".into());
                }
                float(inputs[0])?;
                for v in inputs {
                    same(inputs[0], v)?;
                }
                let mut dims = vec![inputs.len()];
                dims.extend(&inputs[0].dims);
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
            Op::FusedConv { geometry, bias, residual, .. } => {
                arity(2 + *bias as usize + *residual as usize)?;
                same_dtype(inputs)?;
                let y = Op::Conv { geometry: *geometry }.infer(&inputs[..2], hint)?;
                if *bias && inputs[2].dims != [geometry.out_channels] {
                    return Err(format!("bias {:?} does not fit {} channels", inputs[2].dims, geometry.out_channels));
                }
                let z = &inputs.last().expect("arity checked").dims;
                if *residual && *z != y.dims {
                    return Err(format!("residual {z:?} does not fit the output {:?}", y.dims));
                }
                Ok(y)
            }
            Op::Conv { geometry: g } | Op::ConvTranspose { geometry: g } => {
                arity(2)?;
                float(inputs[0])?;
                same_dtype(inputs)?;
                check_conv(g)?;
                let conv_in = [g.batch, g.in_channels, g.input[0], g.input[1]];
                let conv_out = [g.batch, g.out_channels, g.output[0], g.output[1]];
                let w = [g.out_channels, g.in_per_group(), g.kernel[0], g.kernel[1]];
                let (x_dims, y_dims) =
                    if matches!(self, Op::Conv { .. }) { (conv_in, conv_out) } else { (conv_out, conv_in) };
                if Some(inputs[0].numel()) != checked_numel(&x_dims) || inputs[1].dims != w {
                    return Err(format!(
                        "input {:?} and weight {:?} do not fit the geometry ({x_dims:?}, {w:?})",
                        inputs[0].dims, inputs[1].dims
                    ));
                }
                if Some(hint.numel()) != checked_numel(&y_dims) {
                    return Err(format!("the output {:?} does not fit the geometry's {y_dims:?}", hint.dims));
                }
                Ok(ValueInfo::new(&hint.dims, inputs[0].dtype))
            }
            Op::MaxPool { geometry: g } | Op::AvgPool { geometry: g, .. } => {
                arity(1)?;
                float(inputs[0])?;
                check_pool(g)?;
                if Some(inputs[0].numel()) != checked_numel(&[g.planes, g.input[0], g.input[1]]) {
                    return Err(format!("input {:?} does not fit the geometry", inputs[0].dims));
                }
                if Some(hint.numel()) != checked_numel(&[g.planes, g.output[0], g.output[1]]) {
                    return Err(format!("output {:?} does not fit the geometry", hint.dims));
                }
                Ok(ValueInfo::new(&hint.dims, inputs[0].dtype))
            }
            Op::Gather { dims, index } => {
                arity(2)?;
                if !matches!(inputs[1].dtype, DType::I64 | DType::I32 | DType::U8) {
                    return Err(format!("the index must be an integer tensor, is {}", inputs[1].dtype));
                }
                if Some(inputs[0].numel()) != checked_numel(dims) {
                    return Err(format!("input {:?} does not fold to {dims:?}", inputs[0].dims));
                }
                let il = index.dims.as_slice();
                if il.len() != 3 || il[0] != dims[0] || il[2] != dims[2] || !layout_fits(index, inputs[1].numel()) {
                    return Err(format!("the index view {:?} does not fit {:?}", index, inputs[1].dims));
                }
                if Some(hint.numel()) != checked_numel(il) {
                    return Err(format!("output {:?} does not fit the index view", hint.dims));
                }
                Ok(ValueInfo::new(&hint.dims, inputs[0].dtype))
            }
            Op::Norm { weight, bias, .. } => {
                arity(1 + *weight as usize + *bias as usize)?;
                float(inputs[0])?;
                let row = *inputs[0].dims.last().ok_or("norm needs at least one axis")?;
                for p in &inputs[1..] {
                    if p.dims != [row] || p.dtype != inputs[0].dtype {
                        return Err(format!("parameter {:?} does not fit rows of {row}", p.dims));
                    }
                }
                Ok(inputs[0].clone())
            }
            Op::FusedElementwise { steps } => {
                if inputs.is_empty() || inputs.len() > super::runtime::MAX_FUSED_INPUTS {
                    return Err(format!("a fused node reads 1 to {} inputs", super::runtime::MAX_FUSED_INPUTS));
                }
                float(inputs[0])?;
                for v in inputs {
                    same(inputs[0], v)?;
                }
                let mut depth = 0usize;
                for s in steps {
                    match s {
                        Step::Input(_) if depth == super::runtime::MAX_FUSED_DEPTH => {
                            return Err(format!("the program is deeper than {}", super::runtime::MAX_FUSED_DEPTH));
                        }
                        Step::Input(i) if (*i as usize) < inputs.len() => depth += 1,
                        Step::Input(i) => return Err(format!("step reads input {i} of {}", inputs.len())),
                        Step::Unary(_) if depth >= 1 => {}
                        Step::Binary(_) if depth >= 2 => depth -= 1,
                        _ => return Err("a step pops an empty stack".into()),
                    }
                }
                if depth != 1 {
                    return Err(format!("the program leaves {depth} values"));
                }
                Ok(inputs[0].clone())
            }
            Op::FusedLinear { bias, .. } => {
                arity(2 + *bias as usize)?;
                float(inputs[0])?;
                same_dtype(inputs)?;
                let (x, w) = (&inputs[0].dims, &inputs[1].dims);
                let k = *x.last().ok_or("linear needs at least one axis")?;
                if w.len() != 2 || w[1] != k || (*bias && inputs[2].dims != [w[0]]) {
                    return Err(format!("input {x:?} and weight {w:?} do not fit"));
                }
                let mut dims = x.clone();
                *dims.last_mut().expect("rank >= 1") = w[0];
                Ok(ValueInfo::new(&dims, inputs[0].dtype))
            }
        }
    }
}

/// The product of sizes, `None` on overflow (attributes read from files can be anything).
fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn same_dtype(inputs: &[&ValueInfo]) -> core::result::Result<(), String> {
    if inputs.iter().all(|v| v.dtype == inputs[0].dtype) { Ok(()) } else { Err("inputs of different dtypes".into()) }
}

/// Whether every element a layout reaches lies inside a buffer of `len` elements.
pub(crate) fn layout_fits(l: &Layout, len: usize) -> bool {
    let mut last = l.offset;
    for (d, s) in l.dims.as_slice().iter().zip(l.strides.as_slice()) {
        if *d == 0 {
            return true;
        }
        match (d - 1).checked_mul(*s).and_then(|v| v.checked_add(last)) {
            Some(v) => last = v,
            None => return false,
        }
    }
    last < len
}

fn check_conv(g: &ConvGeometry) -> core::result::Result<(), String> {
    let rebuilt = ConvGeometry::new(
        g.batch,
        g.in_channels,
        g.out_channels,
        g.groups,
        g.input,
        g.kernel,
        g.stride,
        g.padding,
        g.dilation,
    );
    if rebuilt.as_ref() != Some(g) || g.stride.contains(&0) || g.dilation.contains(&0) || g.kernel.contains(&0) {
        return Err(format!("inconsistent convolution geometry {g:?}"));
    }
    Ok(())
}

fn check_pool(g: &PoolGeometry) -> core::result::Result<(), String> {
    let ok = match g.windows {
        PoolWindows::Sliding { kernel, stride, padding, dilation } => (0..2).all(|a| {
            // PyTorch's rule (padding at most half the window), and no padding beyond the input.
            padding[a] <= kernel[a] / 2
                && padding[a] <= g.input[a]
                && kernel[a] > 0
                && stride[a] > 0
                && dilation[a] > 0
                && crate::shapes::window_out(g.input[a], kernel[a], stride[a], padding[a], dilation[a])
                    == Some(g.output[a])
        }),
        PoolWindows::Adaptive => g.output.iter().zip(&g.input).all(|(&o, &i)| o > 0 && i > 0),
    };
    if ok { Ok(()) } else { Err(format!("inconsistent pooling geometry {g:?}")) }
}

/// How `matmul` pairs operands of each rank: the product's dims, or why they do not pair.
pub(crate) fn matmul_dims(a: &[usize], b: &[usize]) -> core::result::Result<Vec<usize>, String> {
    let bad = || format!("cannot multiply {a:?} by {b:?}");
    let dims = match (a, b) {
        ([k], [k2, n]) if k == k2 => vec![*n],
        ([m, k], [k2]) if k == k2 => vec![*m],
        ([m, k], [k2, n]) if k == k2 => vec![*m, *n],
        ([bt, m, k], [k2, n]) if k == k2 => vec![*bt, *m, *n],
        ([bt, m, k], [bt2, k2, n]) if k == k2 && bt == bt2 => vec![*bt, *m, *n],
        ([bt, h, m, k], [bt2, h2, k2, n]) if k == k2 && bt == bt2 && h == h2 => vec![*bt, *h, *m, *n],
        _ => return Err(bad()),
    };
    Ok(dims)
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The graph input of this position in [`Graph::inputs`].
    Input(usize),
    /// The constant of this position in [`Graph::constants`].
    Constant(usize),
    /// The output of the node of this position in [`Graph::nodes`].
    Node(usize),
}

/// A named graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Its name (`"x"`, `"logits"`).
    pub name: String,
    /// The value.
    pub value: ValueId,
}

/// A constant: a parameter (named as in the model's `state_dict`) or a value computed while
/// tracing (named `"const.N"`), stored as little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// Its name.
    pub name: String,
    /// The value.
    pub value: ValueId,
    /// The elements, little-endian, row-major ([`ValueInfo::bytes`] long).
    pub data: Vec<u8>,
}

/// One op applied to values.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The op.
    pub op: Op,
    /// Its inputs, in the op's order.
    pub inputs: Vec<ValueId>,
    /// Its output.
    pub output: ValueId,
}

/// A static graph: inputs, constants, nodes in execution order, outputs.
///
/// ```
/// use tensile::export::{Graph, Op, ValueInfo};
/// use tensile::dtypes::DType;
/// use tensile::ops::UnaryFn;
/// let mut g = Graph::default();
/// let x = g.add_input("x", ValueInfo::new(&[2, 3], DType::F32));
/// let y = g.add_node(Op::Unary(UnaryFn::Relu), vec![x], ValueInfo::new(&[2, 3], DType::F32));
/// g.add_output("y", y);
/// g.validate().unwrap();
/// assert_eq!(g.nodes.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Every value's dims and dtype, indexed by [`ValueId`].
    pub values: Vec<ValueInfo>,
    /// The inputs, in the order `run` takes them.
    pub inputs: Vec<Port>,
    /// The constants.
    pub constants: Vec<Constant>,
    /// The nodes, each after the nodes it reads.
    pub nodes: Vec<Node>,
    /// The outputs, in the order `run` returns them.
    pub outputs: Vec<Port>,
}

impl Graph {
    fn new_value(&mut self, info: ValueInfo) -> ValueId {
        self.values.push(info);
        ValueId((self.values.len() - 1) as u32)
    }
    /// Adds a graph input.
    pub fn add_input(&mut self, name: &str, info: ValueInfo) -> ValueId {
        let value = self.new_value(info);
        self.inputs.push(Port { name: name.into(), value });
        value
    }
    /// Adds a constant holding `data` (little-endian elements).
    pub fn add_constant(&mut self, name: &str, info: ValueInfo, data: Vec<u8>) -> ValueId {
        let value = self.new_value(info);
        self.constants.push(Constant { name: name.into(), value, data });
        value
    }
    /// Adds a node; its output is a new value of `info`.
    pub fn add_node(&mut self, op: Op, inputs: Vec<ValueId>, info: ValueInfo) -> ValueId {
        let output = self.new_value(info);
        self.nodes.push(Node { op, inputs, output });
        output
    }
    /// Marks a value as a graph output.
    pub fn add_output(&mut self, name: &str, value: ValueId) {
        self.outputs.push(Port { name: name.into(), value });
    }
    /// The value's dims and dtype.
    pub fn info(&self, v: ValueId) -> &ValueInfo {
        &self.values[v.index()]
    }

    /// Where each value comes from (`None`: nowhere, which [`Graph::validate`] refuses).
    pub fn sources(&self) -> Vec<Option<Source>> {
        let mut src = vec![None; self.values.len()];
        for (i, p) in self.inputs.iter().enumerate() {
            if let Some(s) = src.get_mut(p.value.index()) {
                *s = Some(Source::Input(i));
            }
        }
        for (i, c) in self.constants.iter().enumerate() {
            if let Some(s) = src.get_mut(c.value.index()) {
                *s = Some(Source::Constant(i));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(s) = src.get_mut(n.output.index()) {
                *s = Some(Source::Node(i));
            }
        }
        src
    }

    /// Checks that the graph is whole and consistent: every value is defined once, before it is
    /// read; constants hold the right number of bytes; every node's output is what its op gives
    /// for its inputs. Loading a file and every pass end with this check.
    pub fn validate(&self) -> Result<()> {
        let err = |node: Option<usize>, reason: String| Error::InvalidGraph { node, reason };
        let n = self.values.len();
        for (i, v) in self.values.iter().enumerate() {
            if v.dims.len() > crate::shapes::MAX_RANK {
                return Err(err(
                    None,
                    format!("value %{i} has rank {}, above {}", v.dims.len(), crate::shapes::MAX_RANK),
                ));
            }
            if v.dims
                .iter()
                .try_fold(v.dtype.bytes(), |acc, &d| acc.checked_mul(d))
                .is_none_or(|b| b > isize::MAX as usize)
            {
                return Err(err(None, format!("value %{i} of dims {:?} is too large", v.dims)));
            }
        }
        let mut defined = vec![false; n];
        let mut define = |v: ValueId, node: Option<usize>, what: &str| -> Result<()> {
            match defined.get_mut(v.index()) {
                None => Err(err(node, format!("{what} {v} is not a value (the graph has {n})"))),
                Some(true) => Err(err(node, format!("{what} {v} is defined twice"))),
                Some(d) => {
                    *d = true;
                    Ok(())
                }
            }
        };
        for p in &self.inputs {
            define(p.value, None, &format!("input `{}`", p.name))?;
        }
        for c in &self.constants {
            define(c.value, None, &format!("constant `{}`", c.name))?;
            let want = self.values[c.value.index()].bytes();
            if c.data.len() != want {
                return Err(err(
                    None,
                    format!("constant `{}` holds {} bytes, its value needs {want}", c.name, c.data.len()),
                ));
            }
        }
        let mut ready = defined.clone();
        for (i, node) in self.nodes.iter().enumerate() {
            for v in &node.inputs {
                if !ready.get(v.index()).copied().unwrap_or(false) {
                    return Err(err(Some(i), format!("{} reads {v} before it is defined", node.op.name())));
                }
            }
            let hint =
                self.values.get(node.output.index()).ok_or_else(|| err(Some(i), "output out of range".into()))?;
            let ins: Vec<&ValueInfo> = node.inputs.iter().map(|v| &self.values[v.index()]).collect();
            let got = node.op.infer(&ins, hint).map_err(|r| err(Some(i), format!("{}: {r}", node.op.name())))?;
            if &got != hint {
                return Err(err(
                    Some(i),
                    format!(
                        "{} gives {:?} {}, the graph records {:?} {}",
                        node.op.name(),
                        got.dims,
                        got.dtype,
                        hint.dims,
                        hint.dtype
                    ),
                ));
            }
            match ready.get_mut(node.output.index()) {
                Some(r) if !*r => *r = true,
                _ => return Err(err(Some(i), format!("output {} is defined twice", node.output))),
            }
        }
        for p in &self.outputs {
            if !ready.get(p.value.index()).copied().unwrap_or(false) {
                return Err(err(None, format!("output `{}` ({}) is never defined", p.name, p.value)));
            }
        }
        Ok(())
    }
}
