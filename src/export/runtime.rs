//! Runs a [`Graph`] on the CPU with the same kernels as eager mode, no model types and no tape.
//!
//! Values are buffers with a layout, as tensors are: view nodes (reshape, permute, broadcast,
//! narrow, select) only change the layout. A value's buffer is released after its last reader,
//! and a reader that is the last one may write its output into it (as eager ops do on a uniquely
//! owned input), so memory follows the graph's live set.

use super::ir::{Graph, Node, Op, Step, ValueInfo};
use crate::compat::prelude::*;
use crate::device::cpu::{BlockedFilters, CpuStorage};
use crate::device::{Cpu, Device, Layout};
use crate::dtypes::{DType, Dtype, Float, IndexDtype};
use crate::error::{Error, Result};
use crate::ops::{BinaryOp, BinaryVisitor, CmpOp, CmpVisitor, UnaryOp, UnaryVisitor};
use crate::shapes::{Dims, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;
use half::{bf16, f16};

/// A buffer of one of the eight element types.
#[derive(Clone)]
enum Data {
    F32(Arc<CpuStorage<f32>>),
    F64(Arc<CpuStorage<f64>>),
    F16(Arc<CpuStorage<f16>>),
    BF16(Arc<CpuStorage<bf16>>),
    I64(Arc<CpuStorage<i64>>),
    I32(Arc<CpuStorage<i32>>),
    U8(Arc<CpuStorage<u8>>),
    Bool(Arc<CpuStorage<bool>>),
}

/// An element type a [`Value`] can hold (every [`Dtype`]).
pub trait Element: Dtype {
    #[doc(hidden)]
    fn wrap(s: Arc<CpuStorage<Self>>) -> DataRef;
    #[doc(hidden)]
    fn get(d: &DataRef) -> Option<&Arc<CpuStorage<Self>>>;
}

/// A buffer of any element type (opaque; used by [`Element`]).
#[doc(hidden)]
#[derive(Clone)]
pub struct DataRef(Data);

macro_rules! element {
    ($($t:ty => $v:ident),*) => {$(
        impl Element for $t {
            fn wrap(s: Arc<CpuStorage<Self>>) -> DataRef {
                DataRef(Data::$v(s))
            }
            fn get(d: &DataRef) -> Option<&Arc<CpuStorage<Self>>> {
                match &d.0 {
                    Data::$v(s) => Some(s),
                    _ => None,
                }
            }
        }
    )*};
}
element!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, i64 => I64, i32 => I32, u8 => U8, bool => Bool);

/// Runs `$body` with `$E` the Rust type of the dtype `$dtype` names, among the `[tag => type]`
/// listed; `$fallback` (with `$other` bound to the dtype) for the rest.
macro_rules! dispatch {
    ($dtype:expr, $E:ident => $body:expr, [$($tag:ident => $t:ty),*], $other:ident => $fallback:expr) => {
        match $dtype {
            $(DType::$tag => {
                type $E = $t;
                $body
            })*
            #[allow(unreachable_patterns)]
            $other => $fallback,
        }
    };
}

/// Runs `$body` with `$E` the float type of `$dtype` (an `Err` for other dtypes).
macro_rules! with_float {
    ($dtype:expr, $E:ident => $body:expr) => {
        dispatch!($dtype, $E => $body, [F32 => f32, F64 => f64, F16 => f16, BF16 => bf16],
            other => Err(invalid(format!("a float op got a {other} value"))))
    };
}

/// Runs `$body` with `$E` the type of `$dtype`.
macro_rules! with_any {
    ($dtype:expr, $E:ident => $body:expr) => {
        dispatch!($dtype, $E => $body,
            [F32 => f32, F64 => f64, F16 => f16, BF16 => bf16, I64 => i64, I32 => i32, U8 => u8, Bool => bool],
            other => unreachable!("every dtype is listed, {other} too"))
    };
}

fn invalid(reason: String) -> Error {
    Error::InvalidGraph { node: None, reason }
}

/// A graph input or output: a buffer with its dims and dtype.
///
/// ```
/// use tensile::export::Value;
/// use tensile::dtypes::DType;
/// let v = Value::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!((v.dims(), v.dtype()), (&[2, 2][..], DType::F32));
/// assert_eq!(v.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
/// assert!(v.to_vec::<f64>().is_err());
/// assert!(Value::from_vec(&[3], vec![1.0f32]).is_err());
/// ```
#[derive(Clone)]
pub struct Value {
    data: DataRef,
    layout: Layout,
    dtype: DType,
}

impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Value({}{:?})", self.dtype, self.dims())
    }
}

