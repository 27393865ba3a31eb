//! `Display` in the style of PyTorch's `print(tensor)`.

use super::Tensor;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::Device;
use crate::dtypes::Dtype;
use crate::shapes::Shape;
use core::fmt;

/// Tensors with more elements than this print only their edges, as PyTorch does.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

fn fmt_elem<E: Dtype>(v: E, float: bool, ints: bool) -> String {
    if E::NAME == "bool" {
        return if v.as_f64() != 0.0 { "True".into() } else { "False".into() };
    }
    let x = v.as_f64();
    if !float {
        return format!("{x}");
    }
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if ints {
        format!("{x:.0}.")
    } else {
        format!("{x:.4}")
    }
}

fn write_nested(out: &mut String, items: &[String], dims: &[usize], width: usize, depth: usize, summarize: bool) {
    if dims.is_empty() {
        out.push_str(&format!("{:>width$}", items[0]));
        return;
    }
    let n = dims[0];
    let stride = items.len() / n.max(1);
    let indices: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (k, i) in indices.iter().enumerate() {
        if k > 0 {
            if dims.len() == 1 {
                out.push_str(", ");
            } else {
                out.push(',');
                out.push_str(&"\n".repeat(dims.len() - 1));
                out.push_str(&" ".repeat(depth + 8));
            }
        }
        match i {
            Some(i) => write_nested(out, &items[i * stride..(i + 1) * stride], &dims[1..], width, depth + 1, summarize),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

impl<S: Shape, E: Dtype, D: Device, T> fmt::Display for Tensor<S, E, D, T> {
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let t = dev.tensor([[1.5f32, -2.0], [3.25, 4.0]]);
    /// assert_eq!(t.to_string(), "tensor([[ 1.5000, -2.0000],\n        [ 3.2500,  4.0000]])");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.to_vec();
        let float = matches!(E::NAME, "float32" | "float64" | "float16" | "bfloat16");
        let ints = float && vals.iter().all(|v| math::fract(v.as_f64()) == 0.0 || !v.as_f64().is_finite());
        let items: Vec<String> = vals.iter().map(|&v| fmt_elem(v, float, ints)).collect();
        let width = items.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut out = String::from("tensor(");
        let dims = self.dims();
        write_nested(&mut out, &items, dims.as_slice(), width, 0, vals.len() > SUMMARY_THRESHOLD);
        if !matches!(E::NAME, "float32" | "int64" | "bool") {
            out.push_str(&format!(", dtype=torch.{}", E::NAME));
        }
        out.push(')');
        f.write_str(&out)
    }
}

impl<S: Shape, E: Dtype, D: Device, T> fmt::Debug for Tensor<S, E, D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} shape={:?}", self.dims())
    }
}
