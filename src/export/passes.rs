//! Graph passes: each takes a valid graph and gives a valid graph with the same outputs
//! (checked by [`Graph::validate`] at the end of [`optimize`]).
//!
//! - [`dead_code`]: drops nodes and constants no output needs.
//! - [`fold_constants`]: evaluates nodes whose inputs are all constants.
//! - [`fold_conv_affine`]: folds per-channel scale and shift after a convolution (batch norm in
//!   eval mode, and the convolution's own bias) into its weight and one bias add.
//! - [`fuse_linear`]: `act(x wᵀ + b)` into one [`Op::FusedLinear`] node.
//! - [`fuse_conv`]: `act(conv(x, w) + b + z)` into one [`Op::FusedConv`] node.
//! - [`fuse_elementwise`]: chains of element-wise ops into one [`Op::FusedElementwise`] node.
//! - [`memory_plan`]: the buffers a run needs when each is reused after its last reader.

use super::ir::{Graph, Node, Op, Step, ValueId, ValueInfo};
use super::runtime::{MAX_FUSED_DEPTH, MAX_FUSED_INPUTS, Runtime, Value};
use crate::compat::HashMap;
use crate::compat::prelude::*;
use crate::dtypes::DType;
use crate::error::Result;
use crate::ops::{BinaryFn, UnaryFn};

/// Runs every pass, in an order where each helps the next, and checks the result.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 2>) = BuildOn::build(&dev);
/// let x: Tensor<Rank2<3, 4>, f32, Cpu> = dev.randn();
/// let g = tensile::export::trace(&model, &x).unwrap();
/// let fused = tensile::export::optimize(&g).unwrap();
/// assert!(fused.nodes.len() < g.nodes.len()); // two `linear` nodes
/// ```
pub fn optimize(g: &Graph) -> Result<Graph> {
    let mut g = fold_constants(g)?;
    g = fold_conv_affine(&g)?;
    g = dead_code(&g);
    g = fuse_linear(&g);
    g = fuse_conv(&g);
    g = fuse_elementwise(&g);
    g = dead_code(&g);
    g.validate()?;
    Ok(g)
}

/// How many nodes read each value (graph outputs count as readers).
fn readers(g: &Graph) -> Vec<usize> {
    let mut n = vec![0; g.values.len()];
    for node in &g.nodes {
        for v in &node.inputs {
            n[v.index()] += 1;
        }
    }
    for p in &g.outputs {
        n[p.value.index()] += 1;
    }
    n
}

/// Drops nodes and constants no output depends on, and renumbers the values densely.
pub fn dead_code(g: &Graph) -> Graph {
    let producer: HashMap<ValueId, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.output, i)).collect();
    let mut live = vec![false; g.values.len()];
    let mut stack: Vec<ValueId> = g.outputs.iter().map(|p| p.value).collect();
    while let Some(v) = stack.pop() {
        if core::mem::replace(&mut live[v.index()], true) {
            continue;
        }
        if let Some(&i) = producer.get(&v) {
            stack.extend(g.nodes[i].inputs.iter().copied());
        }
    }
    let mut out = Graph::default();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for p in &g.inputs {
        map.insert(p.value, out.add_input(&p.name, g.info(p.value).clone()));
    }
    for c in g.constants.iter().filter(|c| live[c.value.index()]) {
        map.insert(c.value, out.add_constant(&c.name, g.info(c.value).clone(), c.data.clone()));
    }
    for n in g.nodes.iter().filter(|n| live[n.output.index()]) {
        let ins = n.inputs.iter().map(|v| map[v]).collect();
        map.insert(n.output, out.add_node(n.op.clone(), ins, g.info(n.output).clone()));
    }
    for p in &g.outputs {
        out.add_output(&p.name, map[&p.value]);
    }
    out
}