impl Value {
    fn new<E: Element>(s: Arc<CpuStorage<E>>, layout: Layout) -> Self {
        Self { data: E::wrap(s), layout, dtype: E::DTYPE }
    }
    fn storage<E: Element>(&self) -> Result<&Arc<CpuStorage<E>>> {
        E::get(&self.data).ok_or_else(|| invalid(format!("expected a {} value, found {}", E::DTYPE, self.dtype)))
    }
    /// A value holding `data` with `dims`; `Err` when the lengths differ.
    pub fn from_vec<E: Element>(dims: &[usize], data: Vec<E>) -> Result<Self> {
        let n: usize = dims.iter().product();
        if n != data.len() || dims.len() > crate::shapes::MAX_RANK {
            return Err(Error::DataLength { op: "Value::from_vec", expected: n, found: data.len() });
        }
        let dev = Cpu::default();
        Ok(Self::new(Arc::new(dev.upload(data)), Layout::contiguous(Dims::from_slice(dims))))
    }
    /// The tensor's value (no copy).
    pub fn from_tensor<S: Shape, E: Element, T>(t: &Tensor<S, E, Cpu, T>) -> Self {
        Self::new(t.data.clone(), t.layout())
    }
    /// The dims.
    pub fn dims(&self) -> &[usize] {
        self.layout.dims.as_slice()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The elements in row-major order; `Err` when `E` is not the value's dtype.
    pub fn to_vec<E: Element>(&self) -> Result<Vec<E>> {
        let s = self.storage::<E>()?;
        Ok(Cpu::default().download(s, &self.layout))
    }
    /// The elements as little-endian bytes (as a graph's constants hold them).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.layout.numel() * self.dtype.bytes());
        with_any!(self.dtype, E => {
            for v in self.to_vec::<E>().expect("the value's own dtype") {
                v.put_le(&mut out);
            }
        });
        out
    }
    /// The value as a tensor of shape `S`; `Err` when the dtype or the dims differ.
    pub fn to_tensor<S: Shape, E: Element>(&self, dev: &Cpu) -> Result<Tensor<S, E, Cpu>> {
        let shape = S::from_dims(self.dims()).ok_or_else(|| Error::ShapeMismatch {
            op: "Value::to_tensor",
            lhs: self.dims().to_vec(),
            rhs: S::STATIC_DIMS.iter().map(|d| d.unwrap_or(0)).collect(),
        })?;
        let data = self.to_vec::<E>()?;
        Ok(Tensor::from_storage(dev.clone(), dev.upload(data), shape))
    }
}

/// A graph ready to run: constants decoded, and for each node which inputs it reads last.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// use tensile::export::{Runtime, Value};
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<2, 2>, nn::Sigmoid) = BuildOn::build(&dev);
/// let x = dev.tensor([[0.5f32, -1.0]]);
/// let rt = Runtime::new(&tensile::export::trace(&model, &x).unwrap()).unwrap();
/// let out = rt.run(&[Value::from_vec(&[1, 2], vec![0.5f32, -1.0]).unwrap()]).unwrap();
/// assert_eq!(out[0].to_vec::<f32>().unwrap(), model.forward(x).to_vec());
/// // a wrong input is an `Err`
/// assert!(rt.run(&[Value::from_vec(&[2, 1], vec![0.5f32, -1.0]).unwrap()]).is_err());
/// ```
pub struct Runtime {
    graph: Graph,
    constants: Vec<Value>,
    /// Per node, per input: whether this is the value's last read (so its buffer may be reused).
    last_read: Vec<Vec<bool>>,
    /// Per node: a convolution's constant weights packed once for its kernel, where it reads
    /// them packed (packed on every run, 512x512x3x3 weights cost more than the kernel gains:
    /// 2x slower at batch 1).
    packed: Vec<Option<BlockedFilters>>,
    dev: Cpu,
}

