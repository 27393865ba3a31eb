//! Tracing: run a forward pass on a tape that records the ops as graph nodes.
//!
//! [`TraceTape`] is the third [`Tape`]: ops record on it exactly as they do for autograd, and it
//! keeps each op's [`OpRecord`] (the graph op, input and output ids) instead of the backward
//! closure. Inputs no recorded op made are captured with their values: the model's parameters
//! and buffers (named from its `state_dict`) and values computed without the tape (masks,
//! indices), which become constants.

use super::ir::{Graph, ValueId, ValueInfo};
use crate::autograd::{Gradients, Merge, NoTape, OpRecord, Tape, UniqueId};
use crate::compat::Mutex;
use crate::compat::prelude::*;
use crate::compat::{HashMap, HashSet};
use crate::device::{Device, Layout};
use crate::dtypes::{Dtype, Float};
use crate::error::{Error, Result};
use crate::nn::{Params, TensorKind, Visitor};
use crate::shapes::Shape;
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// A value the trace saw an op read without having made it.
struct Captured {
    info: ValueInfo,
    data: Vec<u8>,
}

#[derive(Default)]
struct TraceLog {
    /// Recorded ops, in the order they ran.
    records: Vec<OpRecord>,
    /// Ids some recorded op made.
    produced: HashSet<UniqueId>,
    /// Graph inputs: name, id, info.
    inputs: Vec<(String, UniqueId, ValueInfo)>,
    /// Values read but not made by a recorded op.
    captured: HashMap<UniqueId, Captured>,
}

impl TraceLog {
    fn knows(&self, id: UniqueId) -> bool {
        self.produced.contains(&id) || self.captured.contains_key(&id) || self.inputs.iter().any(|(_, i, _)| *i == id)
    }
}

enum TraceNode {
    Live(TraceLog),
    Merged(Arc<Mutex<TraceNode>>),
}

/// The tape of a traced forward pass (see [`Tracer`]). Ops record graph nodes on it; it has no
/// `backward`.
pub struct TraceTape<D: Device> {
    node: Arc<Mutex<TraceNode>>,
    _device: core::marker::PhantomData<fn() -> D>,
}

impl<D: Device> Clone for TraceTape<D> {
    fn clone(&self) -> Self {
        Self { node: self.node.clone(), _device: core::marker::PhantomData }
    }
}

impl<D: Device> core::fmt::Debug for TraceTape<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TraceTape")
    }
}

impl<D: Device> TraceTape<D> {
    fn new() -> Self {
        Self { node: Arc::new(Mutex::new(TraceNode::Live(TraceLog::default()))), _device: core::marker::PhantomData }
    }
    fn root(&self) -> Arc<Mutex<TraceNode>> {
        let mut cur = self.node.clone();
        loop {
            let next = match &*cur.lock() {
                TraceNode::Live(_) => None,
                TraceNode::Merged(n) => Some(n.clone()),
            };
            match next {
                Some(n) => cur = n,
                None => return cur,
            }
        }
    }
    fn with_log<R>(&self, f: impl FnOnce(&mut TraceLog) -> R) -> R {
        let root = self.root();
        let mut node = root.lock();
        match &mut *node {
            TraceNode::Live(log) => f(log),
            TraceNode::Merged(_) => unreachable!("root() returns a live node"),
        }
    }
}