/// Evaluates every node whose inputs are all constants, replacing it by a constant. Views
/// (a transposed weight, a broadcast bias) are left as they are: they cost nothing to run, a
/// broadcast would only make the constant bigger, and later passes match them.
pub fn fold_constants(g: &Graph) -> Result<Graph> {
    let mut out = g.clone();
    let mut known: HashMap<ValueId, Value> = HashMap::new();
    let rt = Runtime::new(g)?;
    for (c, v) in g.constants.iter().zip(rt.constant_values()) {
        known.insert(c.value, v.clone());
    }
    let mut folded = 0;
    let mut keep = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let foldable = !node.op.is_view() && node.inputs.iter().all(|v| known.contains_key(v));
        if !foldable {
            keep.push(node.clone());
            continue;
        }
        let ins: Vec<Value> = node.inputs.iter().map(|v| known[v].clone()).collect();
        let value = rt.exec_node(node, ins)?;
        out.constants.push(super::ir::Constant {
            name: format!("folded.{folded}"),
            value: node.output,
            data: value.to_le_bytes(),
        });
        folded += 1;
        known.insert(node.output, value);
    }
    out.nodes = keep;
    Ok(out)
}

/// The constant a value holds, when it is one.
fn constant_of(g: &Graph, v: ValueId) -> Option<usize> {
    g.constants.iter().position(|c| c.value == v)
}

/// The source of `v` = `broadcast(c)` when `v` is NCHW and `c` holds one value per channel:
/// `c` is `[channels]` with every other axis new, or keeps size-1 axes (`[1, channels]` with
/// new axes `[2, 3]`: a batch of one does not tell a broadcast batch axis from a real one).
/// A `v` with one element per channel is its own source.
fn channel_source(g: &Graph, producer: &HashMap<ValueId, usize>, v: ValueId, channels: usize) -> Option<ValueId> {
    let out = &g.info(v).dims;
    if out.len() != 4 || out[1] != channels {
        return None;
    }
    let own = out.iter().product::<usize>() == channels; // `[1, channels, 1, 1]`
    let (axes, src) = match producer.get(&v).map(|&i| &g.nodes[i]) {
        Some(Node { op: Op::Broadcast { axes }, inputs, .. }) => (axes, inputs[0]),
        _ => return own.then_some(v),
    };
    let kept = (0..4).filter(|a| !axes.contains(a));
    let per_channel = kept.zip(&g.info(src).dims).all(|(a, &d)| d == if a == 1 { channels } else { 1 });
    (per_channel && !axes.contains(&1)).then_some(src)
}

/// The per-channel f32/f64 constant behind `v` (see [`channel_source`]).
fn channel_vector(g: &Graph, producer: &HashMap<ValueId, usize>, v: ValueId, channels: usize) -> Option<Vec<f64>> {
    let c = &g.constants[constant_of(g, channel_source(g, producer, v, channels)?)?];
    decode_f64(g.info(c.value).dtype, &c.data)
}

fn decode_f64(dtype: DType, bytes: &[u8]) -> Option<Vec<f64>> {
    use crate::dtypes::Dtype;
    Some(match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le(b) as f64).collect(),
        DType::F64 => bytes.chunks_exact(8).map(f64::from_le).collect(),
        _ => return None,
    })
}

fn encode(dtype: DType, v: &[f64]) -> Vec<u8> {
    use crate::dtypes::Dtype;
    let mut out = Vec::with_capacity(v.len() * dtype.bytes());
    for &x in v {
        match dtype {
            DType::F64 => x.put_le(&mut out),
            _ => (x as f32).put_le(&mut out),
        }
    }
    out
}