impl Runtime {
    /// Checks `graph` and prepares it; `Err` when it is not consistent.
    pub fn new(graph: &Graph) -> Result<Self> {
        graph.validate()?;
        let dev = Cpu::default();
        let mut constants = graph
            .constants
            .iter()
            .map(|c| {
                let info = graph.info(c.value);
                with_any!(info.dtype, E => Ok::<Value, Error>(decode::<E>(&dev, info, &c.data)))
            })
            .collect::<Result<Vec<_>>>()?;
        // A linear layer multiplies by its `[n, k]` weight's transpose, which `gemm` reads
        // strided at about half speed (the digits CNN's 256->128 layer at batch 32: 30-38 us
        // against 14-19 us row-major). A weight read by nothing else is held transposed once
        // here: the same logical value, column-major, so the product's operand is row-major.
        let mut only_linear_weight = vec![true; graph.values.len()];
        for n in &graph.nodes {
            for (k, v) in n.inputs.iter().enumerate() {
                only_linear_weight[v.index()] &= matches!(n.op, Op::FusedLinear { .. }) && k == 1;
            }
        }
        for p in &graph.outputs {
            only_linear_weight[p.value.index()] = false;
        }
        for (c, v) in graph.constants.iter().zip(&mut constants) {
            if only_linear_weight[c.value.index()] && v.dims().len() == 2 {
                *v = with_float!(v.dtype, E => column_major::<E>(&dev, v))?;
            }
        }
        // A value is released after its last reader unless it is a graph output or a constant.
        let mut keep = vec![false; graph.values.len()];
        for p in &graph.outputs {
            keep[p.value.index()] = true;
        }
        for c in &graph.constants {
            keep[c.value.index()] = true;
        }
        let mut last_node = vec![usize::MAX; graph.values.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            for v in &n.inputs {
                last_node[v.index()] = i;
            }
        }
        let last_read = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.inputs
                    .iter()
                    .enumerate()
                    .map(|(k, v)| !keep[v.index()] && last_node[v.index()] == i && !n.inputs[k + 1..].contains(v))
                    .collect()
            })
            .collect();
        let mut constant_of = vec![None; graph.values.len()];
        for (c, v) in graph.constants.iter().zip(&constants) {
            constant_of[c.value.index()] = Some(v);
        }
        let packed = graph
            .nodes
            .iter()
            .map(|n| match (&n.op, n.inputs.get(1).and_then(|w| constant_of[w.index()])) {
                (Op::Conv { geometry } | Op::FusedConv { geometry, .. }, Some(w)) if w.dtype == DType::F32 => {
                    Ok(dev.conv2d_packed_filters(&*whole::<f32>(&dev, w)?, geometry))
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { graph: graph.clone(), constants, last_read, packed, dev })
    }

    /// The graph this runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The constants, decoded, in [`Graph::constants`] order.
    pub(crate) fn constant_values(&self) -> &[Value] {
        &self.constants
    }

    /// Runs one node of any graph on these inputs (constant folding).
    pub(crate) fn exec_node(&self, node: &Node, ins: Vec<Value>) -> Result<Value> {
        let out = self.graph.info(node.output).clone();
        self.exec(node, ins, &out, None)
    }

    /// Runs the graph on `inputs` (in [`Graph::inputs`] order) and returns its outputs. `Err`
    /// when an input's dims or dtype differ from the graph's, or an index is out of range.
    pub fn run(&self, inputs: &[Value]) -> Result<Vec<Value>> {
        self.run_observed(inputs, |_, _| {})
    }

    /// Runs the graph as [`Runtime::run`] does and times each node: `(node index, op name,
    /// seconds)` in run order, beside the outputs. View nodes (reshape aside) take no time.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn;
    /// use tensile::export::{Runtime, Value};
    /// let dev = Cpu::seeded(0);
    /// let model: (nn::Linear<3, 4>, nn::ReLU) = BuildOn::build(&dev);
    /// let x: Tensor<Rank2<2, 3>, f32, Cpu> = dev.randn();
    /// let rt = Runtime::new(&tensile::export::optimize(&tensile::export::trace(&model, &x).unwrap()).unwrap()).unwrap();
    /// let (out, times) = rt.profile(&[Value::from_tensor(&x)]).unwrap();
    /// assert_eq!(out[0].dims(), &[2, 4]);
    /// assert_eq!(times.len(), rt.graph().nodes.len());
    /// assert_eq!(times[0].1, "linear");
    /// ```
    #[cfg(feature = "std")]
    pub fn profile(&self, inputs: &[Value]) -> Result<(Vec<Value>, Vec<(usize, String, f64)>)> {
        let mut times = Vec::with_capacity(self.graph.nodes.len());
        let mut start = std::time::Instant::now();
        let out = self.run_observed(inputs, |i, node| {
            let now = std::time::Instant::now();
            times.push((i, node.op.name(), (now - start).as_secs_f64()));
            start = now;
        })?;
        Ok((out, times))
    }

    /// [`Runtime::run`], calling `done(index, node)` after each node.
    fn run_observed(&self, inputs: &[Value], done: impl FnMut(usize, &Node) + Send) -> Result<Vec<Value>> {
        crate::par::on_pool(|| self.run_nodes(inputs, done))
    }

    fn run_nodes(&self, inputs: &[Value], mut done: impl FnMut(usize, &Node)) -> Result<Vec<Value>> {
        let g = &self.graph;
        if inputs.len() != g.inputs.len() {
            return Err(Error::InvalidSize {
                op: "Runtime::run",
                reason: format!("the graph takes {} inputs, {} were given", g.inputs.len(), inputs.len()),
            });
        }
        let mut slots: Vec<Option<Value>> = vec![None; g.values.len()];
        for (p, v) in g.inputs.iter().zip(inputs) {
            let want = g.info(p.value);
            if v.dims() != want.dims.as_slice() {
                return Err(Error::ShapeMismatch {
                    op: "Runtime::run",
                    lhs: want.dims.clone(),
                    rhs: v.dims().to_vec(),
                });
            }
            if v.dtype != want.dtype {
                return Err(Error::WrongDtype {
                    key: p.name.clone(),
                    expected: want.dtype.name(),
                    found: v.dtype.name().into(),
                });
            }
            slots[p.value.index()] = Some(v.clone());
        }
        for (c, v) in g.constants.iter().zip(&self.constants) {
            slots[c.value.index()] = Some(v.clone());
        }
        for (i, node) in g.nodes.iter().enumerate() {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for (k, v) in node.inputs.iter().enumerate() {
                let slot = &mut slots[v.index()];
                let value = if self.last_read[i][k] { slot.take() } else { slot.clone() };
                ins.push(value.ok_or_else(|| invalid(format!("node {i} reads {v}, which holds nothing")))?);
            }
            let out = self.exec(node, ins, g.info(node.output), self.packed[i].as_ref()).map_err(|e| match e {
                Error::InvalidGraph { node: None, reason } => Error::InvalidGraph { node: Some(i), reason },
                other => other,
            })?;
            slots[node.output.index()] = Some(out);
            done(i, node);
        }
        g.outputs
            .iter()
            .map(|p| {
                slots[p.value.index()].clone().ok_or_else(|| invalid(format!("output `{}` holds nothing", p.name)))
            })
            .collect()
    }

    /// Runs a one-input graph on a tensor and returns its first output.
    pub fn run_one<S: Shape, E: Element, T>(&self, x: &Tensor<S, E, Cpu, T>) -> Result<Value> {
        let mut out = self.run(&[Value::from_tensor(x)])?;
        if out.is_empty() {
            return Err(invalid("the graph has no outputs".into()));
        }
        Ok(out.swap_remove(0))
    }

    /// Runs `node` on `ins`; `packed`: its weights packed for a convolution kernel.
    fn exec(&self, node: &Node, ins: Vec<Value>, out: &ValueInfo, packed: Option<&BlockedFilters>) -> Result<Value> {
        let dev = &self.dev;
        let out_layout = Layout::contiguous(Dims::from_slice(&out.dims));
        // The dtype the kernel is chosen by: the values' (the condition of `where` is bool).
        let by = if node.op == Op::Where { 1 } else { 0 };
        let dtype = ins.get(by).map(|v| v.dtype).unwrap_or(out.dtype);
        match &node.op {
            Op::Reshape => {
                let x = &ins[0];
                with_any!(dtype, E => {
                    let s = dev.contiguous(x.storage::<E>()?.clone(), &x.layout);
                    Ok(Value::new(s, out_layout))
                })
            }
            Op::Permute { perm } => Ok(Value { layout: ins[0].layout.permuted(perm), ..ins[0].clone() }),
            Op::Broadcast { axes } => {
                Ok(Value { layout: ins[0].layout.broadcast(out_layout.dims, axes), ..ins[0].clone() })
            }
            Op::Narrow { axis, start, step } => {
                Ok(Value { layout: ins[0].layout.narrowed(*axis, *start, out.dims[*axis], *step), ..ins[0].clone() })
            }
            Op::Select { axis, index } => Ok(Value { layout: ins[0].layout.selected(*axis, *index), ..ins[0].clone() }),
            Op::Compare(f) => {
                let (a, b) = (&ins[0], &ins[1]);
                with_any!(dtype, E => {
                    struct Run<'a, E: Element>(&'a Cpu, &'a Value, &'a Value, core::marker::PhantomData<E>);
                    impl<E: Element> CmpVisitor for Run<'_, E> {
                        type Out = Result<CpuStorage<bool>>;
                        fn visit<O: CmpOp>(self, op: O) -> Self::Out {
                            let (a, b) = (self.1.storage::<E>()?, self.2.storage::<E>()?);
                            Ok(self.0.compare(&op, a, &self.1.layout, b, &self.2.layout))
                        }
                    }
                    let s = f.visit(Run::<E>(dev, a, b, core::marker::PhantomData))?;
                    Ok(Value::new(Arc::new(s), out_layout))
                })
            }
            Op::Cast => {
                let x = &ins[0];
                with_any!(dtype, A => with_any!(out.dtype, B => {
                    let s: CpuStorage<B> = dev.cast::<A, B>(x.storage::<A>()?, &x.layout);
                    Ok(Value::new(Arc::new(s), out_layout))
                }))
            }
            Op::Gather { dims, index } => {
                let (x, idx) = (&ins[0], &ins[1]);
                with_any!(dtype, E => match idx.dtype {
                    DType::I64 => gather::<E, i64>(dev, x, idx, *dims, index, out_layout),
                    DType::I32 => gather::<E, i32>(dev, x, idx, *dims, index, out_layout),
                    DType::U8 => gather::<E, u8>(dev, x, idx, *dims, index, out_layout),
                    other => Err(invalid(format!("a {other} index"))),
                })
            }
            _ => with_float!(dtype, E => exec_float::<E>(dev, &node.op, ins, out, out_layout, packed)),
        }
    }
}

