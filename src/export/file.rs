//! The graph file: one file holding the graph and its weights (`docs/EXPORT_FORMAT.md`).
//!
//! ```text
//! magic "TNSLGRPH" | version u32 | reserved u32 | header_len u64 | data_len u64
//! header (header_len bytes) | zero padding to a multiple of 64
//! data (data_len bytes; each constant at a 64-byte-aligned offset, so it can be mapped)
//! checksum u64 (FNV-1a of every byte before it)
//! ```
//! All numbers are little-endian. Reading checks everything before building anything: a
//! truncated, corrupted or newer file is an `Err` that says what is wrong.

use super::ir::{Constant, Graph, IR_VERSION, Node, Op, Port, Step, ValueId, ValueInfo};
use crate::compat::prelude::*;
use crate::device::{ConvGeometry, Layout, PoolGeometry, PoolWindows};
use crate::dtypes::DType;
use crate::error::{Error, Result};
use crate::ops::{BinaryFn, CmpFn, ReduceKind, UnaryFn};
use crate::shapes::{Dims, MAX_RANK};
#[cfg(feature = "std")]
use std::path::Path;

const MAGIC: &[u8; 8] = b"TNSLGRPH";
const PREAMBLE: usize = 32;
const ALIGN: usize = 64;
const FORMAT: &str = "tensile graph";

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed { format: FORMAT, reason: reason.into() }
}