/// Folds `y = conv(x, w)` followed by a chain of `+ c`, `- c`, `* c`, `/ c` with per-channel
/// constants `c` (a convolution's bias, then batch norm in eval mode) into `conv(x, w') + t`.
/// f32 and f64 graphs; the folded weights are computed in f64.
pub fn fold_conv_affine(g: &Graph) -> Result<Graph> {
    let mut g = g.clone();
    let mut fresh = 0;
    loop {
        let producer: HashMap<ValueId, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.output, i)).collect();
        let count = readers(&g);
        let consumer = |g: &Graph, v: ValueId| g.nodes.iter().position(|n| n.inputs.contains(&v));
        let mut changed = false;
        for ci in 0..g.nodes.len() {
            let Op::Conv { geometry } = g.nodes[ci].op else { continue };
            let Some(wc) = constant_of(&g, g.nodes[ci].inputs[1]) else { continue };
            let dtype = g.info(g.nodes[ci].output).dtype;
            let channels = geometry.out_channels;
            let (mut scale, mut shift) = (vec![1.0; channels], vec![0.0; channels]);
            let mut end = g.nodes[ci].output;
            let mut chain = 0;
            while count[end.index()] == 1 && !g.outputs.iter().any(|p| p.value == end) {
                let Some(ni) = consumer(&g, end) else { break };
                let n = &g.nodes[ni];
                let Op::Binary(f) = n.op else { break };
                if n.inputs[0] != end || n.inputs[1] == end {
                    break;
                }
                if !matches!(f, BinaryFn::Add | BinaryFn::Sub | BinaryFn::Mul | BinaryFn::Div) {
                    break;
                }
                let Some(c) = channel_vector(&g, &producer, n.inputs[1], channels) else { break };
                for o in 0..channels {
                    match f {
                        BinaryFn::Add => shift[o] += c[o],
                        BinaryFn::Sub => shift[o] -= c[o],
                        BinaryFn::Mul => {
                            scale[o] *= c[o];
                            shift[o] *= c[o];
                        }
                        _ => {
                            scale[o] /= c[o];
                            shift[o] /= c[o];
                        }
                    }
                }
                end = n.output;
                chain += 1;
            }
            // Worth it when at least a scale or a second shift is folded (a lone bias add stays).
            if chain < 2 {
                continue;
            }
            let Some(w) = decode_f64(dtype, &g.constants[wc].data) else { continue };
            let per_out = w.len() / channels;
            let folded: Vec<f64> = w.iter().enumerate().map(|(i, &x)| x * scale[i / per_out]).collect();
            let winfo = g.info(g.constants[wc].value).clone();
            let wname = format!("{}.folded", g.constants[wc].name);
            let new_w = g.add_constant(&wname, winfo, encode(dtype, &folded));
            let b = g.add_constant(
                &format!("conv_bias.{fresh}"),
                ValueInfo::new(&[channels], dtype),
                encode(dtype, &shift),
            );
            fresh += 1;
            let out_info = g.info(end).clone();
            let x = g.nodes[ci].inputs[0];
            // The chain's last node becomes `conv + broadcast(t)`; the rest is dead code.
            let y = g.add_node(Op::Conv { geometry }, vec![x, new_w], out_info.clone());
            let bb = g.add_node(Op::Broadcast { axes: vec![0, 2, 3] }, vec![b], out_info);
            let last = g.nodes.iter().position(|n| n.output == end).expect("chain end");
            let broadcast_node = g.nodes.pop().expect("pushed above");
            let conv_node = g.nodes.pop().expect("pushed above");
            g.nodes[last] = Node { op: Op::Binary(BinaryFn::Add), inputs: vec![y, bb], output: end };
            g.nodes.insert(last, broadcast_node);
            g.nodes.insert(last, conv_node);
            changed = true;
            break;
        }
        if !changed {
            return Ok(g);
        }
        g = dead_code(&g);
    }
}

/// Whether a unary op can run as the activation of a fused linear node.
fn is_activation(f: &UnaryFn) -> bool {
    matches!(
        f,
        UnaryFn::Relu
            | UnaryFn::GeluExact
            | UnaryFn::GeluTanh
            | UnaryFn::Tanh
            | UnaryFn::Sigmoid
            | UnaryFn::Silu
            | UnaryFn::LeakyRelu { .. }
    )
}