/// A matrix's value held column-major: its transpose copied out row-major (the device's strided
/// copy), seen through swapped strides.
fn column_major<E: Element + Float>(dev: &Cpu, v: &Value) -> Result<Value> {
    let transposed = v.layout.permuted(&[1, 0]);
    let data = dev.contiguous(v.storage::<E>()?.clone(), &transposed);
    Ok(Value::new(data, Layout::contiguous(transposed.dims).permuted(&[1, 0])))
}

fn decode<E: Element>(dev: &Cpu, info: &ValueInfo, bytes: &[u8]) -> Value {
    let data: Vec<E> = bytes.chunks_exact(E::BYTES).map(E::from_le).collect();
    Value::new(Arc::new(dev.upload(data)), Layout::contiguous(Dims::from_slice(&info.dims)))
}

fn gather<E: Element, I: Element + IndexDtype>(
    dev: &Cpu,
    x: &Value,
    idx: &Value,
    dims: [usize; 3],
    index: &Layout,
    out_layout: Layout,
) -> Result<Value> {
    let xs = dev.contiguous(x.storage::<E>()?.clone(), &x.layout);
    let is = dev.contiguous(idx.storage::<I>()?.clone(), &idx.layout);
    let y = dev.gather(&xs, &Layout::contiguous(Dims::from_slice(&dims)), &is, index)?;
    Ok(Value::new(Arc::new(y), out_layout))
}

