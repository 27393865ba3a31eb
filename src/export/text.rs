//! The text form of a graph: one line per value, like `torch.fx`'s `print_tabular`.

use super::ir::{Graph, Op, Step, ValueInfo};
use crate::compat::prelude::*;
use crate::device::PoolWindows;
use core::fmt::{self, Display, Formatter};

fn ty(v: &ValueInfo) -> String {
    let dims: Vec<String> = v.dims.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", v.dtype, dims.join(", "))
}

/// The attributes of an op, as the listing shows them after its inputs.
fn attributes(op: &Op) -> String {
    match op {
        Op::Unary(f) => {
            let s = format!("{f:?}");
            match s.find('{') {
                Some(i) => s[i..].to_string(),
                None => String::new(),
            }
        }
        Op::Reduce { axes, .. } => format!("axes={axes:?}"),
        Op::Permute { perm } => format!("perm={perm:?}"),
        Op::Broadcast { axes } => format!("new_axes={axes:?}"),
        Op::Narrow { axis, start, step } => format!("axis={axis} start={start} step={step}"),
        Op::Select { axis, index } => format!("axis={axis} index={index}"),
        Op::Concat { axis } => format!("axis={axis}"),
        Op::Conv { geometry: g } | Op::ConvTranspose { geometry: g } => conv(g),
        Op::FusedConv { geometry: g, bias, residual, activation } => {
            let mut s = conv(g);
            if *bias {
                s.push_str(" +bias");
            }
            if *residual {
                s.push_str(" +residual");
            }
            if let Some(f) = activation {
                s.push_str(&format!(" activation={}", f.name()));
            }
            s
        }
        Op::MaxPool { geometry: g } | Op::AvgPool { geometry: g, .. } => match g.windows {
            PoolWindows::Sliding { kernel, stride, padding, dilation } => format!(
                "kernel={}x{} stride={}x{} padding={}x{} dilation={}x{}",
                kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]
            ),
            PoolWindows::Adaptive => format!("adaptive output={}x{}", g.output[0], g.output[1]),
        },
        Op::Gather { dims, .. } => format!("folded={dims:?}"),
        Op::Norm { eps, .. } => format!("eps={eps}"),
        Op::FusedElementwise { steps } => {
            let s: Vec<String> = steps
                .iter()
                .map(|s| match s {
                    Step::Input(i) => format!("${i}"),
                    Step::Unary(f) => f.name().to_string(),
                    Step::Binary(f) => f.name().to_string(),
                })
                .collect();
            format!("[{}]", s.join(" "))
        }
        Op::FusedLinear { activation: Some(f), .. } => format!("activation={}", f.name()),
        _ => String::new(),
    }
}

fn conv(g: &crate::device::ConvGeometry) -> String {
    format!(
        "kernel={}x{} stride={}x{} padding={}x{} dilation={}x{} groups={}",
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
        g.dilation[0],
        g.dilation[1],
        g.groups
    )
}

/// Prints the graph as a table: each value, what makes it, its inputs and its type.
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn;
/// let dev = Cpu::seeded(0);
/// let model: (nn::Linear<3, 2>, nn::ReLU) = BuildOn::build(&dev);
/// let g = tensile::export::trace(&model, &dev.zeros::<Rank2<1, 3>, f32>()).unwrap();
/// let text = g.to_string();
/// assert!(text.contains("matmul") && text.contains("relu") && text.contains("0.weight"));
/// ```
impl Display for Graph {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let elements: usize = self.constants.iter().map(|c| self.values[c.value.index()].numel()).sum();
        writeln!(
            f,
            "graph: {} inputs, {} constants ({} elements), {} nodes, {} outputs",
            self.inputs.len(),
            self.constants.len(),
            elements,
            self.nodes.len(),
            self.outputs.len()
        )?;
        let mut rows: Vec<[String; 5]> = Vec::new();
        rows.push(["value".into(), "op".into(), "inputs".into(), "type".into(), "attributes".into()]);
        for p in &self.inputs {
            rows.push([p.value.to_string(), "input".into(), p.name.clone(), ty(self.info(p.value)), String::new()]);
        }
        for c in &self.constants {
            rows.push([c.value.to_string(), "constant".into(), c.name.clone(), ty(self.info(c.value)), String::new()]);
        }
        for n in &self.nodes {
            let ins: Vec<String> = n.inputs.iter().map(|v| v.to_string()).collect();
            rows.push([n.output.to_string(), n.op.name(), ins.join(", "), ty(self.info(n.output)), attributes(&n.op)]);
        }
        let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if c < 4 {
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            writeln!(f, "  {}", line.trim_end())?;
        }
        let outs: Vec<String> = self.outputs.iter().map(|p| format!("{} = {}", p.name, p.value)).collect();
        write!(f, "  return {}", outs.join(", "))
    }
}
