//! Core workloads, timed for tensile and, when `python3 -c "import torch"` works, for PyTorch on
//! the same machine with 2 threads, printed side by side.
//!
//! `cargo bench --bench ops` (set `TENSILE_BENCH_QUICK=1` for fewer repetitions). Each workload
//! reports the median of its repetitions; the two sides alternate row by row, three rounds each,
//! and each keeps its best median, which damps the noise of a shared machine.

mod common;

use common::Row;
use std::hint::black_box;
use tensile::prelude::*;

type T<S> = Tensor<S, f32, Cpu>;

fn main() {
    let (reps, _) = common::reps_and_rounds();
    let dev = Cpu::seeded(0);
    let mut matrices = Vec::new();
    for n in [256usize, 1024, 2048] {
        let a: T<(usize, usize)> = dev.randn_like(&(n, n));
        let b: T<(usize, usize)> = dev.randn_like(&(n, n));
        matrices.push((n, a, b));
    }
    let n = 16 << 20;
    let (a, b): (T<(usize,)>, T<(usize,)>) = (dev.randn_like(&(n,)), dev.randn_like(&(n,)));
    let m: T<(usize, usize)> = dev.randn_like(&(4096, 4096));
    let s: T<(usize, usize)> = dev.randn_like(&(4096, 1024));

    // declared after the data, which the rows borrow
    let mut rows = Vec::new();
    for (n, a, b) in &matrices {
        let reps = if *n >= 2048 { reps.min(5) } else { reps };
        rows.push(Row::new(&format!("matmul {n}"), reps, || drop(black_box(a.clone().matmul(b.clone())))));
    }
    rows.push(Row::new("a * b + a, 16M", reps, || drop(black_box(a.clone() * b.clone() + a.clone()))));
    rows.push(Row::new("exp, 16M", reps, || drop(black_box(a.clone().exp()))));
    rows.push(Row::new("sum last axis 4096x4096", reps, || drop(black_box(m.clone().sum::<(usize,), Axis<1>>()))));
    rows.push(Row::new("softmax 4096x1024", reps, || drop(black_box(s.clone().softmax::<Axis<1>>()))));
    common::compare(rows, TORCH);
}

/// The PyTorch side, after `common::TORCH_PRELUDE`: the same workloads under the same names.
const TORCH: &str = r#"
for n in (256, 1024, 2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    work[f"matmul {n}"] = lambda a=a, b=b: a @ b
a, b = torch.randn(16 << 20), torch.randn(16 << 20)
work["a * b + a, 16M"] = lambda: a * b + a
work["exp, 16M"] = lambda: torch.exp(a)
m = torch.randn(4096, 4096)
work["sum last axis 4096x4096"] = lambda: m.sum(1)
s = torch.randn(4096, 1024)
work["softmax 4096x1024"] = lambda: torch.softmax(s, 1)
"#;
