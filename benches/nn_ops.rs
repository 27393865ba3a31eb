//! The op-coverage workloads (convolution, pooling, normalisation, losses, attention), timed for
//! tensile and, when PyTorch is importable, for PyTorch with 2 threads, side by side.
//!
//! `cargo bench --bench nn_ops` (`TENSILE_BENCH_QUICK=1` for fewer repetitions).

mod common;

use common::Row;
use std::hint::black_box;
use tensile::prelude::*;

type T<S> = Tensor<S, f32, Cpu>;
type Image = (usize, Const<64>, Const<56>, Const<56>);

fn main() {
    let (reps, _) = common::reps_and_rounds();
    let conv_reps = reps.min(7);
    let dev = Cpu::seeded(0);
    let x: T<Image> = dev.randn_like(&(32, Const, Const, Const));
    let w: T<Rank4<64, 64, 3, 3>> = dev.randn();
    let h: T<(usize, Const<1024>)> = dev.randn_like(&(4096, Const));
    let (g, b): (T<Rank1<1024>>, T<Rank1<1024>>) = (dev.randn(), dev.randn());
    let logits: T<(usize, Const<1000>)> = dev.randn_like(&(4096, Const));
    let labels: Tensor<(usize,), i64, Cpu> = dev.from_vec((0..4096).map(|i| (i * 37 % 1000) as i64).collect(), (4096,));
    type Heads = (Const<8>, Const<4>, Const<128>, Const<64>);
    let (q, k, v): (T<Heads>, T<Heads>, T<Heads>) = (dev.randn(), dev.randn(), dev.randn());

    let rows = vec![
        Row::new("conv2d fwd 32x64x56x56 3x3 p1", conv_reps, || {
            drop(black_box(x.clone().conv2d(w.clone(), ConvOpts::<1, 1>)))
        }),
        Row::new("conv2d fwd+bwd (dx, dw)", conv_reps, || {
            let tape = OwnedTape::new(Gradients::leaky());
            let y = x.trace_on(&tape).conv2d(w.trace_on(&tape), ConvOpts::<1, 1>);
            drop(black_box(y.sum::<Rank0, _>().backward()));
        }),
        Row::new("max_pool2d 32x64x56x56 k2 s2", reps, || drop(black_box(x.clone().max_pool2d(PoolOpts::<2, 2>)))),
        Row::new("layer_norm 4096x1024", reps, || drop(black_box(h.clone().layer_norm(g.clone(), b.clone(), 1e-5)))),
        Row::new("layer_norm fwd+bwd", reps, || {
            let tape = OwnedTape::new(Gradients::leaky());
            let y = h.trace_on(&tape).layer_norm(g.trace_on(&tape), b.trace_on(&tape), 1e-5);
            drop(black_box(y.sum::<Rank0, _>().backward()));
        }),
        Row::new("cross_entropy 4096x1000", reps, || drop(black_box(logits.clone().cross_entropy(&labels)))),
        Row::new("cross_entropy fwd+bwd", reps, || {
            drop(black_box(logits.leaky_trace().cross_entropy(&labels).backward()))
        }),
        Row::new("attention 8x4x128x64", reps, || {
            drop(black_box(q.clone().scaled_dot_product_attention(k.clone(), v.clone(), AttnMask::None)))
        }),
        Row::new("attention causal fwd+bwd", reps, || {
            let tape = OwnedTape::new(Gradients::leaky());
            let y =
                q.trace_on(&tape).scaled_dot_product_attention(k.trace_on(&tape), v.trace_on(&tape), AttnMask::Causal);
            drop(black_box(y.sum::<Rank0, _>().backward()));
        }),
    ];
    common::compare(rows, TORCH);
}

/// The PyTorch side, after `common::TORCH_PRELUDE`: the same workloads under the same names.
const TORCH: &str = r#"
import torch.nn.functional as F
x = torch.randn(32, 64, 56, 56)
w = torch.randn(64, 64, 3, 3)
work["conv2d fwd 32x64x56x56 3x3 p1"] = lambda: F.conv2d(x, w, padding=1)
xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
def conv_fwd_bwd():
    xg.grad = None; wg.grad = None
    F.conv2d(xg, wg, padding=1).sum().backward()
work["conv2d fwd+bwd (dx, dw)"] = conv_fwd_bwd
work["max_pool2d 32x64x56x56 k2 s2"] = lambda: F.max_pool2d(x, 2, 2)
h, g, b = torch.randn(4096, 1024), torch.randn(1024), torch.randn(1024)
work["layer_norm 4096x1024"] = lambda: F.layer_norm(h, (1024,), g, b, 1e-5)
hg, gg, bg = (t.clone().requires_grad_(True) for t in (h, g, b))
def ln_fwd_bwd():
    for t in (hg, gg, bg): t.grad = None
    F.layer_norm(hg, (1024,), gg, bg, 1e-5).sum().backward()
work["layer_norm fwd+bwd"] = ln_fwd_bwd
logits = torch.randn(4096, 1000)
labels = torch.tensor([i * 37 % 1000 for i in range(4096)])
work["cross_entropy 4096x1000"] = lambda: F.cross_entropy(logits, labels)
lg = logits.clone().requires_grad_(True)
def ce_fwd_bwd():
    lg.grad = None
    F.cross_entropy(lg, labels).backward()
work["cross_entropy fwd+bwd"] = ce_fwd_bwd
q, k, v = (torch.randn(8, 4, 128, 64) for _ in range(3))
work["attention 8x4x128x64"] = lambda: F.scaled_dot_product_attention(q, k, v)
qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
def attn_fwd_bwd():
    for t in (qg, kg, vg): t.grad = None
    F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).sum().backward()
work["attention causal fwd+bwd"] = attn_fwd_bwd
"#;