impl<D: Device> Tape<D> for TraceTape<D> {
    const TAPED: bool = true;
    const TRACING: bool = true;
    fn add_backward_op<F>(&self, record: OpRecord, _op: F)
    where
        F: FnOnce(&mut Gradients<D>) -> Result<()> + Send + 'static,
    {
        self.with_log(|log| {
            log.produced.insert(record.output);
            log.records.push(record);
        });
    }
    fn capture<E: Dtype>(&self, id: UniqueId, device: &D, data: &D::Storage<E>, layout: &Layout) {
        self.with_log(|log| {
            if log.knows(id) {
                return;
            }
            // A broadcast view (a buffer's per-channel statistics spread over a batch) is kept
            // as its source and a broadcast node, not as every repeated element.
            let axes: Vec<usize> =
                (0..layout.dims.len()).filter(|&a| layout.strides[a] == 0 && layout.dims[a] > 1).collect();
            let (source, source_id) = if axes.is_empty() {
                (*layout, id)
            } else {
                let keep: Vec<usize> = (0..layout.dims.len()).filter(|a| !axes.contains(a)).collect();
                let pick = |v: &crate::shapes::Dims| keep.iter().map(|&a| v[a]).collect::<Vec<_>>();
                let l = Layout {
                    dims: crate::shapes::Dims::from_slice(&pick(&layout.dims)),
                    strides: crate::shapes::Dims::from_slice(&pick(&layout.strides)),
                    offset: layout.offset,
                };
                (l, UniqueId::next())
            };
            let mut bytes = Vec::with_capacity(source.numel() * E::BYTES);
            for v in device.download(data, &source) {
                v.put_le(&mut bytes);
            }
            let info = ValueInfo::new(source.dims.as_slice(), E::DTYPE);
            log.captured.insert(source_id, Captured { info, data: bytes });
            if source_id != id {
                let op = super::ir::Op::Broadcast { axes };
                let record = OpRecord::new("broadcast", vec![source_id], id, layout.dims).exports(op, E::DTYPE);
                log.produced.insert(id);
                log.records.push(record);
            }
        });
    }
}

impl<D: Device> Merge<D, NoTape> for TraceTape<D> {
    type Output = TraceTape<D>;
    fn merge(self, _: NoTape) -> Self {
        self
    }
}

impl<D: Device> Merge<D, TraceTape<D>> for NoTape {
    type Output = TraceTape<D>;
    fn merge(self, rhs: TraceTape<D>) -> TraceTape<D> {
        rhs
    }
}

impl<D: Device> Merge<D, TraceTape<D>> for TraceTape<D> {
    type Output = TraceTape<D>;
    fn merge(self, rhs: TraceTape<D>) -> Self {
        let (a, b) = (self.root(), rhs.root());
        if Arc::ptr_eq(&a, &b) {
            return self;
        }
        let moved = match core::mem::replace(&mut *b.lock(), TraceNode::Merged(a.clone())) {
            TraceNode::Live(log) => log,
            TraceNode::Merged(_) => unreachable!("root() returns a live node"),
        };
        self.with_log(|log| {
            log.records.extend(moved.records);
            log.records.sort_by_key(|r| r.output);
            log.produced.extend(moved.produced);
            log.inputs.extend(moved.inputs);
            for (id, c) in moved.captured {
                log.captured.entry(id).or_insert(c);
            }
        });
        self
    }
}

/// A tensor (or tuple of tensors) a traced forward returns: the graph's outputs.
pub trait TracedOutputs {
    /// The ids of the output tensors, in order.
    fn output_ids(&self) -> Vec<UniqueId>;
}

impl<S: Shape, E: Dtype, D: Device, T> TracedOutputs for Tensor<S, E, D, T> {
    fn output_ids(&self) -> Vec<UniqueId> {
        vec![self.id]
    }
}

impl<A: TracedOutputs, B: TracedOutputs> TracedOutputs for (A, B) {
    fn output_ids(&self) -> Vec<UniqueId> {
        let mut v = self.0.output_ids();
        v.extend(self.1.output_ids());
        v
    }
}

/// Records a forward pass as a [`Graph`].
///
/// Mark the inputs with [`Tracer::input`], run the model (its `forward`, so eval mode: dropout
/// off, batch norm on its running statistics), then [`Tracer::finish`] with the outputs and the
/// model (whose `state_dict` names the constants). [`trace`] does all three for a one-input
/// model and checks that nothing computed from the input left the trace.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// use tensile::export::Tracer;
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<4, 3>, nn::ReLU) = BuildOn::build(&dev);
/// let tracer = Tracer::new();
/// let x = tracer.input("x", &dev.zeros::<Rank2<2, 4>, f32>());
/// let y = model.forward(x);
/// let graph = tracer.finish(&model, &[("y", &y)]).unwrap();
/// assert_eq!(graph.inputs.len(), 1);
/// assert!(graph.constants.iter().any(|c| c.name == "0.weight"));
/// ```
pub struct Tracer<D: Device = crate::device::Cpu> {
    tape: TraceTape<D>,
}

impl<D: Device> Default for Tracer<D> {
    fn default() -> Self {
        Self { tape: TraceTape::new() }
    }
}