/// `matmul(x, permute(w, [1, 0]))`, optionally `+ broadcast(b)` and an activation, into one
/// [`Op::FusedLinear`] node (`x` of rank 2 or 3; `w` and `b` constants).
pub fn fuse_linear(g: &Graph) -> Graph {
    let mut g = g.clone();
    let producer: HashMap<ValueId, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.output, i)).collect();
    let count = readers(&g);
    let is_output = |g: &Graph, v: ValueId| g.outputs.iter().any(|p| p.value == v);
    let single_reader = |g: &Graph, v: ValueId| {
        if count[v.index()] != 1 || is_output(g, v) {
            return None;
        }
        g.nodes.iter().position(|n| n.inputs.contains(&v))
    };
    let mut replaced: Vec<(usize, Node)> = Vec::new();
    for mi in 0..g.nodes.len() {
        if g.nodes[mi].op != Op::MatMul {
            continue;
        }
        let (x, wt) = (g.nodes[mi].inputs[0], g.nodes[mi].inputs[1]);
        if !(2..=3).contains(&g.info(x).dims.len()) {
            continue;
        }
        let Some(&pi) = producer.get(&wt) else { continue };
        if g.nodes[pi].op != (Op::Permute { perm: vec![1, 0] }) || constant_of(&g, g.nodes[pi].inputs[0]).is_none() {
            continue;
        }
        let w = g.nodes[pi].inputs[0];
        let mut end = g.nodes[mi].output;
        let mut inputs = vec![x, w];
        let mut bias = false;
        if let Some(ai) = single_reader(&g, end) {
            let a = &g.nodes[ai];
            if a.op == Op::Binary(BinaryFn::Add) && a.inputs[0] == end {
                let bv = a.inputs[1];
                let rank = g.info(end).dims.len();
                let lead: Vec<usize> = (0..rank - 1).collect();
                if let Some(&bi) = producer.get(&bv)
                    && g.nodes[bi].op == (Op::Broadcast { axes: lead })
                    && constant_of(&g, g.nodes[bi].inputs[0]).is_some()
                {
                    inputs.push(g.nodes[bi].inputs[0]);
                    bias = true;
                    end = a.output;
                }
            }
        }
        let mut activation = None;
        if let Some(ui) = single_reader(&g, end)
            && let Op::Unary(f) = &g.nodes[ui].op
            && is_activation(f)
        {
            activation = Some(*f);
            end = g.nodes[ui].output;
        }
        let last = g.nodes.iter().position(|n| n.output == end).expect("end");
        replaced.push((last, Node { op: Op::FusedLinear { bias, activation }, inputs, output: end }));
    }
    for (i, n) in replaced {
        g.nodes[i] = n;
    }
    dead_code(&g)
}

/// `conv(x, w)`, then optionally `+ broadcast(b)` (a per-channel bias), `+ z` (a residual of the
/// output's dims, either operand order) and an activation, into one [`Op::FusedConv`] node: the
/// convolution adds onto the residual's buffer and the bias and activation run in one pass.
pub fn fuse_conv(g: &Graph) -> Graph {
    let mut g = g.clone();
    let producer: HashMap<ValueId, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.output, i)).collect();
    let count = readers(&g);
    let single_reader = |g: &Graph, v: ValueId| {
        if count[v.index()] != 1 || g.outputs.iter().any(|p| p.value == v) {
            return None;
        }
        g.nodes.iter().position(|n| n.inputs.contains(&v))
    };
    let mut replaced: Vec<(usize, Node)> = Vec::new();
    // Nodes already merged into an earlier convolution (two convolutions may meet at one add).
    let mut claimed = vec![false; g.nodes.len()];
    for ci in 0..g.nodes.len() {
        let Op::Conv { geometry } = g.nodes[ci].op else { continue };
        let free = |i: Option<usize>, claimed: &[bool]| i.filter(|&i| !claimed[i]);
        let mut end = g.nodes[ci].output;
        let mut inputs = g.nodes[ci].inputs.clone();
        let (mut bias, mut residual, mut activation) = (false, false, None);
        if let Some(ai) = free(single_reader(&g, end), &claimed)
            && g.nodes[ai].op == Op::Binary(BinaryFn::Add)
            && g.nodes[ai].inputs[0] == end
            && let Some(b) = channel_source(&g, &producer, g.nodes[ai].inputs[1], geometry.out_channels)
            && g.info(b).dims == [geometry.out_channels]
        {
            inputs.push(b);
            bias = true;
            end = g.nodes[ai].output;
            claimed[ai] = true;
        }
        if let Some(ai) = free(single_reader(&g, end), &claimed)
            && g.nodes[ai].op == Op::Binary(BinaryFn::Add)
        {
            let [a, b] = [g.nodes[ai].inputs[0], g.nodes[ai].inputs[1]];
            let z = if a == end { b } else { a };
            if z != end && g.info(z) == g.info(end) {
                inputs.push(z);
                residual = true;
                end = g.nodes[ai].output;
                claimed[ai] = true;
            }
        }
        if let Some(ui) = free(single_reader(&g, end), &claimed)
            && let Op::Unary(f) = &g.nodes[ui].op
            && is_activation(f)
        {
            activation = Some(*f);
            end = g.nodes[ui].output;
            claimed[ui] = true;
        }
        if end == g.nodes[ci].output {
            continue; // nothing to fuse
        }
        let last = g.nodes.iter().position(|n| n.output == end).expect("end");
        let op = Op::FusedConv { geometry, bias, residual, activation };
        replaced.push((last, Node { op, inputs, output: end }));
    }
    for (i, n) in replaced {
        g.nodes[i] = n;
    }
    dead_code(&g)
}