/// FNV-1a, 64-bit: a checksum that catches flipped and shifted bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn list(&mut self, v: &[usize]) {
        self.u8(v.len() as u8);
        for &x in v {
            self.usize(x);
        }
    }
    fn pair(&mut self, v: [usize; 2]) {
        self.usize(v[0]);
        self.usize(v[1]);
    }
    fn layout(&mut self, l: &Layout) {
        self.list(l.dims.as_slice());
        self.list(l.strides.as_slice());
        self.usize(l.offset);
    }
    fn activation(&mut self, f: &Option<UnaryFn>) {
        match f {
            Some(f) => {
                self.u8(1);
                self.unary(f);
            }
            None => self.u8(0),
        }
    }
    fn conv(&mut self, g: &ConvGeometry) {
        for v in [g.batch, g.in_channels, g.out_channels, g.groups] {
            self.usize(v);
        }
        for p in [g.input, g.kernel, g.stride, g.padding, g.dilation] {
            self.pair(p);
        }
    }
    fn pool(&mut self, g: &PoolGeometry) {
        self.usize(g.planes);
        self.pair(g.input);
        self.pair(g.output);
        match g.windows {
            PoolWindows::Sliding { kernel, stride, padding, dilation } => {
                self.u8(0);
                for p in [kernel, stride, padding, dilation] {
                    self.pair(p);
                }
            }
            PoolWindows::Adaptive => self.u8(1),
        }
    }
    fn unary(&mut self, f: &UnaryFn) {
        self.str(f.name());
        let p = f.params();
        self.u8(p.len() as u8);
        for v in p {
            self.f64(v);
        }
    }
    fn op(&mut self, op: &Op) {
        match op {
            Op::Unary(f) => {
                self.u8(0);
                self.unary(f);
            }
            Op::Binary(f) => {
                self.u8(1);
                self.u8(BinaryFn::ALL.iter().position(|x| x == f).expect("listed") as u8);
            }
            Op::Compare(f) => {
                self.u8(2);
                self.u8(CmpFn::ALL.iter().position(|x| x == f).expect("listed") as u8);
            }
            Op::Where => self.u8(3),
            Op::Cast => self.u8(4),
            Op::Reduce { kind, axes } => {
                self.u8(5);
                self.u8(match kind {
                    ReduceKind::Sum => 0,
                    ReduceKind::Max => 1,
                    ReduceKind::Min => 2,
                });
                self.list(axes);
            }
            Op::MatMul => self.u8(6),
            Op::Reshape => self.u8(7),
            Op::Permute { perm } => {
                self.u8(8);
                self.list(perm);
            }
            Op::Broadcast { axes } => {
                self.u8(9);
                self.list(axes);
            }
            Op::Narrow { axis, start, step } => {
                self.u8(10);
                for v in [*axis, *start, *step] {
                    self.usize(v);
                }
            }
            Op::Select { axis, index } => {
                self.u8(11);
                self.usize(*axis);
                self.usize(*index);
            }
            Op::Concat { axis } => {
                self.u8(12);
                self.usize(*axis);
            }
            Op::Stack => self.u8(13),
            Op::SoftmaxRows { log } => {
                self.u8(14);
                self.bool(*log);
            }
            Op::Conv { geometry } => {
                self.u8(15);
                self.conv(geometry);
            }
            Op::ConvTranspose { geometry } => {
                self.u8(16);
                self.conv(geometry);
            }
            Op::MaxPool { geometry } => {
                self.u8(17);
                self.pool(geometry);
            }
            Op::AvgPool { geometry, count_include_pad } => {
                self.u8(18);
                self.pool(geometry);
                self.bool(*count_include_pad);
            }
            Op::Gather { dims, index } => {
                self.u8(19);
                self.list(dims);
                self.layout(index);
            }
            Op::Norm { eps, center, weight, bias } => {
                self.u8(20);
                self.f64(*eps);
                self.bool(*center);
                self.bool(*weight);
                self.bool(*bias);
            }
            Op::FusedElementwise { steps } => {
                self.u8(21);
                self.u32(steps.len() as u32);
                for s in steps {
                    match s {
                        Step::Input(i) => {
                            self.u8(0);
                            self.u8(*i);
                        }
                        Step::Unary(f) => {
                            self.u8(1);
                            self.unary(f);
                        }
                        Step::Binary(f) => {
                            self.u8(2);
                            self.u8(BinaryFn::ALL.iter().position(|x| x == f).expect("listed") as u8);
                        }
                    }
                }
            }
            Op::FusedLinear { bias, activation } => {
                self.u8(22);
                self.bool(*bias);
                self.activation(activation);
            }
            Op::FusedConv { geometry, bias, residual, activation } => {
                self.u8(23);
                self.conv(geometry);
                self.bool(*bias);
                self.bool(*residual);
                self.activation(activation);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| malformed(format!("the header ends inside {what} (at byte {})", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn usize(&mut self, what: &str) -> Result<usize> {
        let v = self.u64(what)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= isize::MAX as usize)
            .ok_or_else(|| malformed(format!("{what} {v} is too large")))
    }
    fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn bool(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(malformed(format!("{what} is {b}, not a bool"))),
        }
    }
    fn str(&mut self, what: &str) -> Result<String> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| malformed(format!("{what} is not UTF-8")))
    }
    /// A count of items of at least `min` bytes each (so a corrupted count cannot allocate more
    /// than the header holds).
    fn count(&mut self, min: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min) > self.bytes.len() - self.pos {
            return Err(malformed(format!("{what}: {n} do not fit the header")));
        }
        Ok(n)
    }
    fn list(&mut self, what: &str) -> Result<Vec<usize>> {
        let n = self.u8(what)? as usize;
        if n > MAX_RANK {
            return Err(malformed(format!("{what} has {n} entries (at most {MAX_RANK})")));
        }
        (0..n).map(|_| self.usize(what)).collect()
    }
    fn pair(&mut self, what: &str) -> Result<[usize; 2]> {
        Ok([self.usize(what)?, self.usize(what)?])
    }
    fn layout(&mut self, what: &str) -> Result<Layout> {
        let dims = self.list(what)?;
        let strides = self.list(what)?;
        if dims.len() != strides.len() {
            return Err(malformed(format!("{what}: {} dims but {} strides", dims.len(), strides.len())));
        }
        Ok(Layout { dims: Dims::from_slice(&dims), strides: Dims::from_slice(&strides), offset: self.usize(what)? })
    }
    fn conv(&mut self) -> Result<ConvGeometry> {
        let w = "a convolution geometry";
        let (batch, in_channels, out_channels, groups) =
            (self.usize(w)?, self.usize(w)?, self.usize(w)?, self.usize(w)?);
        let (input, kernel, stride, padding, dilation) =
            (self.pair(w)?, self.pair(w)?, self.pair(w)?, self.pair(w)?, self.pair(w)?);
        ConvGeometry::new(batch, in_channels, out_channels, groups, input, kernel, stride, padding, dilation)
            .ok_or_else(|| malformed("an inconsistent convolution geometry"))
    }
    fn pool(&mut self) -> Result<PoolGeometry> {
        let w = "a pooling geometry";
        let (planes, input, output) = (self.usize(w)?, self.pair(w)?, self.pair(w)?);
        let windows = match self.u8(w)? {
            0 => PoolWindows::Sliding {
                kernel: self.pair(w)?,
                stride: self.pair(w)?,
                padding: self.pair(w)?,
                dilation: self.pair(w)?,
            },
            1 => PoolWindows::Adaptive,
            t => return Err(malformed(format!("pooling window kind {t}"))),
        };
        Ok(PoolGeometry { planes, input, output, windows })
    }
    fn unary(&mut self) -> Result<UnaryFn> {
        let name = self.str("a unary op's name")?;
        let n = self.u8("a unary op's field count")? as usize;
        let params: Vec<f64> = (0..n).map(|_| self.f64("a unary op's field")).collect::<Result<_>>()?;
        UnaryFn::from_parts(&name, &params)
            .ok_or_else(|| malformed(format!("unknown unary op `{name}` with {n} fields")))
    }
    fn binary(&mut self) -> Result<BinaryFn> {
        let i = self.u8("a binary op")? as usize;
        BinaryFn::ALL.get(i).copied().ok_or_else(|| malformed(format!("binary op code {i}")))
    }
    fn op(&mut self) -> Result<Op> {
        let tag = self.u8("an op")?;
        Ok(match tag {
            0 => Op::Unary(self.unary()?),
            1 => Op::Binary(self.binary()?),
            2 => {
                let i = self.u8("a comparison")? as usize;
                Op::Compare(CmpFn::ALL.get(i).copied().ok_or_else(|| malformed(format!("comparison code {i}")))?)
            }
            3 => Op::Where,
            4 => Op::Cast,
            5 => {
                let kind = match self.u8("a reduction")? {
                    0 => ReduceKind::Sum,
                    1 => ReduceKind::Max,
                    2 => ReduceKind::Min,
                    k => return Err(malformed(format!("reduction code {k}"))),
                };
                Op::Reduce { kind, axes: self.list("reduced axes")? }
            }
            6 => Op::MatMul,
            7 => Op::Reshape,
            8 => Op::Permute { perm: self.list("a permutation")? },
            9 => Op::Broadcast { axes: self.list("broadcast axes")? },
            10 => Op::Narrow { axis: self.usize("narrow")?, start: self.usize("narrow")?, step: self.usize("narrow")? },
            11 => Op::Select { axis: self.usize("select")?, index: self.usize("select")? },
            12 => Op::Concat { axis: self.usize("concat")? },
            13 => Op::Stack,
            14 => Op::SoftmaxRows { log: self.bool("softmax")? },
            15 => Op::Conv { geometry: self.conv()? },
            16 => Op::ConvTranspose { geometry: self.conv()? },
            17 => Op::MaxPool { geometry: self.pool()? },
            18 => Op::AvgPool { geometry: self.pool()?, count_include_pad: self.bool("avg_pool2d")? },
            19 => {
                let d = self.list("gather dims")?;
                let dims: [usize; 3] = d.try_into().map_err(|_| malformed("gather dims are not 3"))?;
                Op::Gather { dims, index: self.layout("a gather index")? }
            }
            20 => Op::Norm {
                eps: self.f64("norm")?,
                center: self.bool("norm")?,
                weight: self.bool("norm")?,
                bias: self.bool("norm")?,
            },
            21 => {
                let n = self.count(2, "fused steps")?;
                let mut steps = Vec::with_capacity(n);
                for _ in 0..n {
                    steps.push(match self.u8("a fused step")? {
                        0 => Step::Input(self.u8("a fused input")?),
                        1 => Step::Unary(self.unary()?),
                        2 => Step::Binary(self.binary()?),
                        t => return Err(malformed(format!("fused step kind {t}"))),
                    });
                }
                Op::FusedElementwise { steps }
            }
            22 => {
                let bias = self.bool("linear")?;
                let activation = if self.bool("linear")? { Some(self.unary()?) } else { None };
                Op::FusedLinear { bias, activation }
            }
            23 => {
                let geometry = self.conv()?;
                let (bias, residual) = (self.bool("fused conv")?, self.bool("fused conv")?);
                let activation = if self.bool("fused conv")? { Some(self.unary()?) } else { None };
                Op::FusedConv { geometry, bias, residual, activation }
            }
            t => return Err(malformed(format!("op code {t} (a newer tensile wrote this file?)"))),
        })
    }
    fn value(&mut self, n: usize) -> Result<ValueId> {
        let v = self.u32("a value id")?;
        if v as usize >= n {
            return Err(malformed(format!("value %{v} out of range (the graph has {n})")));
        }
        Ok(ValueId(v))
    }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl Graph {
    /// The graph as file bytes (see `docs/EXPORT_FORMAT.md`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn;
    /// use tensile::export::Graph;
    /// let dev = Cpu::seeded(0);
    /// let model: (nn::Linear<3, 2>, nn::Tanh) = BuildOn::build(&dev);
    /// let g = tensile::export::trace(&model, &dev.zeros::<Rank2<1, 3>, f32>()).unwrap();
    /// let bytes = g.to_bytes();
    /// assert_eq!(Graph::from_bytes(&bytes).unwrap(), g);
    /// assert!(Graph::from_bytes(&bytes[..bytes.len() - 1]).is_err()); // truncated
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut h = Writer(Vec::new());
        h.u32(self.values.len() as u32);
        for v in &self.values {
            h.u8(v.dtype.code());
            h.list(&v.dims);
        }
        h.u32(self.inputs.len() as u32);
        for p in &self.inputs {
            h.str(&p.name);
            h.u32(p.value.0);
        }
        let mut data = Vec::new();
        h.u32(self.constants.len() as u32);
        for c in &self.constants {
            data.resize(align(data.len()), 0);
            h.str(&c.name);
            h.u32(c.value.0);
            h.usize(data.len());
            h.usize(c.data.len());
            data.extend_from_slice(&c.data);
        }
        h.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            h.op(&n.op);
            h.u32(n.inputs.len() as u32);
            for v in &n.inputs {
                h.u32(v.0);
            }
            h.u32(n.output.0);
        }
        h.u32(self.outputs.len() as u32);
        for p in &self.outputs {
            h.str(&p.name);
            h.u32(p.value.0);
        }
        let header = h.0;
        let mut out = Writer(Vec::with_capacity(PREAMBLE + align(header.len()) + data.len() + 8));
        out.0.extend_from_slice(MAGIC);
        out.u32(IR_VERSION);
        out.u32(0);
        out.usize(header.len());
        out.usize(data.len());
        out.0.extend_from_slice(&header);
        out.0.resize(align(PREAMBLE + header.len()), 0);
        out.0.extend_from_slice(&data);
        let sum = fnv1a(&out.0);
        out.u64(sum);
        out.0
    }

    /// Reads a graph from file bytes, checking the framing, the checksum, every field and then
    /// the graph itself ([`Graph::validate`]); `Err` naming the first problem.
    pub fn from_bytes(bytes: &[u8]) -> Result<Graph> {
        if bytes.len() < PREAMBLE + 8 {
            return Err(malformed(format!("{} bytes is shorter than the file's framing", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(malformed("not a tensile graph file (wrong magic bytes)"));
        }
        let mut r = Reader { bytes, pos: 8 };
        let version = r.u32("the version")?;
        if version > IR_VERSION {
            return Err(malformed(format!(
                "format version {version} is newer than this tensile reads ({IR_VERSION}): upgrade tensile"
            )));
        }
        if version == 0 {
            return Err(malformed("format version 0"));
        }
        let _reserved = r.u32("reserved")?;
        let (header_len, data_len) = (r.usize("the header length")?, r.usize("the data length")?);
        let data_start = align(PREAMBLE.saturating_add(header_len));
        let total = data_start.checked_add(data_len).and_then(|n| n.checked_add(8));
        if total != Some(bytes.len()) {
            return Err(malformed(format!(
                "the framing says {} bytes, the file has {} (truncated or padded?)",
                total.map_or("too many".into(), |t| t.to_string()),
                bytes.len()
            )));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
            return Err(malformed("the checksum does not match (the file is corrupted)"));
        }
        let data = &bytes[data_start..data_start + data_len];
        let mut r = Reader { bytes: &bytes[..PREAMBLE + header_len], pos: PREAMBLE };
        let mut g = Graph::default();
        let nv = r.count(2, "values")?;
        for _ in 0..nv {
            let code = r.u8("a dtype")?;
            let dtype = DType::from_code(code).ok_or_else(|| malformed(format!("dtype code {code}")))?;
            g.values.push(ValueInfo { dims: r.list("a value's dims")?, dtype });
        }
        for _ in 0..r.count(8, "inputs")? {
            let name = r.str("an input's name")?;
            g.inputs.push(Port { name, value: r.value(nv)? });
        }
        for _ in 0..r.count(24, "constants")? {
            let name = r.str("a constant's name")?;
            let value = r.value(nv)?;
            let (offset, len) = (r.usize("a constant's offset")?, r.usize("a constant's length")?);
            let end = offset.checked_add(len).filter(|&e| e <= data.len());
            let end = end.ok_or_else(|| malformed(format!("constant `{name}` lies outside the data section")))?;
            g.constants.push(Constant { name, value, data: data[offset..end].to_vec() });
        }
        for _ in 0..r.count(9, "nodes")? {
            let op = r.op()?;
            let n = r.count(4, "a node's inputs")?;
            let inputs = (0..n).map(|_| r.value(nv)).collect::<Result<Vec<_>>>()?;
            g.nodes.push(Node { op, inputs, output: r.value(nv)? });
        }
        for _ in 0..r.count(8, "outputs")? {
            let name = r.str("an output's name")?;
            g.outputs.push(Port { name, value: r.value(nv)? });
        }
        if r.pos != r.bytes.len() {
            return Err(malformed(format!("{} unread header bytes", r.bytes.len() - r.pos)));
        }
        g.validate()?;
        Ok(g)
    }

    /// Writes the graph file to `path` (through a temporary file and a rename, so a crash leaves
    /// any older file whole).
    #[cfg(feature = "std")]
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::io::write_atomically(path.as_ref(), &self.to_bytes())
    }

    /// Reads a graph file written by [`Graph::save`].
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn;
    /// use tensile::export::Graph;
    /// let dev = Cpu::seeded(0);
    /// let model: nn::Linear<2, 2> = BuildOn::build(&dev);
    /// let g = tensile::export::trace(&model, &dev.zeros::<Rank2<1, 2>, f32>()).unwrap();
    /// let path = std::env::temp_dir().join("tensile-doc-graph.tgraph");
    /// g.save(&path).unwrap();
    /// assert_eq!(Graph::load(&path).unwrap(), g);
    /// ```
    #[cfg(feature = "std")]
    pub fn load(path: impl AsRef<Path>) -> Result<Graph> {
        Graph::from_bytes(&crate::io::read(path.as_ref())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{Runtime, Value, optimize, trace};
    use crate::nn::{self, BuildOn};
    use crate::prelude::*;
    use proptest::prelude::*;

    /// A small CNN's fused graph: every kind of field the format has (geometries, fused
    /// programs, linear nodes, constants).
    fn sample() -> Vec<u8> {
        let dev = Cpu::seeded(0);
        type M = (
            nn::Conv2d<1, 2, 3>,
            nn::BatchNorm2d<2>,
            nn::ReLU,
            nn::MaxPool2d<2>,
            nn::Flatten,
            nn::Linear<8, 3>,
            nn::Tanh,
        );
        let model: M = BuildOn::build(&dev);
        let x: Tensor<Rank4<1, 1, 6, 6>, f32, Cpu> = dev.zeros();
        optimize(&trace(&model, &x).unwrap()).unwrap().to_bytes()
    }

    /// The bytes with the checksum recomputed, so a mutation reaches the parser.
    fn resealed(mut body: Vec<u8>) -> Vec<u8> {
        if body.len() >= 8 {
            let n = body.len() - 8;
            let sum = fnv1a(&body[..n]);
            body[n..].copy_from_slice(&sum.to_le_bytes());
        }
        body
    }

    /// Loading never panics; a graph that loads runs (or says why not) without panicking.
    fn load_and_run(bytes: &[u8]) {
        if let Ok(g) = Graph::from_bytes(bytes)
            && let Ok(rt) = Runtime::new(&g)
        {
            let inputs: Vec<Value> = g
                .inputs
                .iter()
                .map(|p| {
                    let info = g.info(p.value);
                    Value::from_vec(&info.dims, vec![0.5f32; info.numel()]).unwrap()
                })
                .collect();
            let _ = rt.run(&inputs);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        #[cfg_attr(miri, ignore)]
        fn mutated_files_never_panic(
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<proptest::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let good = sample();
            let mut bytes = good.clone();
            for (at, v) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
            // unsealed: the checksum refuses it (unless the edit changed nothing)
            if bytes != good {
                prop_assert!(Graph::from_bytes(&bytes).is_err());
            }
            let mut sealed = resealed(bytes);
            if truncate {
                sealed.truncate(cut.index(sealed.len()));
            }
            load_and_run(&sealed);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn every_single_byte_flip_of_the_header_is_handled() {
        let good = sample();
        let header_end = PREAMBLE + u64::from_le_bytes(good[16..24].try_into().unwrap()) as usize;
        for i in 8..header_end {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                load_and_run(&resealed(b));
            }
        }
    }
}
