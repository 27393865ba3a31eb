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
    drop(x);

    let h: T<(usize, Const<1024>)> = dev.randn_like(&(4096, Const));
    let (g, b): (T<Rank1<1024>>, T<Rank1<1024>>) = (dev.randn(), dev.randn());
    out.push((
        "layer_norm 4096x1024".into(),
        median(|| drop(black_box(h.clone().layer_norm(g.clone(), b.clone(), 1e-5))), reps),
    ));
    out.push((
        "layer_norm fwd+bwd".into(),
        median(
            || {
                let tape = OwnedTape::new(Gradients::leaky());
                let y = h.trace_on(&tape).layer_norm(g.trace_on(&tape), b.trace_on(&tape), 1e-5);
                drop(black_box(y.sum::<Rank0, _>().backward()));
            },
            reps,
        ),
    ));
    drop(h);

    let logits: T<(usize, Const<1000>)> = dev.randn_like(&(4096, Const));
    let labels: Tensor<(usize,), i64, Cpu> = dev.from_vec((0..4096).map(|i| (i * 37 % 1000) as i64).collect(), (4096,));
    out.push((
        "cross_entropy 4096x1000".into(),
        median(|| drop(black_box(logits.clone().cross_entropy(&labels))), reps),
    ));
    out.push((
        "cross_entropy fwd+bwd".into(),
        median(|| drop(black_box(logits.leaky_trace().cross_entropy(&labels).backward())), reps),
    ));
    drop(logits);

    type Heads = (Const<8>, Const<4>, Const<128>, Const<64>);
    let (q, k, v): (T<Heads>, T<Heads>, T<Heads>) = (dev.randn(), dev.randn(), dev.randn());
    out.push((
        "attention 8x4x128x64".into(),
        median(|| drop(black_box(q.clone().scaled_dot_product_attention(k.clone(), v.clone(), AttnMask::None))), reps),
    ));
    out.push((
        "attention causal fwd+bwd".into(),
        median(
            || {
                let tape = OwnedTape::new(Gradients::leaky());
                let y = q.trace_on(&tape).scaled_dot_product_attention(
                    k.trace_on(&tape),
                    v.trace_on(&tape),
                    AttnMask::Causal,
                );
                drop(black_box(y.sum::<Rank0, _>().backward()));
            },
            reps,
        ),
    ));
    out
}

/// The PyTorch side, after `common::TORCH_PRELUDE` (which defines `reps` and `median`).
const TORCH: &str = r#"
import torch.nn.functional as F
x = torch.randn(32, 64, 56, 56)
w = torch.randn(64, 64, 3, 3)
print("conv2d fwd 32x64x56x56 3x3 p1", median(lambda: F.conv2d(x, w, padding=1), min(reps, 7)))
xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
def fwd_bwd():
    xg.grad = None; wg.grad = None
    F.conv2d(xg, wg, padding=1).sum().backward()
print("conv2d fwd+bwd (dx, dw)", median(fwd_bwd, min(reps, 7)))
print("max_pool2d 32x64x56x56 k2 s2", median(lambda: F.max_pool2d(x, 2, 2), reps))
del x, xg
h, g, b = torch.randn(4096, 1024), torch.randn(1024), torch.randn(1024)
print("layer_norm 4096x1024", median(lambda: F.layer_norm(h, (1024,), g, b, 1e-5), reps))
hg, gg, bg = (t.clone().requires_grad_(True) for t in (h, g, b))
def ln_fwd_bwd():
    for t in (hg, gg, bg): t.grad = None
    F.layer_norm(hg, (1024,), gg, bg, 1e-5).sum().backward()
print("layer_norm fwd+bwd", median(ln_fwd_bwd, reps))
logits = torch.randn(4096, 1000)
labels = torch.tensor([i * 37 % 1000 for i in range(4096)])
print("cross_entropy 4096x1000", median(lambda: F.cross_entropy(logits, labels), reps))
lg = logits.clone().requires_grad_(True)
def ce_fwd_bwd():
    lg.grad = None
    F.cross_entropy(lg, labels).backward()
print("cross_entropy fwd+bwd", median(ce_fwd_bwd, reps))
q, k, v = (torch.randn(8, 4, 128, 64) for _ in range(3))
print("attention 8x4x128x64", median(lambda: F.scaled_dot_product_attention(q, k, v), reps))
qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
def attn_fwd_bwd():
    for t in (qg, kg, vg): t.grad = None
    F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).sum().backward()
print("attention causal fwd+bwd", median(attn_fwd_bwd, reps))
"#;

fn main() {
    common::compare(tensile_times, &format!("{}{TORCH}", common::TORCH_PRELUDE));
}
