//! The tape types and how they merge.

use super::gradients::{Gradients, UniqueId};
use crate::compat::Mutex;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::device::Layout;
use crate::dtypes::{DType, Dtype};
use crate::error::Result;
use crate::shapes::{Dims, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

/// A backward closure: reads the output's gradient, adds into the inputs'.
pub(crate) type BackwardOp<D> = Box<dyn FnOnce(&mut Gradients<D>) -> Result<()> + Send>;

/// What an op tells its tape about itself: enough for a recorder (such as export's tracer) to
/// rebuild the graph of forward ops.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let x = dev.tensor([1.0f32, 2.0]);
/// let y = x.leaky_trace().exp().sum::<Rank0, _>();
/// let names: Vec<&str> = y.tape().recorded_ops().iter().map(|r| r.name).collect();
/// assert_eq!(names, ["exp", "sum"]);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OpRecord {
    /// The op (`"matmul"`, `"exp"`, `"permute"`, ...).
    pub name: &'static str,
    /// The ids of its tensor inputs, in order.
    pub inputs: Vec<UniqueId>,
    /// The id of its output.
    pub output: UniqueId,
    /// The output's sizes.
    pub output_dims: Dims,
    /// The op as a graph node (and the output's dtype), for export's tracer; `None` for ops
    /// that cannot be exported, which tracing reports by name.
    pub export: Option<(crate::export::Op, DType)>,
}

impl OpRecord {
    /// A record of the op `name` from `inputs` to `output` (of sizes `output_dims`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::autograd::{OpRecord, UniqueId};
    /// let r = OpRecord::new("exp", vec![UniqueId::next()], UniqueId::next(), Dims::from_slice(&[3]));
    /// assert_eq!(r.name, "exp");
    /// ```
    pub fn new(name: &'static str, inputs: Vec<UniqueId>, output: UniqueId, output_dims: Dims) -> Self {
        Self { name, inputs, output, output_dims, export: None }
    }

    /// The same record, saying which graph op it is and the output's dtype.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::autograd::{OpRecord, UniqueId};
    /// use tensile::dtypes::DType;
    /// use tensile::export::Op;
    /// use tensile::ops::UnaryFn;
    /// let r = OpRecord::new("exp", vec![UniqueId::next()], UniqueId::next(), Dims::from_slice(&[3]))
    ///     .exports(Op::Unary(UnaryFn::Exp), DType::F32);
    /// assert!(r.export.is_some());
    /// ```
    pub fn exports(mut self, op: crate::export::Op, dtype: DType) -> Self {
        self.export = Some((op, dtype));
        self
    }
}

/// What an op's output carries: either nothing ([`NoTape`]) or a recording ([`OwnedTape`]).
pub trait Tape<D: Device>:
    'static + Clone + Send + Sync + Merge<D, Self, Output = Self> + Merge<D, NoTape, Output = Self>
{
    /// Whether ops record backward closures.
    const TAPED: bool;
    /// Whether this tape traces for export (and so wants [`Tape::capture`]).
    const TRACING: bool = false;
    /// Records an op (what it was, and the closure that computes its backward).
    fn add_backward_op<F>(&self, record: OpRecord, op: F)
    where
        F: FnOnce(&mut Gradients<D>) -> Result<()> + Send + 'static;
    /// Shows the tape an input of the op about to be recorded, with its value. Only a tracing
    /// tape ([`crate::export::TraceTape`]) keeps anything: the values of inputs that no recorded
    /// op made, which become the graph's constants. Ops call this for every tensor they read.
    #[inline]
    fn capture<E: Dtype>(&self, id: UniqueId, device: &D, data: &D::Storage<E>, layout: &Layout) {
        let _ = (id, device, data, layout);
    }
}

/// [`Tape::capture`] for a whole tensor.
#[inline]
pub(crate) fn capture<S: Shape, E: Dtype, D: Device, T: Tape<D>, T2>(tape: &T, t: &Tensor<S, E, D, T2>) {
    if T::TRACING {
        tape.capture(t.id, &t.device, &t.data, &t.layout());
    }
}

/// Joins the tapes of two operands: the result records if either did.
pub trait Merge<D: Device, Rhs> {
    /// The tape of the result.
    type Output: Tape<D>;
    /// Joins the two.
    fn merge(self, rhs: Rhs) -> Self::Output;
}

/// No recording: the tape of inference and of constants. `backward()` does not exist for it.
///
/// ```compile_fail
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let x: Tensor<Rank0, f32, Cpu> = dev.zeros();
/// let _ = x.backward(); // no tape: no backward
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoTape;

impl<D: Device> Tape<D> for NoTape {
    const TAPED: bool = false;
    #[inline]
    fn add_backward_op<F>(&self, _record: OpRecord, _op: F)
    where
        F: FnOnce(&mut Gradients<D>) -> Result<()> + Send + 'static,
    {
    }
}

