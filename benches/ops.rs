//! Core workloads, timed for tensile and, when `python3 -c "import torch"` works, for PyTorch on
//! the same machine with 2 threads, printed side by side.
//!
//! `cargo bench --bench ops` (set `TENSILE_BENCH_QUICK=1` for fewer repetitions). Each workload
//! reports the median of its repetitions; the two sides run alternately twice and each keeps its
//! better median, which damps the noise of a shared machine.

mod common;

use common::median;
use std::hint::black_box;
use std::time::Duration;
use tensile::prelude::*;

type T<S> = Tensor<S, f32, Cpu>;

fn tensile_times(reps: usize) -> Vec<(String, Duration)> {
    let dev = Cpu::seeded(0);
    let mut out = Vec::new();
    for n in [256usize, 1024, 2048] {
        let a: T<(usize, usize)> = dev.randn_like(&(n, n));
        let b: T<(usize, usize)> = dev.randn_like(&(n, n));
        let reps = if n >= 2048 { reps.min(5) } else { reps };
        out.push((format!("matmul {n}"), median(|| drop(black_box(a.clone().matmul(b.clone()))), reps)));
    }
    let n = 16 << 20;
    let a: T<(usize,)> = dev.randn_like(&(n,));
    let b: T<(usize,)> = dev.randn_like(&(n,));
    out.push(("a * b + a, 16M".into(), median(|| drop(black_box(a.clone() * b.clone() + a.clone())), reps)));
    out.push(("exp, 16M".into(), median(|| drop(black_box(a.clone().exp())), reps)));
    let m: T<(usize, usize)> = dev.randn_like(&(4096, 4096));
    out.push((
        "sum last axis 4096x4096".into(),
        median(|| drop(black_box(m.clone().sum::<(usize,), Axis<1>>())), reps),
    ));
    let s: T<(usize, usize)> = dev.randn_like(&(4096, 1024));
    out.push(("softmax 4096x1024".into(), median(|| drop(black_box(s.clone().softmax::<Axis<1>>())), reps)));
    out
}

/// The PyTorch side, after `common::TORCH_PRELUDE` (which defines `reps` and `median`).
const TORCH: &str = r#"
for n in (256, 1024, 2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    print(f"matmul {n}", median(lambda: a @ b, min(reps, 5) if n >= 2048 else reps))
a, b = torch.randn(16 << 20), torch.randn(16 << 20)
print("a * b + a, 16M", median(lambda: a * b + a, reps))
print("exp, 16M", median(lambda: torch.exp(a), reps))
m = torch.randn(4096, 4096)
print("sum last axis 4096x4096", median(lambda: m.sum(1), reps))
s = torch.randn(4096, 1024)
print("softmax 4096x1024", median(lambda: torch.softmax(s, 1), reps))
"#;

fn main() {
    common::compare(tensile_times, &format!("{}{TORCH}", common::TORCH_PRELUDE));
}
