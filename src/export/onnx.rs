//! ONNX export: a graph written as an ONNX model (IR version 8, opset 17), weights as
//! initializers. The protobuf wire format is written directly (a writer needs no `.proto`
//! compiler): only the fields of `onnx.proto` used here are encoded.

use super::ir::{Graph, Op, Step};
use crate::compat::prelude::*;
use crate::device::PoolWindows;
use crate::dtypes::{DType, Dtype};
use crate::error::{Error, Result};
use crate::ops::{BinaryFn, CmpFn, ReduceKind, UnaryFn};
#[cfg(feature = "std")]
use std::path::Path;

/// The ONNX opset the export targets.
pub const ONNX_OPSET: i64 = 17;

/// Protobuf wire encoding of one message.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn msg(&mut self, field: u32, m: &Pb) {
        self.bytes(field, &m.0);
    }
    fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// `TensorProto.DataType`.
fn onnx_dtype(d: DType) -> i64 {
    match d {
        DType::F32 => 1,
        DType::U8 => 2,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F16 => 10,
        DType::F64 => 11,
        DType::BF16 => 16,
    }
}

fn unsupported(what: String) -> Error {
    Error::Untraceable { op: "onnx", reason: what }
}

/// An attribute (`AttributeProto`).
enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
}

impl Attr {
    fn encode(&self) -> Pb {
        let mut a = Pb::default();
        match self {
            Attr::Int(name, v) => {
                a.str(1, name);
                a.int(3, *v);
                a.int(20, 2);
            }
            Attr::Ints(name, v) => {
                a.str(1, name);
                for x in v {
                    a.int(8, *x);
                }
                a.int(20, 7);
            }
            Attr::Float(name, v) => {
                a.str(1, name);
                a.float(2, *v);
                a.int(20, 1);
            }
        }
        a
    }
}

fn ints(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn value_info(name: &str, dtype: DType, dims: &[usize]) -> Pb {
    let mut shape = Pb::default();
    for &d in dims {
        let mut dim = Pb::default();
        dim.int(1, d as i64);
        shape.msg(1, &dim);
    }
    let mut tensor = Pb::default();
    tensor.int(1, onnx_dtype(dtype));
    tensor.msg(2, &shape);
    let mut ty = Pb::default();
    ty.msg(1, &tensor);
    let mut v = Pb::default();
    v.str(1, name);
    v.msg(2, &ty);
    v
}

struct Builder<'g> {
    g: &'g Graph,
    names: Vec<String>,
    nodes: Vec<Pb>,
    initializers: Vec<Pb>,
    fresh: usize,
}