/// The contiguous buffer of a value (no copy when it already is one).
fn whole<E: Element + Float>(dev: &Cpu, v: &Value) -> Result<Arc<CpuStorage<E>>> {
    let s = v.storage::<E>()?;
    if v.layout.is_contiguous() && v.layout.offset == 0 && v.layout.numel() == s.as_slice().len() {
        return Ok(s.clone());
    }
    Ok(dev.contiguous(s.clone(), &v.layout))
}

fn exec_float<E: Element + Float>(
    dev: &Cpu,
    op: &Op,
    ins: Vec<Value>,
    out: &ValueInfo,
    ol: Layout,
    packed: Option<&BlockedFilters>,
) -> Result<Value> {
    let done = |s: CpuStorage<E>| Ok(Value::new(Arc::new(s), ol));
    match op {
        Op::Unary(f) => {
            struct Run<'a, E: Element>(&'a Cpu, Arc<CpuStorage<E>>, Layout);
            impl<E: Element + Float> UnaryVisitor for Run<'_, E> {
                type Out = CpuStorage<E>;
                fn visit<O: UnaryOp>(self, op: O) -> CpuStorage<E> {
                    self.0.unary(&op, self.1, &self.2)
                }
            }
            let x = ins.into_iter().next().expect("arity checked");
            let s = x.storage::<E>()?.clone();
            let layout = x.layout;
            drop(x);
            done(f.visit(Run(dev, s, layout)))
        }
        Op::Binary(f) => {
            struct Run<'a, E: Element>(&'a Cpu, Arc<CpuStorage<E>>, Layout, Arc<CpuStorage<E>>, Layout);
            impl<E: Element + Float> BinaryVisitor for Run<'_, E> {
                type Out = CpuStorage<E>;
                fn visit<O: BinaryOp>(self, op: O) -> CpuStorage<E> {
                    self.0.binary(&op, self.1, &self.2, self.3, &self.4)
                }
            }
            let mut it = ins.into_iter();
            let (a, b) = (it.next().expect("arity"), it.next().expect("arity"));
            let (sa, la, sb, lb) = (a.storage::<E>()?.clone(), a.layout, b.storage::<E>()?.clone(), b.layout);
            drop((a, b));
            done(f.visit(Run(dev, sa, la, sb, lb)))
        }
        Op::Where => {
            let (c, a, b) = (&ins[0], &ins[1], &ins[2]);
            let s = dev.select_where(
                c.storage::<bool>()?,
                &c.layout,
                a.storage::<E>()?,
                &a.layout,
                b.storage::<E>()?,
                &b.layout,
            );
            done(s)
        }
        Op::Reduce { kind, axes } => done(dev.reduce(*kind, ins[0].storage::<E>()?, &ins[0].layout, axes)),
        Op::MatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            let (ra, rb) = (a.dims().len(), b.dims().len());
            let operand = |v: &Value, lhs: bool, rank: usize, other: usize| -> Result<(Arc<CpuStorage<E>>, Layout)> {
                let s = v.storage::<E>()?.clone();
                if rank == 4 && !crate::ops::matmul::batch_mergeable(&v.layout) {
                    let c = dev.contiguous(s, &v.layout);
                    let l = Layout::contiguous(v.layout.dims);
                    return Ok((c, crate::ops::matmul::operand3(&l, lhs, rank, other)));
                }
                Ok((s, crate::ops::matmul::operand3(&v.layout, lhs, rank, other)))
            };
            let ((sa, la), (sb, lb)) = (operand(a, true, ra, rb)?, operand(b, false, rb, ra)?);
            let (c, ..) = crate::ops::matmul::forward3(dev, &*sa, &la, &*sb, &lb);
            done(c)
        }
        Op::Concat { axis } => {
            let mut y = dev.alloc_zeros::<E>(out.numel());
            let mut start = 0;
            for v in &ins {
                let mut region = ol;
                region.offset = start * ol.strides[*axis];
                region.dims = v.layout.dims;
                dev.copy_into(v.storage::<E>()?, &v.layout, &mut y, &region, false);
                start += v.dims()[*axis];
            }
            done(y)
        }
        Op::Stack => {
            let mut y = dev.alloc_zeros::<E>(out.numel());
            for (i, v) in ins.iter().enumerate() {
                let n = v.layout.numel();
                let dst = Layout { offset: i * n, ..Layout::contiguous(v.layout.dims) };
                dev.copy_into(v.storage::<E>()?, &v.layout, &mut y, &dst, false);
            }
            done(y)
        }
        Op::SoftmaxRows { log } => {
            let x = whole::<E>(dev, &ins[0])?;
            done(dev.softmax_rows(&x, &Layout::contiguous(ins[0].layout.dims), *log))
        }
        Op::Conv { geometry } => {
            let (x, w) = (whole::<E>(dev, &ins[0])?, whole::<E>(dev, &ins[1])?);
            let mut y = dev.alloc_for_overwrite::<E>(out.numel());
            dev.conv2d_then(&x, &w, geometry, &mut y, false, None, packed);
            done(y)
        }
        Op::ConvTranspose { geometry } => {
            let (x, w) = (whole::<E>(dev, &ins[0])?, whole::<E>(dev, &ins[1])?);
            let mut y = dev.alloc_zeros::<E>(out.numel());
            dev.conv2d_input_grad(&x, &w, geometry, &mut y);
            done(y)
        }
        Op::FusedConv { geometry, bias, residual, activation } => {
            let (x, w) = (whole::<E>(dev, &ins[0])?, whole::<E>(dev, &ins[1])?);
            let b = if *bias { Some(whole::<E>(dev, &ins[2])?) } else { None };
            // The residual's buffer (when this node is its last reader) becomes the output, and
            // the convolution adds onto it.
            let mut y = match residual {
                true => owned::<E>(dev, ins.into_iter().next_back().expect("arity checked"))?,
                false => dev.alloc_for_overwrite::<E>(out.numel()),
            };
            let conv = Conv { dev, x: &x, w: &w, g: geometry, y: &mut y, accumulate: *residual, packed };
            conv_bias_activation(conv, b.as_deref(), *activation);
            done(y)
        }
        Op::MaxPool { geometry } => done(dev.max_pool2d_values(&*whole::<E>(dev, &ins[0])?, geometry)),
        Op::AvgPool { geometry, count_include_pad } => {
            done(dev.avg_pool2d(&*whole::<E>(dev, &ins[0])?, geometry, *count_include_pad))
        }
        Op::Norm { eps, center, weight, bias } => {
            let x = whole::<E>(dev, &ins[0])?;
            let row = *ins[0].dims().last().expect("rank checked");
            let w = if *weight { Some(whole::<E>(dev, &ins[1])?) } else { None };
            let b = if *bias { Some(whole::<E>(dev, &ins[1 + *weight as usize])?) } else { None };
            done(dev.norm_rows(&x, row, *eps, *center, w.as_deref(), b.as_deref()).0)
        }
        Op::FusedElementwise { steps } => done(fused_elementwise::<E>(dev, steps, &ins, ol)?),
        Op::FusedLinear { bias, activation } => {
            let (x, w) = (&ins[0], &ins[1]);
            let k = *x.dims().last().expect("rank checked");
            let xs = whole::<E>(dev, x)?;
            let rows = x.layout.numel() / k.max(1);
            let xl = Layout::contiguous(Dims::from_slice(&[1, rows, k]));
            let wl = operand_t(&w.layout);
            let (mut y, ..) = crate::ops::matmul::forward3(dev, &*xs, &xl, &**w.storage::<E>()?, &wl);
            let b = if *bias { Some(whole::<E>(dev, &ins[2])?) } else { None };
            bias_activation(&mut y, b.as_deref(), *activation);
            done(y)
        }
        other => Err(invalid(format!("{} is not a float op of the runtime", other.name()))),
    }
}