/// Merges chains of element-wise ops (each step's result read only by the next) into
/// [`Op::FusedElementwise`] nodes: one pass over memory instead of one per op.
pub fn fuse_elementwise(g: &Graph) -> Graph {
    let mut g = g.clone();
    // Every unary or binary node as a one-op program.
    for n in &mut g.nodes {
        let steps = match n.op {
            Op::Unary(f) => vec![Step::Input(0), Step::Unary(f)],
            Op::Binary(f) => vec![Step::Input(0), Step::Input(1), Step::Binary(f)],
            _ => continue,
        };
        n.op = Op::FusedElementwise { steps };
    }
    loop {
        let count = readers(&g);
        let producer: HashMap<ValueId, usize> = g.nodes.iter().enumerate().map(|(i, n)| (n.output, i)).collect();
        let mut merged = false;
        for ni in 0..g.nodes.len() {
            if !matches!(g.nodes[ni].op, Op::FusedElementwise { .. }) {
                continue;
            }
            for k in 0..g.nodes[ni].inputs.len() {
                let v = g.nodes[ni].inputs[k];
                let Some(&pi) = producer.get(&v) else { continue };
                if count[v.index()] != 1 || !matches!(g.nodes[pi].op, Op::FusedElementwise { .. }) {
                    continue;
                }
                if g.info(v).dtype != g.info(g.nodes[ni].output).dtype {
                    continue;
                }
                if let Some(n) = inline(&g.nodes[ni], &g.nodes[pi], v)
                    && n.op.infer(&n.inputs.iter().map(|v| g.info(*v)).collect::<Vec<_>>(), g.info(n.output)).is_ok()
                {
                    g.nodes[ni] = n;
                    g.nodes.remove(pi);
                    merged = true;
                    break;
                }
            }
            if merged {
                break;
            }
        }
        if !merged {
            break;
        }
    }
    // A program of one op is that op again.
    for n in &mut g.nodes {
        if let Op::FusedElementwise { steps } = &n.op {
            match steps.as_slice() {
                [Step::Input(0), Step::Unary(f)] => n.op = Op::Unary(*f),
                [Step::Input(0), Step::Input(1), Step::Binary(f)] => n.op = Op::Binary(*f),
                _ => {}
            }
        }
    }
    g
}