impl Builder<'_> {
    fn tmp(&mut self) -> String {
        self.fresh += 1;
        format!("t{}", self.fresh)
    }
    fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr]) {
        let mut n = Pb::default();
        for i in inputs {
            n.str(1, i);
        }
        for o in outputs {
            n.str(2, o);
        }
        n.str(3, &format!("n{}", self.nodes.len()));
        n.str(4, op);
        for a in attrs {
            n.msg(5, &a.encode());
        }
        self.nodes.push(n);
    }
    /// `op(inputs)` into a fresh name.
    fn apply(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = self.tmp();
        self.node(op, inputs, &[&out], attrs);
        out
    }
    fn initializer(&mut self, name: &str, dtype: DType, dims: &[usize], data: &[u8]) {
        let mut t = Pb::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, onnx_dtype(dtype));
        t.str(8, name);
        t.bytes(9, data);
        self.initializers.push(t);
    }
    /// A scalar constant of `dtype`.
    fn scalar(&mut self, dtype: DType, v: f64) -> String {
        let mut bytes = Vec::new();
        match dtype {
            DType::F32 => (v as f32).put_le(&mut bytes),
            DType::F64 => v.put_le(&mut bytes),
            DType::F16 => half::f16::from_f64(v).put_le(&mut bytes),
            DType::BF16 => half::bf16::from_f64(v).put_le(&mut bytes),
            DType::I64 => (v as i64).put_le(&mut bytes),
            DType::I32 => (v as i32).put_le(&mut bytes),
            DType::U8 => (v as u8).put_le(&mut bytes),
            DType::Bool => (v != 0.0).put_le(&mut bytes),
        }
        let name = self.tmp();
        self.initializer(&name, dtype, &[], &bytes);
        name
    }
    /// A 1-D int64 constant (shapes, axes, indices).
    fn int64s(&mut self, v: &[i64]) -> String {
        let mut bytes = Vec::new();
        for x in v {
            x.put_le(&mut bytes);
        }
        let name = self.tmp();
        self.initializer(&name, DType::I64, &[v.len()], &bytes);
        name
    }
    fn reshape(&mut self, x: &str, dims: &[usize]) -> String {
        let shape = self.int64s(&ints(dims));
        self.apply("Reshape", &[x, &shape], &[])
    }
    fn unary(&mut self, f: &UnaryFn, x: &str, dtype: DType) -> Result<String> {
        let c = |b: &mut Self, v: f64| b.scalar(dtype, v);
        Ok(match f {
            UnaryFn::Neg => self.apply("Neg", &[x], &[]),
            UnaryFn::Abs => self.apply("Abs", &[x], &[]),
            UnaryFn::Exp => self.apply("Exp", &[x], &[]),
            UnaryFn::Ln => self.apply("Log", &[x], &[]),
            UnaryFn::Sqrt => self.apply("Sqrt", &[x], &[]),
            UnaryFn::Square => self.apply("Mul", &[x, x], &[]),
            UnaryFn::Powi { n } => {
                let p = c(self, *n as f64);
                self.apply("Pow", &[x, &p], &[])
            }
            UnaryFn::Powf { p } => {
                let p = c(self, *p);
                self.apply("Pow", &[x, &p], &[])
            }
            UnaryFn::Recip => self.apply("Reciprocal", &[x], &[]),
            UnaryFn::Sin => self.apply("Sin", &[x], &[]),
            UnaryFn::Cos => self.apply("Cos", &[x], &[]),
            UnaryFn::Tanh => self.apply("Tanh", &[x], &[]),
            UnaryFn::Sigmoid => self.apply("Sigmoid", &[x], &[]),
            UnaryFn::Relu => self.apply("Relu", &[x], &[]),
            UnaryFn::LeakyRelu { slope } => self.apply("LeakyRelu", &[x], &[Attr::Float("alpha", *slope as f32)]),
            UnaryFn::Erf => self.apply("Erf", &[x], &[]),
            UnaryFn::GeluExact => {
                // x/2 (1 + erf(x / sqrt 2)); ONNX's Gelu op needs opset 20
                let r = c(self, core::f64::consts::FRAC_1_SQRT_2);
                let s = self.apply("Mul", &[x, &r], &[]);
                let e = self.apply("Erf", &[&s], &[]);
                let one = c(self, 1.0);
                let p = self.apply("Add", &[&e, &one], &[]);
                let h = c(self, 0.5);
                let xh = self.apply("Mul", &[x, &h], &[]);
                self.apply("Mul", &[&xh, &p], &[])
            }
            UnaryFn::GeluTanh => {
                // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                let x3 = {
                    let x2 = self.apply("Mul", &[x, x], &[]);
                    self.apply("Mul", &[&x2, x], &[])
                };
                let k = c(self, 0.044_715);
                let kx3 = self.apply("Mul", &[&x3, &k], &[]);
                let inner = self.apply("Add", &[x, &kx3], &[]);
                let s = c(self, 0.797_884_560_802_865_4);
                let u = self.apply("Mul", &[&inner, &s], &[]);
                let t = self.apply("Tanh", &[&u], &[]);
                let one = c(self, 1.0);
                let p = self.apply("Add", &[&t, &one], &[]);
                let h = c(self, 0.5);
                let xh = self.apply("Mul", &[x, &h], &[]);
                self.apply("Mul", &[&xh, &p], &[])
            }
            UnaryFn::Silu => {
                let s = self.apply("Sigmoid", &[x], &[]);
                self.apply("Mul", &[x, &s], &[])
            }
            UnaryFn::Softplus { beta, threshold } => {
                // linear above the threshold, as PyTorch
                let b = c(self, *beta);
                let bx = self.apply("Mul", &[x, &b], &[]);
                let e = self.apply("Exp", &[&bx], &[]);
                let one = c(self, 1.0);
                let p = self.apply("Add", &[&e, &one], &[]);
                let l = self.apply("Log", &[&p], &[]);
                let soft = self.apply("Div", &[&l, &b], &[]);
                let t = c(self, *threshold);
                let above = self.apply("Greater", &[&bx, &t], &[]);
                self.apply("Where", &[&above, x, &soft], &[])
            }
            UnaryFn::Clamp { lo, hi } => {
                let (l, h) = (c(self, *lo), c(self, *hi));
                self.apply("Clip", &[x, &l, &h], &[])
            }
            UnaryFn::AddScalar { c: v } => {
                let k = c(self, *v);
                self.apply("Add", &[x, &k], &[])
            }
            UnaryFn::MulScalar { c: v } => {
                let k = c(self, *v);
                self.apply("Mul", &[x, &k], &[])
            }
            UnaryFn::DivScalar { c: v } => {
                let k = c(self, *v);
                self.apply("Div", &[x, &k], &[])
            }
            UnaryFn::RsubScalar { c: v } => {
                let k = c(self, *v);
                self.apply("Sub", &[&k, x], &[])
            }
            UnaryFn::FiniteOrZero => {
                // x - x is 0 exactly where x is finite
                let d = self.apply("Sub", &[x, x], &[]);
                let zero = c(self, 0.0);
                let finite = self.apply("Equal", &[&d, &zero], &[]);
                self.apply("Where", &[&finite, x, &zero], &[])
            }
        })
    }
    fn binary(&mut self, f: BinaryFn, a: &str, b: &str) -> String {
        let op = match f {
            BinaryFn::Add => "Add",
            BinaryFn::Sub => "Sub",
            BinaryFn::Mul => "Mul",
            BinaryFn::Div => "Div",
            BinaryFn::Maximum => "Max",
            BinaryFn::Minimum => "Min",
            BinaryFn::Pow => "Pow",
        };
        self.apply(op, &[a, b], &[])
    }

    /// Emits the nodes of graph node `i`, whose output gets the name `out`.
    fn emit(&mut self, i: usize) -> Result<String> {
        let g = self.g;
        let node = &g.nodes[i];
        let info = g.info(node.output);
        let dtype = info.dtype;
        let ins: Vec<String> = node.inputs.iter().map(|v| self.names[v.index()].clone()).collect();
        let x = ins.first().cloned().unwrap_or_default();
        let in_dims = |k: usize| g.info(node.inputs[k]).dims.clone();
        Ok(match &node.op {
            Op::Unary(f) => self.unary(f, &x, dtype)?,
            Op::Binary(f) => self.binary(*f, &ins[0], &ins[1]),
            Op::Compare(f) => match f {
                CmpFn::EqOp => self.apply("Equal", &[&ins[0], &ins[1]], &[]),
                CmpFn::NeOp => {
                    let e = self.apply("Equal", &[&ins[0], &ins[1]], &[]);
                    self.apply("Not", &[&e], &[])
                }
                CmpFn::LtOp => self.apply("Less", &[&ins[0], &ins[1]], &[]),
                CmpFn::LeOp => self.apply("LessOrEqual", &[&ins[0], &ins[1]], &[]),
                CmpFn::GtOp => self.apply("Greater", &[&ins[0], &ins[1]], &[]),
                CmpFn::GeOp => self.apply("GreaterOrEqual", &[&ins[0], &ins[1]], &[]),
            },
            Op::Where => self.apply("Where", &[&ins[0], &ins[1], &ins[2]], &[]),
            Op::Cast => self.apply("Cast", &[&x], &[Attr::Int("to", onnx_dtype(dtype))]),
            Op::Reduce { kind, axes } => match kind {
                ReduceKind::Sum => {
                    let a = self.int64s(&ints(axes));
                    self.apply("ReduceSum", &[&x, &a], &[Attr::Int("keepdims", 0)])
                }
                ReduceKind::Max => {
                    self.apply("ReduceMax", &[&x], &[Attr::Ints("axes", ints(axes)), Attr::Int("keepdims", 0)])
                }
                ReduceKind::Min => {
                    self.apply("ReduceMin", &[&x], &[Attr::Ints("axes", ints(axes)), Attr::Int("keepdims", 0)])
                }
            },
            Op::MatMul => self.apply("MatMul", &[&ins[0], &ins[1]], &[]),
            Op::Reshape => self.reshape(&x, &info.dims),
            Op::Permute { perm } => self.apply("Transpose", &[&x], &[Attr::Ints("perm", ints(perm))]),
            Op::Broadcast { axes } => {
                let a = self.int64s(&ints(axes));
                let u = self.apply("Unsqueeze", &[&x, &a], &[]);
                let shape = self.int64s(&ints(&info.dims));
                self.apply("Expand", &[&u, &shape], &[])
            }
            Op::Narrow { axis, start, step } => {
                let len = info.dims[*axis];
                let end = if len == 0 { *start } else { start + (len - 1) * step + 1 };
                let (s, e, a, st) = (
                    self.int64s(&[*start as i64]),
                    self.int64s(&[end as i64]),
                    self.int64s(&[*axis as i64]),
                    self.int64s(&[*step as i64]),
                );
                self.apply("Slice", &[&x, &s, &e, &a, &st], &[])
            }
            Op::Select { axis, index } => {
                let idx = self.scalar(DType::I64, *index as f64);
                self.apply("Gather", &[&x, &idx], &[Attr::Int("axis", *axis as i64)])
            }
            Op::Concat { axis } => {
                let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                self.apply("Concat", &refs, &[Attr::Int("axis", *axis as i64)])
            }
            Op::Stack => {
                let zero = self.int64s(&[0]);
                let parts: Vec<String> = ins.iter().map(|s| self.apply("Unsqueeze", &[s, &zero], &[])).collect();
                let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
                self.apply("Concat", &refs, &[Attr::Int("axis", 0)])
            }
            Op::SoftmaxRows { log } => {
                self.apply(if *log { "LogSoftmax" } else { "Softmax" }, &[&x], &[Attr::Int("axis", -1)])
            }
            Op::Conv { geometry: gm } | Op::ConvTranspose { geometry: gm } | Op::FusedConv { geometry: gm, .. } => {
                let transposed = matches!(node.op, Op::ConvTranspose { .. });
                let (xin, yout) = if transposed {
                    (
                        [gm.batch, gm.out_channels, gm.output[0], gm.output[1]],
                        [gm.batch, gm.in_channels, gm.input[0], gm.input[1]],
                    )
                } else {
                    (
                        [gm.batch, gm.in_channels, gm.input[0], gm.input[1]],
                        [gm.batch, gm.out_channels, gm.output[0], gm.output[1]],
                    )
                };
                let x4 = if in_dims(0) == xin { x.clone() } else { self.reshape(&x, &xin) };
                let mut attrs = vec![
                    Attr::Ints("kernel_shape", ints(&gm.kernel)),
                    Attr::Ints("strides", ints(&gm.stride)),
                    Attr::Ints("pads", ints(&[gm.padding[0], gm.padding[1], gm.padding[0], gm.padding[1]])),
                    Attr::Ints("dilations", ints(&gm.dilation)),
                    Attr::Int("group", gm.groups as i64),
                ];
                let y = if transposed {
                    // ONNX sizes a transposed convolution from its input; the rest is output padding
                    let pad: Vec<i64> = (0..2)
                        .map(|a| {
                            let natural = gm.stride[a] * (gm.output[a] - 1) + gm.dilation[a] * (gm.kernel[a] - 1) + 1;
                            gm.input[a] as i64 + 2 * gm.padding[a] as i64 - natural as i64
                        })
                        .collect();
                    attrs.push(Attr::Ints("output_padding", pad));
                    self.apply("ConvTranspose", &[&x4, &ins[1]], &attrs)
                } else if let Op::FusedConv { bias, residual, activation, .. } = &node.op {
                    let mut args = vec![x4.as_str(), ins[1].as_str()];
                    if *bias {
                        args.push(&ins[2]);
                    }
                    let mut y = self.apply("Conv", &args, &attrs);
                    if *residual {
                        let z = ins.last().expect("arity checked");
                        let z4 = if in_dims(ins.len() - 1) == yout { z.clone() } else { self.reshape(z, &yout) };
                        y = self.apply("Add", &[&y, &z4], &[]);
                    }
                    match activation {
                        Some(f) => self.unary(f, &y, dtype)?,
                        None => y,
                    }
                } else {
                    self.apply("Conv", &[&x4, &ins[1]], &attrs)
                };
                if info.dims == yout { y } else { self.reshape(&y, &info.dims) }
            }
            Op::MaxPool { geometry: p } | Op::AvgPool { geometry: p, .. } => {
                let x4 = self.reshape(&x, &[1, p.planes, p.input[0], p.input[1]]);
                let y = match (&node.op, p.windows) {
                    (Op::MaxPool { .. }, PoolWindows::Sliding { kernel, stride, padding, dilation }) => self.apply(
                        "MaxPool",
                        &[&x4],
                        &[
                            Attr::Ints("kernel_shape", ints(&kernel)),
                            Attr::Ints("strides", ints(&stride)),
                            Attr::Ints("pads", ints(&[padding[0], padding[1], padding[0], padding[1]])),
                            Attr::Ints("dilations", ints(&dilation)),
                        ],
                    ),
                    (
                        Op::AvgPool { count_include_pad, .. },
                        PoolWindows::Sliding { kernel, stride, padding, dilation },
                    ) => {
                        if dilation != [1, 1] {
                            return Err(unsupported("average pooling with dilation needs ONNX opset 19".into()));
                        }
                        self.apply(
                            "AveragePool",
                            &[&x4],
                            &[
                                Attr::Ints("kernel_shape", ints(&kernel)),
                                Attr::Ints("strides", ints(&stride)),
                                Attr::Ints("pads", ints(&[padding[0], padding[1], padding[0], padding[1]])),
                                Attr::Int("count_include_pad", *count_include_pad as i64),
                            ],
                        )
                    }
                    (Op::AvgPool { .. }, PoolWindows::Adaptive) if p.output == [1, 1] => {
                        self.apply("GlobalAveragePool", &[&x4], &[])
                    }
                    (Op::AvgPool { .. }, PoolWindows::Adaptive)
                        if p.input[0].is_multiple_of(p.output[0]) && p.input[1].is_multiple_of(p.output[1]) =>
                    {
                        let k = [p.input[0] / p.output[0], p.input[1] / p.output[1]];
                        self.apply(
                            "AveragePool",
                            &[&x4],
                            &[Attr::Ints("kernel_shape", ints(&k)), Attr::Ints("strides", ints(&k))],
                        )
                    }
                    (Op::AvgPool { .. }, PoolWindows::Adaptive) => self.adaptive_avg_pool(&x4, p),
                    _ => return Err(unsupported(format!("{} with these windows has no ONNX form", node.op.name()))),
                };
                self.reshape(&y, &info.dims)
            }
            Op::Gather { dims, index } => {
                let x3 = self.reshape(&x, dims);
                let (l, idx_info) = (index, g.info(node.inputs[1]));
                let s = l.strides.as_slice();
                let idx = if idx_info.dtype == DType::I64 {
                    ins[1].clone()
                } else {
                    self.apply("Cast", &[&ins[1]], &[Attr::Int("to", 7)])
                };
                let y = if s[0] == 0 && s[2] == 0 && s[1] == 1 && l.offset == 0 && idx_info.numel() == l.dims[1] {
                    // one index per position along the axis, shared by every row (embedding, index_select)
                    let flat = self.reshape(&idx, &[l.dims[1]]);
                    self.apply("Gather", &[&x3, &flat], &[Attr::Int("axis", 1)])
                } else if l.is_contiguous() && l.offset == 0 && idx_info.numel() == l.numel() {
                    let i3 = self.reshape(&idx, l.dims.as_slice());
                    self.apply("GatherElements", &[&x3, &i3], &[Attr::Int("axis", 1)])
                } else if let Some(c) = g.constants.iter().find(|c| c.value == node.inputs[1]) {
                    // a constant index read through a view: the view's elements as an int64 constant
                    let bytes: Vec<u8> = l
                        .offsets()
                        .flat_map(|o| {
                            let n = idx_info.dtype.bytes();
                            let raw = &c.data[o * n..(o + 1) * n];
                            let v: i64 = match idx_info.dtype {
                                DType::I64 => <i64 as Dtype>::from_le(raw),
                                DType::I32 => <i32 as Dtype>::from_le(raw) as i64,
                                _ => <u8 as Dtype>::from_le(raw) as i64,
                            };
                            v.to_le_bytes()
                        })
                        .collect();
                    let name = self.tmp();
                    self.initializer(&name, DType::I64, l.dims.as_slice(), &bytes);
                    self.apply("GatherElements", &[&x3, &name], &[Attr::Int("axis", 1)])
                } else {
                    return Err(unsupported("a gather whose index is a computed strided view".into()));
                };
                self.reshape(&y, &info.dims)
            }
            Op::Norm { eps, center, weight, bias } => {
                let row = *in_dims(0).last().expect("rank >= 1");
                let w = if *weight { ins[1].clone() } else { self.ones(dtype, row) };
                if *center {
                    let mut args = vec![x.as_str(), w.as_str()];
                    if *bias {
                        args.push(&ins[1 + *weight as usize]);
                    }
                    let args: Vec<String> = args.into_iter().map(String::from).collect();
                    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
                    self.apply(
                        "LayerNormalization",
                        &refs,
                        &[Attr::Int("axis", -1), Attr::Float("epsilon", *eps as f32)],
                    )
                } else {
                    let sq = self.apply("Mul", &[&x, &x], &[]);
                    let ms =
                        self.apply("ReduceMean", &[&sq], &[Attr::Ints("axes", vec![-1]), Attr::Int("keepdims", 1)]);
                    let e = self.scalar(dtype, *eps);
                    let v = self.apply("Add", &[&ms, &e], &[]);
                    let r = self.apply("Sqrt", &[&v], &[]);
                    let n = self.apply("Div", &[&x, &r], &[]);
                    let y = self.apply("Mul", &[&n, &w], &[]);
                    if *bias { self.apply("Add", &[&y, &ins[1 + *weight as usize]], &[]) } else { y }
                }
            }
            Op::FusedElementwise { steps } => {
                let mut stack: Vec<String> = Vec::new();
                for s in steps {
                    match s {
                        Step::Input(k) => stack.push(ins[*k as usize].clone()),
                        Step::Unary(f) => {
                            let a = stack.pop().expect("validated program");
                            stack.push(self.unary(f, &a, dtype)?);
                        }
                        Step::Binary(f) => {
                            let b = stack.pop().expect("validated program");
                            let a = stack.pop().expect("validated program");
                            stack.push(self.binary(*f, &a, &b));
                        }
                    }
                }
                stack.pop().expect("validated program")
            }
            Op::FusedLinear { bias, activation } => {
                let wt = self.apply("Transpose", &[&ins[1]], &[Attr::Ints("perm", vec![1, 0])]);
                let mut y = self.apply("MatMul", &[&x, &wt], &[]);
                if *bias {
                    y = self.apply("Add", &[&y, &ins[2]], &[]);
                }
                match activation {
                    Some(f) => self.unary(f, &y, dtype)?,
                    None => y,
                }
            }
        })
    }

    /// Adaptive average pooling whose windows do not tile the input (opset 17 has no op for
    /// it): the mean of each window, sliced out, then joined row by row.
    fn adaptive_avg_pool(&mut self, x4: &str, p: &crate::device::PoolGeometry) -> String {
        let axes = self.int64s(&[2, 3]);
        let mut rows = Vec::with_capacity(p.output[0]);
        for i in 0..p.output[0] {
            let mut cells = Vec::with_capacity(p.output[1]);
            for j in 0..p.output[1] {
                let (h0, hn, _) = p.window(0, i);
                let (w0, wn, _) = p.window(1, j);
                let starts = self.int64s(&[h0 as i64, w0 as i64]);
                let ends = self.int64s(&[h0 as i64 + hn as i64, w0 as i64 + wn as i64]);
                let window = self.apply("Slice", &[x4, &starts, &ends, &axes], &[]);
                cells.push(self.apply(
                    "ReduceMean",
                    &[&window],
                    &[Attr::Ints("axes", vec![2, 3]), Attr::Int("keepdims", 1)],
                ));
            }
            let refs: Vec<&str> = cells.iter().map(|s| s.as_str()).collect();
            rows.push(self.apply("Concat", &refs, &[Attr::Int("axis", 3)]));
        }
        let refs: Vec<&str> = rows.iter().map(|s| s.as_str()).collect();
        self.apply("Concat", &refs, &[Attr::Int("axis", 2)])
    }

    fn ones(&mut self, dtype: DType, n: usize) -> String {
        let one = self.scalar(dtype, 1.0);
        let shape = self.int64s(&[n as i64]);
        self.apply("Expand", &[&one, &shape], &[])
    }
}