impl<D: Device> Tracer<D> {
    /// A tracer with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `x` as the graph input `name` and returns it on the tracing tape.
    pub fn input<S: Shape, E: Dtype>(&self, name: &str, x: &Tensor<S, E, D>) -> Tensor<S, E, D, TraceTape<D>> {
        let info = ValueInfo::new(x.dims().as_slice(), E::DTYPE);
        self.tape.with_log(|log| log.inputs.push((name.to_string(), x.id, info)));
        x.clone().put_tape(self.tape.clone())
    }

    /// Builds the graph that computes `outputs` (named) from the inputs, with `model`'s tensors
    /// as named constants. `Err` when an op on the path cannot be exported, or an output was not
    /// computed on this trace.
    pub fn finish<M: Params<D>>(self, model: &M, outputs: &[(&str, &dyn TracedOutputs)]) -> Result<Graph> {
        let names = param_names(model);
        let outs: Vec<(String, UniqueId)> = outputs
            .iter()
            .flat_map(|(name, o)| {
                let ids = o.output_ids();
                let many = ids.len() > 1;
                ids.into_iter()
                    .enumerate()
                    .map(move |(i, id)| (if many { format!("{name}.{i}") } else { name.to_string() }, id))
            })
            .collect();
        self.tape.with_log(|log| build_graph(log, &names, &outs))
    }

    /// The anonymous constants captured so far, as (id, bytes), for [`trace`]'s check.
    fn anonymous_constants<M: Params<D>>(&self, model: &M) -> Vec<(UniqueId, Vec<u8>)> {
        let names = param_names(model);
        self.tape.with_log(|log| {
            let mut v: Vec<(UniqueId, Vec<u8>)> = log
                .captured
                .iter()
                .filter(|(id, _)| !names.contains_key(*id))
                .map(|(id, c)| (*id, c.data.clone()))
                .collect();
            v.sort_by_key(|(id, _)| *id);
            v
        })
    }
}

/// The model's tensors by id: `state_dict` names.
fn param_names<D: Device, M: Params<D>>(model: &M) -> HashMap<UniqueId, String> {
    struct Names(HashMap<UniqueId, String>);
    impl<D: Device> Visitor<D> for Names {
        fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, D>) {
            self.0.insert(t.id, name.to_string());
        }
        fn visit_non_float<S: Shape, E: Dtype>(&mut self, name: &str, t: &Tensor<S, E, D>) {
            self.0.insert(t.id, name.to_string());
        }
    }
    let mut n = Names(HashMap::new());
    model.visit_params("", &mut n);
    n.0
}

fn build_graph(log: &TraceLog, names: &HashMap<UniqueId, String>, outputs: &[(String, UniqueId)]) -> Result<Graph> {
    // Keep only the records the outputs depend on (a model's unused branches, and the
    // records of ops after the outputs, are not part of the graph).
    let by_output: HashMap<UniqueId, usize> = log.records.iter().enumerate().map(|(i, r)| (r.output, i)).collect();
    let mut needed = vec![false; log.records.len()];
    let mut stack: Vec<UniqueId> = outputs.iter().map(|(_, id)| *id).collect();
    let mut seen = HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(&i) = by_output.get(&id) {
            needed[i] = true;
            stack.extend(log.records[i].inputs.iter().copied());
        }
    }
    let mut g = Graph::default();
    let mut values: HashMap<UniqueId, ValueId> = HashMap::new();
    for (name, id, info) in &log.inputs {
        values.insert(*id, g.add_input(name, info.clone()));
    }
    let mut anonymous = 0;
    let mut constant =
        |g: &mut Graph, values: &mut HashMap<UniqueId, ValueId>, id: UniqueId, op: &str| -> Result<ValueId> {
            if let Some(v) = values.get(&id) {
                return Ok(*v);
            }
            let c = log.captured.get(&id).ok_or_else(|| Error::Untraceable {
                op: "trace",
                reason: format!("`{op}` reads a value the trace never saw (an op that does not call `Tape::capture`)"),
            })?;
            let name = match names.get(&id) {
                Some(n) => n.clone(),
                None => {
                    anonymous += 1;
                    format!("const.{}", anonymous - 1)
                }
            };
            let v = g.add_constant(&name, c.info.clone(), c.data.clone());
            values.insert(id, v);
            Ok(v)
        };
    let mut order: Vec<usize> = (0..log.records.len()).filter(|&i| needed[i]).collect();
    order.sort_by_key(|&i| log.records[i].output);
    for i in order {
        let r = &log.records[i];
        let Some((op, dtype)) = &r.export else {
            return Err(Error::Untraceable { op: r.name, reason: "this op has no graph form yet".into() });
        };
        let mut ins = Vec::with_capacity(r.inputs.len());
        for id in &r.inputs {
            ins.push(constant(&mut g, &mut values, *id, r.name)?);
        }
        let info = ValueInfo::new(r.output_dims.as_slice(), *dtype);
        let v = g.add_node(op.clone(), ins, info);
        values.insert(r.output, v);
    }
    for (name, id) in outputs {
        let v = match values.get(id) {
            Some(v) => *v,
            None => {
                return Err(Error::Untraceable {
                    op: "trace",
                    reason: format!("the output `{name}` was not computed on the trace (was it detached?)"),
                });
            }
        };
        g.add_output(name, v);
    }
    g.validate()?;
    Ok(g)
}