/// A `[n, k]` weight seen as the `[1, k, n]` right operand of `x wᵀ`.
fn operand_t(l: &Layout) -> Layout {
    Layout {
        dims: Dims::from_slice(&[1, l.dims[1], l.dims[0]]),
        strides: Dims::from_slice(&[0, l.strides[1], l.strides[0]]),
        offset: l.offset,
    }
}

/// `v`'s elements in a buffer of its own: `v`'s buffer when this held its only reference and
/// the layout covers it whole, a copy otherwise.
fn owned<E: Element + Float>(dev: &Cpu, v: Value) -> Result<CpuStorage<E>> {
    let s = whole::<E>(dev, &v)?;
    drop(v);
    Ok(Arc::try_unwrap(s).unwrap_or_else(|s| {
        let mut copy = dev.alloc_for_overwrite::<E>(s.data.len());
        copy.data.copy_from_slice(&s.data);
        copy
    }))
}

/// `y[r, j] = act(y[r, j] + b[j])` in place, with `y` as `[rows, b.len()]`: a linear layer's
/// bias and activation (a convolution applies its own inside the kernel).
/// A convolution's operands: `y (+)= x ⋆ w`, with `w` as `packed` (when it is) for the kernel.
struct Conv<'a, E: Float> {
    dev: &'a Cpu,
    x: &'a CpuStorage<E>,
    w: &'a CpuStorage<E>,
    g: &'a crate::device::ConvGeometry,
    y: &'a mut CpuStorage<E>,
    accumulate: bool,
    packed: Option<&'a BlockedFilters>,
}