impl Graph {
    /// The graph as an ONNX model (IR version 8, opset [`ONNX_OPSET`]), constants as
    /// initializers. `Err` for an op with no ONNX form in that opset.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn;
    /// let dev = Cpu::seeded(0);
    /// let model: (nn::Linear<3, 2>, nn::ReLU) = BuildOn::build(&dev);
    /// let g = tensile::export::trace(&model, &dev.zeros::<Rank2<1, 3>, f32>()).unwrap();
    /// let bytes = g.to_onnx().unwrap();
    /// assert!(bytes.windows(6).any(|w| w == b"MatMul"));
    /// ```
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let mut b = Builder {
            g: self,
            names: vec![String::new(); self.values.len()],
            nodes: Vec::new(),
            initializers: Vec::new(),
            fresh: 0,
        };
        let mut graph = Pb::default();
        let mut used = crate::compat::HashSet::new();
        for p in &self.inputs {
            b.names[p.value.index()] = p.name.clone();
            used.insert(p.name.clone());
            let info = self.info(p.value);
            graph.msg(11, &value_info(&p.name, info.dtype, &info.dims));
        }
        for c in &self.constants {
            let name = if used.insert(c.name.clone()) { c.name.clone() } else { format!("v{}", c.value.0) };
            b.names[c.value.index()] = name.clone();
            let info = self.info(c.value);
            b.initializer(&name, info.dtype, &info.dims, &c.data);
        }
        for i in 0..self.nodes.len() {
            let out = b.emit(i)?;
            b.names[self.nodes[i].output.index()] = out;
        }
        for p in &self.outputs {
            let src = b.names[p.value.index()].clone();
            b.node("Identity", &[&src], &[&p.name], &[]);
            let info = self.info(p.value);
            graph.msg(12, &value_info(&p.name, info.dtype, &info.dims));
        }
        for n in &b.nodes {
            graph.msg(1, n);
        }
        graph.str(2, "tensile");
        for t in &b.initializers {
            graph.msg(5, t);
        }
        let mut opset = Pb::default();
        opset.str(1, "");
        opset.int(2, ONNX_OPSET);
        let mut model = Pb::default();
        model.int(1, 8);
        model.str(2, "tensile");
        model.str(3, env!("CARGO_PKG_VERSION"));
        model.msg(7, &graph);
        model.msg(8, &opset);
        Ok(model.0)
    }

    /// Writes [`Graph::to_onnx`] to `path` (through a temporary file and a rename).
    #[cfg(feature = "std")]
    pub fn save_onnx(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomically(path.as_ref(), &self.to_onnx()?)
    }
}