pub(crate) struct Recording<D: Device> {
    pub(crate) ops: Vec<(OpRecord, BackwardOp<D>)>,
    pub(crate) grads: Gradients<D>,
}

enum Node<D: Device> {
    Live(Recording<D>),
    /// This recording was merged into another one; follow the link.
    Merged(Arc<Mutex<Node<D>>>),
}

/// A recording of backward closures, with the gradients they will write into.
///
/// Cloning shares the recording (clones are handles to one tape), and merging two handles joins
/// their recordings once; so a tensor can be used in several places and its gradients add up.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let x: Tensor<Rank1<2>, f64, Cpu> = dev.tensor([3.0, -1.0]);
/// let t = x.leaky_trace();
/// let y = t.clone() * t;               // x used twice
/// let g = y.sum::<Rank0, _>().backward();
/// assert_eq!(g.get(&x).to_vec(), vec![6.0, -2.0]);
/// ```
pub struct OwnedTape<D: Device> {
    node: Arc<Mutex<Node<D>>>,
}

impl<D: Device> Clone for OwnedTape<D> {
    fn clone(&self) -> Self {
        Self { node: self.node.clone() }
    }
}

impl<D: Device> core::fmt::Debug for OwnedTape<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OwnedTape")
    }
}

impl<D: Device> OwnedTape<D> {
    /// A tape that records into `grads`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f64]);
    /// let tape = OwnedTape::new(x.alloc_grads());
    /// let g = x.trace_on(&tape).exp().sum::<Rank0, _>().backward();
    /// assert!((g.get(&x).to_vec()[0] - 1f64.exp()).abs() < 1e-12);
    /// ```
    pub fn new(grads: Gradients<D>) -> Self {
        Self { node: Arc::new(Mutex::new(Node::Live(Recording { ops: Vec::new(), grads }))) }
    }

    /// The live recording this handle leads to (links left by merges are followed).
    fn root(&self) -> Arc<Mutex<Node<D>>> {
        let mut cur = self.node.clone();
        loop {
            let next = match &*cur.lock() {
                Node::Live(_) => None,
                Node::Merged(next) => Some(next.clone()),
            };
            match next {
                Some(n) => cur = n,
                None => return cur,
            }
        }
    }

    /// The ops recorded so far, in the order they ran.
    pub fn recorded_ops(&self) -> Vec<OpRecord> {
        let root = self.root();
        let node = root.lock();
        match &*node {
            Node::Live(rec) => {
                let mut ops: Vec<OpRecord> = rec.ops.iter().map(|(r, _)| r.clone()).collect();
                ops.sort_by_key(|r| r.output);
                ops
            }
            Node::Merged(_) => unreachable!("root() returns a live node"),
        }
    }

    /// Takes the recording out (for `backward`), leaving an empty one behind.
    pub(crate) fn take_recording(&self) -> Recording<D> {
        let root = self.root();
        let mut node = root.lock();
        let empty = Recording { ops: Vec::new(), grads: Gradients::leaky() };
        match core::mem::replace(&mut *node, Node::Live(empty)) {
            Node::Live(rec) => rec,
            Node::Merged(_) => unreachable!("root() returns a live node"),
        }
    }
}

impl<D: Device> Tape<D> for OwnedTape<D> {
    const TAPED: bool = true;
    fn add_backward_op<F>(&self, record: OpRecord, op: F)
    where
        F: FnOnce(&mut Gradients<D>) -> Result<()> + Send + 'static,
    {
        let root = self.root();
        if let Node::Live(rec) = &mut *root.lock() {
            rec.ops.push((record, Box::new(op)));
        }
    }
}

impl<D: Device> Merge<D, NoTape> for NoTape {
    type Output = NoTape;
    fn merge(self, _: NoTape) -> NoTape {
        NoTape
    }
}

impl<D: Device> Merge<D, NoTape> for OwnedTape<D> {
    type Output = OwnedTape<D>;
    fn merge(self, _: NoTape) -> Self {
        self
    }
}

impl<D: Device> Merge<D, OwnedTape<D>> for NoTape {
    type Output = OwnedTape<D>;
    fn merge(self, rhs: OwnedTape<D>) -> OwnedTape<D> {
        rhs
    }
}

impl<D: Device> Merge<D, OwnedTape<D>> for OwnedTape<D> {
    type Output = OwnedTape<D>;
    fn merge(self, rhs: OwnedTape<D>) -> Self {
        let (a, b) = (self.root(), rhs.root());
        if Arc::ptr_eq(&a, &b) {
            return self;
        }
        let moved = {
            let mut nb = b.lock();
            match core::mem::replace(&mut *nb, Node::Merged(a.clone())) {
                Node::Live(rec) => rec,
                Node::Merged(_) => unreachable!("root() returns a live node"),
            }
        };
        if let Node::Live(rec) = &mut *a.lock() {
            rec.ops.extend(moved.ops);
            rec.grads.absorb(moved.grads);
        }
        self
    }
}