/// `y (+)= x ⋆ w`, then `act(y + b)` per output channel, applied by the convolution to each
/// part of its output while that part is in cache (the same arithmetic as [`bias_activation`]).
fn conv_bias_activation<E: Float>(conv: Conv<'_, E>, b: Option<&CpuStorage<E>>, act: Option<crate::ops::UnaryFn>) {
    struct Epilogue<'a, E: Float>(Conv<'a, E>, Option<&'a [E]>);
    impl<E: Float> Epilogue<'_, E> {
        fn run(self, f: impl Fn(E) -> E + Sync) {
            let (c, b) = (self.0, self.1);
            let then = |ch: usize, seg: &mut [E]| {
                let bj = b.map_or(<E::Acc as num_traits::Zero>::zero(), |b| b[ch].to_acc());
                for v in seg {
                    *v = f(E::from_acc(v.to_acc() + bj));
                }
            };
            c.dev.conv2d_then(c.x, c.w, c.g, c.y, c.accumulate, Some(&then), c.packed);
        }
    }
    impl<E: Float> UnaryVisitor for Epilogue<'_, E> {
        type Out = ();
        fn visit<O: UnaryOp>(self, op: O) {
            self.run(|v| E::from_acc(op.f(v.to_acc())));
        }
    }
    let e = Epilogue(conv, b.map(|b| b.as_slice()));
    match act {
        Some(f) => f.visit(e),
        None if b.is_some() => e.run(|v| v),
        None => {
            let c = e.0;
            c.dev.conv2d_then(c.x, c.w, c.g, c.y, c.accumulate, None, c.packed)
        }
    }
}

fn bias_activation<E: Float>(y: &mut CpuStorage<E>, b: Option<&CpuStorage<E>>, act: Option<crate::ops::UnaryFn>) {
    struct Apply<'a, E: Float>(&'a mut [E], Option<&'a [E]>);
    impl<E: Float> UnaryVisitor for Apply<'_, E> {
        type Out = ();
        fn visit<O: UnaryOp>(self, op: O) {
            bias_then(self.0, self.1, |v| E::from_acc(op.f(v.to_acc())));
        }
    }
    fn bias_then<E: Float>(y: &mut [E], b: Option<&[E]>, f: impl Fn(E) -> E + Sync) {
        use crate::par::*;
        let parallel = y.len() >= crate::device::cpu::strided::PAR_THRESHOLD;
        let row_of_bias = |row: &mut [E], b: &[E]| {
            for (v, &bj) in row.iter_mut().zip(b) {
                *v = f(E::from_acc(v.to_acc() + bj.to_acc()));
            }
        };
        match b {
            Some(b) if !b.is_empty() => match parallel {
                true => y.par_chunks_mut(b.len()).for_each(|row| row_of_bias(row, b)),
                false => y.chunks_mut(b.len()).for_each(|row| row_of_bias(row, b)),
            },
            _ => match parallel {
                true => y.par_iter_mut().for_each(|v| *v = f(*v)),
                false => y.iter_mut().for_each(|v| *v = f(*v)),
            },
        }
    }
    let data = &mut y.data[..];
    let b = b.map(|b| b.as_slice());
    match act {
        Some(f) => f.visit(Apply(data, b)),
        None if b.is_some() => bias_then(data, b, |v| v),
        None => {}
    }
}

