//! The op-coverage workloads (convolution, pooling, normalisation, losses, attention), timed for
//! tensile and, when PyTorch is importable, for PyTorch with 2 threads, side by side.
//!
//! `cargo bench --bench nn_ops` (`TENSILE_BENCH_QUICK=1` for fewer repetitions).

mod common;

use common::median;
use std::hint::black_box;
use std::time::Duration;
use tensile::prelude::*;

type T<S> = Tensor<S, f32, Cpu>;
type Image = (usize, Const<64>, Const<56>, Const<56>);

fn tensile_times(reps: usize) -> Vec<(String, Duration)> {
    let dev = Cpu::seeded(0);
    let mut out = Vec::new();
    let conv_reps = reps.min(7);
    let x: T<Image> = dev.randn_like(&(32, Const, Const, Const));
    let w: T<Rank4<64, 64, 3, 3>> = dev.randn();
    out.push((
        "conv2d fwd 32x64x56x56 3x3 p1".into(),
        median(|| drop(black_box(x.clone().conv2d(w.clone(), ConvOpts::<1, 1>))), conv_reps),
    ));
    out.push((
        "conv2d fwd+bwd (dx, dw)".into(),
        median(
            || {
                let tape = OwnedTape::new(Gradients::leaky());
                let y = x.trace_on(&tape).conv2d(w.trace_on(&tape), ConvOpts::<1, 1>);
                drop(black_box(y.sum::<Rank0, _>().backward()));
            },
            conv_reps,
        ),
    ));
    out.push((
        "max_pool2d 32x64x56x56 k2 s2".into(),
        median(|| drop(black_box(x.clone().max_pool2d(PoolOpts::<2, 2>))), reps),
    ));
    out
}

const TORCH: &str = r#"
import sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(2)
reps = int(sys.argv[1])
def median(f, reps):
    f(); f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[reps // 2]
x = torch.randn(32, 64, 56, 56)
w = torch.randn(64, 64, 3, 3)
print("conv2d fwd 32x64x56x56 3x3 p1", median(lambda: F.conv2d(x, w, padding=1), min(reps, 7)))
xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
def fwd_bwd():
    xg.grad = None; wg.grad = None
    F.conv2d(xg, wg, padding=1).sum().backward()
print("conv2d fwd+bwd (dx, dw)", median(fwd_bwd, min(reps, 7)))
print("max_pool2d 32x64x56x56 k2 s2", median(lambda: F.max_pool2d(x, 2, 2), reps))
"#;

fn main() {
    common::compare(tensile_times, TORCH);
}