/// `consumer` with its input `v` (made by `producer`) computed inline.
fn inline(consumer: &Node, producer: &Node, v: ValueId) -> Option<Node> {
    let (Op::FusedElementwise { steps: cs }, Op::FusedElementwise { steps: ps }) = (&consumer.op, &producer.op) else {
        return None;
    };
    let mut inputs: Vec<ValueId> = consumer.inputs.iter().copied().filter(|x| *x != v).collect();
    let index_of = |inputs: &mut Vec<ValueId>, x: ValueId| -> u8 {
        match inputs.iter().position(|y| *y == x) {
            Some(i) => i as u8,
            None => {
                inputs.push(x);
                (inputs.len() - 1) as u8
            }
        }
    };
    let mut steps = Vec::with_capacity(cs.len() + ps.len());
    for s in cs {
        match s {
            Step::Input(i) if consumer.inputs[*i as usize] == v => {
                for p in ps {
                    steps.push(match p {
                        Step::Input(j) => Step::Input(index_of(&mut inputs, producer.inputs[*j as usize])),
                        other => other.clone(),
                    });
                }
            }
            Step::Input(i) => steps.push(Step::Input(index_of(&mut inputs, consumer.inputs[*i as usize]))),
            other => steps.push(other.clone()),
        }
    }
    let fits = inputs.len() <= MAX_FUSED_INPUTS && depth(&steps) <= MAX_FUSED_DEPTH;
    fits.then_some(Node { op: Op::FusedElementwise { steps }, inputs, output: consumer.output })
}

fn depth(steps: &[Step]) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for s in steps {
        match s {
            Step::Input(_) => d += 1,
            Step::Unary(_) => {}
            Step::Binary(_) => d = d.saturating_sub(1),
        }
        max = max.max(d);
    }
    max
}

/// The buffers a run of the graph needs: each node's output gets a buffer that is free again
/// after the value's last reader (views keep their source's buffer alive), and a freed buffer of
/// the same size or larger is reused. This is what the runtime does (release after the last
/// read, reuse through the device's buffer cache).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The buffer each node's output lives in (`None` for views, which have no buffer).
    pub buffer_of: Vec<Option<usize>>,
    /// Each buffer's size in bytes.
    pub buffers: Vec<usize>,
    /// Bytes held at once at the worst point (the sum of the buffers).
    pub peak_bytes: usize,
    /// Bytes of every node output added up (what a run without reuse would hold).
    pub unplanned_bytes: usize,
}

/// Plans the buffers of a graph's intermediate values (inputs and constants are not counted).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<64, 64>, nn::ReLU, nn::Linear<64, 64>, nn::ReLU, nn::Linear<64, 64>) = BuildOn::build(&dev);
/// let g = tensile::export::trace(&model, &dev.zeros::<Rank2<8, 64>, f32>()).unwrap();
/// let plan = tensile::export::memory_plan(&g);
/// assert!(plan.peak_bytes < plan.unplanned_bytes);
/// ```
pub fn memory_plan(g: &Graph) -> MemoryPlan {
    let n = g.nodes.len();
    // The value whose buffer a value lives in (views alias their input's).
    let mut owner: Vec<usize> = (0..g.values.len()).collect();
    for node in &g.nodes {
        if node.op.is_view() {
            owner[node.output.index()] = owner[node.inputs[0].index()];
        }
    }
    let mut last = vec![0usize; g.values.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for v in &node.inputs {
            let o = owner[v.index()];
            last[o] = last[o].max(i);
        }
    }
    for p in &g.outputs {
        last[owner[p.value.index()]] = n;
    }
    let mut plan = MemoryPlan { buffer_of: vec![None; n], buffers: Vec::new(), peak_bytes: 0, unplanned_bytes: 0 };
    let mut free: Vec<usize> = Vec::new();
    let mut releases: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for (i, node) in g.nodes.iter().enumerate() {
        if !node.op.is_view() {
            let size = g.info(node.output).bytes();
            plan.unplanned_bytes += size;
            // Best fit among the free buffers, else a new one.
            let pick = free
                .iter()
                .enumerate()
                .filter(|(_, b)| plan.buffers[**b] >= size)
                .min_by_key(|(_, b)| plan.buffers[**b])
                .map(|(k, _)| k);
            let b = match pick {
                Some(k) => free.swap_remove(k),
                None => {
                    plan.buffers.push(size);
                    plan.buffers.len() - 1
                }
            };
            plan.buffer_of[i] = Some(b);
            let end = last[node.output.index()].max(i);
            releases[end].push(b);
        }
        free.append(&mut releases[i]);
    }
    plan.peak_bytes = plan.buffers.iter().sum();
    plan
}