/// Elements a fused program runs on at a time: each step is one tight loop over a block held in
/// registers and L1, so the interpreter's dispatch is paid once per block, not per element.
const BLOCK: usize = 512;

/// One pass over the output: blocks of elements run `steps` on the inputs' elements.
fn fused_elementwise<E: Element + Float>(
    dev: &Cpu,
    steps: &[Step],
    ins: &[Value],
    ol: Layout,
) -> Result<CpuStorage<E>> {
    let inputs: Vec<(&[E], Layout)> =
        ins.iter().map(|v| Ok((v.storage::<E>()?.as_slice(), v.layout))).collect::<Result<_>>()?;
    let mut out = dev.alloc_zeros::<E>(ol.numel());
    type Regs<A> = Vec<[A; BLOCK]>;
    let scratch = || -> Regs<E::Acc> { vec![[<E::Acc as num_traits::Zero>::zero(); BLOCK]; MAX_FUSED_DEPTH] };
    let body = |regs: &mut Regs<E::Acc>, (block, chunk): (usize, &mut [E])| {
        let start = block * BLOCK;
        let len = chunk.len();
        let mut top = 0;
        for s in steps {
            match s {
                Step::Input(i) => {
                    let (data, layout) = &inputs[*i as usize];
                    load(data, layout, start, &mut regs[top][..len]);
                    top += 1;
                }
                Step::Unary(f) => f.visit(UnaryBlock(&mut regs[top - 1][..len])),
                Step::Binary(f) => {
                    let (lo, hi) = regs.split_at_mut(top - 1);
                    f.visit(BinaryBlock(&mut lo[top - 2][..len], &hi[0][..len]));
                    top -= 1;
                }
            }
        }
        for (o, v) in chunk.iter_mut().zip(&regs[0][..len]) {
            *o = E::from_acc(*v);
        }
    };
    if out.data.len() >= crate::device::cpu::strided::PAR_THRESHOLD {
        use crate::par::*;
        out.data.par_chunks_mut(BLOCK).enumerate().for_each_init(scratch, body);
    } else {
        let mut regs = scratch();
        out.data.chunks_mut(BLOCK).enumerate().for_each(|c| body(&mut regs, c));
    }
    Ok(out)
}

/// Elements `start..start + dst.len()` (row-major over `l.dims`) of a view, widened.
fn load<E: Float>(data: &[E], l: &Layout, start: usize, dst: &mut [E::Acc]) {
    if l.is_contiguous() {
        for (d, x) in dst.iter_mut().zip(&data[l.offset + start..]) {
            *d = x.to_acc();
        }
        return;
    }
    // Walk the multi-index of `start` forward, updating the offset as axes roll over.
    let (dims, strides) = (l.dims.as_slice(), l.strides.as_slice());
    let mut idx = [0usize; crate::shapes::MAX_RANK];
    let mut rest = start;
    let mut off = l.offset;
    for a in (0..dims.len()).rev() {
        idx[a] = rest % dims[a];
        rest /= dims[a];
        off += idx[a] * strides[a];
    }
    for d in dst.iter_mut() {
        *d = data[off].to_acc();
        for a in (0..dims.len()).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < dims[a] {
                break;
            }
            off -= strides[a] * dims[a];
            idx[a] = 0;
        }
    }
}

struct UnaryBlock<'a, A>(&'a mut [A]);
impl<A: Float> UnaryVisitor for UnaryBlock<'_, A> {
    type Out = ();
    fn visit<O: UnaryOp>(self, op: O) {
        for v in self.0.iter_mut() {
            *v = op.f(*v);
        }
    }
}

struct BinaryBlock<'a, A>(&'a mut [A], &'a [A]);
impl<A: Float> BinaryVisitor for BinaryBlock<'_, A> {
    type Out = ();
    fn visit<O: BinaryOp>(self, op: O) {
        for (a, &b) in self.0.iter_mut().zip(self.1) {
            *a = op.f(*a, b);
        }
    }
}

/// The most inputs a fused element-wise node reads.
pub(crate) const MAX_FUSED_INPUTS: usize = 4;
/// The deepest stack a fused program may build.
pub(crate) const MAX_FUSED_DEPTH: usize = 6;