/// Traces `model`'s forward on `example` into a graph with one input `"x"` and one output `"y"`.
///
/// The forward runs twice, the second time on a perturbed copy of `example` (float inputs): a
/// constant other than the model's own tensors that differs between the two runs was computed
/// from the input off the tape (a `detach`, or an op that records nothing), and the graph would
/// bake in the example's value, so that is an `Err` naming the op that read it.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<4, 8>, nn::Tanh, nn::Linear<8, 2>) = BuildOn::build(&dev);
/// let x: Tensor<Rank2<3, 4>, f32, Cpu> = dev.randn();
/// let graph = tensile::export::trace(&model, &x).unwrap();
/// let y = tensile::export::Runtime::new(&graph).unwrap().run_one(&x).unwrap();
/// let eager = model.forward(x.clone());
/// assert!(y.to_vec::<f32>().unwrap().iter().zip(eager.to_vec()).all(|(a, b)| (a - b).abs() < 1e-6));
/// ```
pub fn trace<S, E, D, M, Y>(model: &M, example: &Tensor<S, E, D>) -> Result<Graph>
where
    S: Shape,
    E: Dtype,
    D: Device,
    M: Params<D> + crate::nn::Module<Tensor<S, E, D, TraceTape<D>>, Output = Y>,
    Y: TracedOutputs,
{
    let first = Tracer::new();
    let y = model.try_forward(first.input("x", example))?;
    let constants = first.anonymous_constants(model);
    let graph = first.finish(model, &[("y", &y)])?;
    if E::DTYPE.is_float() {
        let second = Tracer::new();
        let perturbed = perturb(example);
        let _ = model.try_forward(second.input("x", &perturbed))?;
        let again = second.anonymous_constants(model);
        let differs = constants.len() != again.len() || constants.iter().zip(&again).any(|(a, b)| a.1 != b.1);
        if differs {
            let reader = graph
                .nodes
                .iter()
                .find(|n| {
                    n.inputs
                        .iter()
                        .any(|v| graph.constants.iter().any(|c| c.value == *v && c.name.starts_with("const.")))
                })
                .map(|n| n.op.name())
                .unwrap_or_else(|| "an op".into());
            return Err(Error::Untraceable {
                op: "trace",
                reason: format!(
                    "a value computed from the input left the trace before `{reader}` read it (a detach, or an op \
                     without a graph form): the graph would keep the example's value"
                ),
            });
        }
    }
    Ok(graph)
}

/// A copy of `x` with every element moved (floats only; others are returned unchanged).
fn perturb<S: Shape, E: Dtype, D: Device>(x: &Tensor<S, E, D>) -> Tensor<S, E, D> {
    let v: Vec<E> = x
        .to_vec()
        .into_iter()
        .enumerate()
        .map(|(i, e)| E::cast_f64(e.as_f64() * 0.75 + 0.37 + (i % 7) as f64 * 0.01))
        .collect();
    Tensor::from_storage(x.device.clone(), x.device.upload(v), *x.shape())
}
