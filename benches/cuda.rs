//! GPU workloads on `Cuda`, beside PyTorch on the same GPU when `python3 -c "import torch"` finds
//! CUDA: matmul 4096 (f32, bf16) in TFLOP/s; a 256M-element element-wise op, softmax and
//! layer_norm in GB/s beside the device-to-device copy bandwidth measured in the same run; a
//! ResNet-18 and a transformer-decoder training step per second.
//!
//! `cargo bench --features cuda --bench cuda` (or `scripts/gpu-check.sh`, which runs the
//! prebuilt binary). Without a GPU it says so and exits.

#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;
use tensile::nn::{self, TransformerDecoder};
use tensile::ops::AttnMask;
use tensile::optim::{Optimizer, Sgd};
use tensile::prelude::*;

type G<S, E = f32> = Tensor<S, E, Cuda>;

/// Median seconds of `reps` runs of `f` (after two warm-ups), each waited for on the GPU.
fn median(gpu: &Cuda, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    gpu.synchronize();
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            gpu.synchronize();
            t.elapsed().as_secs_f64()
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    ts[reps / 2]
}

/// Device-to-device copy bandwidth (read + write bytes per second) of a `bytes`-long buffer.
fn copy_bandwidth(bytes: usize, reps: usize) -> Option<f64> {
    let ctx = cudarc::driver::CudaContext::new(0).ok()?;
    let stream = ctx.default_stream();
    let src = stream.alloc_zeros::<u8>(bytes).ok()?;
    let mut dst = stream.alloc_zeros::<u8>(bytes).ok()?;
    let mut ts = Vec::new();
    for _ in 0..reps + 2 {
        let t = Instant::now();
        stream.memcpy_dtod(&src, &mut dst).ok()?;
        stream.synchronize().ok()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.drain(..2);
    ts.sort_by(f64::total_cmp);
    Some(2.0 * bytes as f64 / ts[reps / 2])
}

/// `(workload, unit, value)`.
type Row = (String, &'static str, f64);

fn tensile_rows(gpu: &Cuda, reps: usize) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let n = 4096;
    let flops = 2.0 * (n * n * n) as f64;
    let a: G<(usize, usize)> = gpu.randn_like(&(n, n));
    let b: G<(usize, usize)> = gpu.randn_like(&(n, n));
    let t = median(gpu, reps, || drop(black_box(a.clone().matmul(b.clone()))));
    rows.push(("matmul 4096 f32".into(), "TFLOP/s", flops / t / 1e12));
    let (ah, bh) = (a.clone().to_dtype::<half::bf16>(), b.clone().to_dtype::<half::bf16>());
    let t = median(gpu, reps, || drop(black_box(ah.clone().matmul(bh.clone()))));
    rows.push(("matmul 4096 bf16".into(), "TFLOP/s", flops / t / 1e12));
    drop((a, b, ah, bh));

    let len = 256 << 20;
    if let Some(bw) = copy_bandwidth(len * 4, reps) {
        rows.push(("copy 1 GiB (device to device)".into(), "GB/s", bw / 1e9));
    }
    let x: G<(usize,)> = gpu.randn_like(&(len,));
    let y: G<(usize,)> = gpu.randn_like(&(len,));
    let t = median(gpu, reps, || drop(black_box(x.clone() * y.clone())));
    rows.push(("a * b, 256M f32".into(), "GB/s", 3.0 * 4.0 * len as f64 / t / 1e9));
    let t = median(gpu, reps, || drop(black_box(x.clone().exp())));
    rows.push(("exp, 256M f32".into(), "GB/s", 2.0 * 4.0 * len as f64 / t / 1e9));
    drop((x, y));

    let (r, c) = (16384, 4096);
    let m: G<(usize, usize)> = gpu.randn_like(&(r, c));
    let bytes = 2.0 * 4.0 * (r * c) as f64;
    let t = median(gpu, reps, || drop(black_box(m.clone().softmax::<Axis<1>>())));
    rows.push(("softmax 16384x4096".into(), "GB/s", bytes / t / 1e9));
    let w: G<(usize,)> = gpu.ones_like(&(c,));
    let bias: G<(usize,)> = gpu.zeros_like(&(c,));
    let t = median(gpu, reps, || drop(black_box(m.clone().layer_norm(w.clone(), bias.clone(), 1e-5))));
    rows.push(("layer_norm 16384x4096".into(), "GB/s", bytes / t / 1e9));
    drop(m);

    // ResNet-18, batch 32, 224 x 224: forward, backward, SGD step (batch norm in eval mode on
    // both sides: the shared model implements inference-mode forward).
    let mut model = resnet18::ResNet18::<Cuda>::build(gpu);
    let mut opt = Optimizer::new(Sgd::new(0.01));
    let img: resnet18::Pixels<NoTape, Cuda> = gpu.randn_like(&(32, Const, Const, Const));
    let t = median(gpu, reps.min(5), || {
        let y = model.forward(img.trace(nn::alloc_grads(&model)));
        let g = y.square().mean::<Rank0, _>().backward();
        opt.step(&mut model, &g).unwrap();
    });
    rows.push(("ResNet-18 train step, batch 32".into(), "steps/s", 1.0 / t));
    drop(model);

    // A transformer decoder (6 layers, d_model 512, 8 heads, feed-forward 2048), batch 16,
    // 128 tokens attending causally to themselves and to 128 memory tokens.
    let mut dec = TransformerDecoder::<512, 8, 2048, 6, f32, Cuda>::build(gpu);
    let mut opt = Optimizer::new(Sgd::new(0.01));
    let tgt: G<(usize, usize, Const<512>)> = gpu.randn_like(&(16, 128, Const));
    let mem: G<(usize, usize, Const<512>)> = gpu.randn_like(&(16, 128, Const));
    let t = median(gpu, reps.min(5), || {
        let grads = nn::alloc_grads(&dec);
        let tape_src = tgt.trace(grads);
        let memory = mem.clone().put_tape(tape_src.tape().clone());
        let y = dec.try_decode(tape_src, memory, AttnMask::Causal, AttnMask::None, false).unwrap();
        let g = y.square().mean::<Rank0, _>().backward();
        opt.step(&mut dec, &g).unwrap();
    });
    rows.push(("decoder train step, 16x128".into(), "steps/s", 1.0 / t));
    rows
}

const TORCH: &str = r#"
import sys, time, torch
if not torch.cuda.is_available():
    sys.exit(1)
reps = int(sys.argv[1])
dev = torch.device("cuda")
def median(f, reps):
    f(); f(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[reps // 2]
n = 4096
a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
print("matmul 4096 f32", 2 * n**3 / median(lambda: a @ b, reps) / 1e12)
ah, bh = a.bfloat16(), b.bfloat16()
print("matmul 4096 bf16", 2 * n**3 / median(lambda: ah @ bh, reps) / 1e12)
del a, b, ah, bh
ln = 256 << 20
x, y = torch.randn(ln, device=dev), torch.randn(ln, device=dev)
z = torch.empty_like(x)
print("copy 1 GiB (device to device)", 2 * 4 * ln / median(lambda: z.copy_(x), reps) / 1e9)
print("a * b, 256M f32", 3 * 4 * ln / median(lambda: x * y, reps) / 1e9)
print("exp, 256M f32", 2 * 4 * ln / median(lambda: torch.exp(x), reps) / 1e9)
del x, y, z
r, c = 16384, 4096
m = torch.randn(r, c, device=dev)
print("softmax 16384x4096", 2 * 4 * r * c / median(lambda: torch.softmax(m, 1), reps) / 1e9)
w, bias = torch.ones(c, device=dev), torch.zeros(c, device=dev)
print("layer_norm 16384x4096", 2 * 4 * r * c / median(lambda: torch.nn.functional.layer_norm(m, (c,), w, bias), reps) / 1e9)
del m
try:
    import torchvision
    model = torchvision.models.resnet18().to(dev).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    img = torch.randn(32, 3, 224, 224, device=dev)
    def step():
        opt.zero_grad(); model(img).square().mean().backward(); opt.step()
    print("ResNet-18 train step, batch 32", 1 / median(step, min(reps, 5)))
except ImportError:
    pass
layer = torch.nn.TransformerDecoderLayer(512, 8, 2048, dropout=0.0, batch_first=True)
dec = torch.nn.TransformerDecoder(layer, 6).to(dev)
opt = torch.optim.SGD(dec.parameters(), lr=0.01)
tgt, mem = torch.randn(16, 128, 512, device=dev), torch.randn(16, 128, 512, device=dev)
mask = torch.nn.Transformer.generate_square_subsequent_mask(128, device=dev)
def dstep():
    opt.zero_grad(); dec(tgt, mem, tgt_mask=mask).square().mean().backward(); opt.step()
print("decoder train step, 16x128", 1 / median(dstep, min(reps, 5)))
"#;

fn torch_rows(reps: usize) -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3").args(["-c", TORCH, &reps.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().map(|l| l.rsplit_once(' ').and_then(|(n, v)| Some((n.to_string(), v.parse().ok()?)))).collect()
}

fn main() {
    let gpu = match Cuda::try_new(0) {
        Ok(g) => g,
        Err(e) => {
            println!("SKIPPED: the Cuda benchmarks ({e})");
            return;
        }
    };
    let reps = if std::env::var("TENSILE_BENCH_QUICK").is_ok() { 5 } else { 21 };
    println!("GPU: {}", gpu.name());
    let ours = tensile_rows(&gpu, reps);
    let theirs = torch_rows(reps);
    let copy = ours.iter().find(|r| r.0.starts_with("copy")).map(|r| r.2);
    println!("{:<34} {:>10} {:>10} {:>9} {:>12}", "workload", "tensile", "pytorch", "ratio", "% of copy");
    for (name, unit, v) in &ours {
        let pt = theirs.as_ref().and_then(|t| t.iter().find(|(n, _)| n == name)).map(|p| p.1);
        let ratio = pt.map_or("-".to_string(), |p| format!("{:.2}x", v / p));
        let of_copy = match (unit, copy) {
            (&"GB/s", Some(c)) if !name.starts_with("copy") => format!("{:.0} %", 100.0 * v / c),
            _ => "-".into(),
        };
        let pt = pt.map_or("-".to_string(), |p| format!("{p:.2}"));
        println!("{name:<34} {v:>10.2} {pt:>10} {ratio:>9} {of_copy:>12}   {unit}");
    }
    if theirs.is_none() {
        println!("(PyTorch with CUDA not importable: `pip install torch torchvision` to see its numbers beside these)");
    }
}
