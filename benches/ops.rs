//! Core workloads, timed for tensile and, when `python3 -c "import torch"` works, for PyTorch on
//! the same machine with 2 threads, printed side by side.
//!
//! `cargo bench --bench ops` (set `TENSILE_BENCH_QUICK=1` for fewer repetitions). Each workload
//! reports the median of its repetitions; the two sides run alternately twice and each keeps its
//! better median, which damps the noise of a shared machine.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};
use tensile::prelude::*;

fn median(mut f: impl FnMut(), reps: usize) -> Duration {
    f(); // warm up: page in buffers, fill the buffer cache
    f();
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

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

const TORCH: &str = r#"
import sys, time, torch
torch.set_num_threads(2)
reps = int(sys.argv[1])
def median(f, reps):
    f(); f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[reps // 2]
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

fn torch_times(reps: usize) -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3").args(["-c", TORCH, &reps.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines()
        .map(|l| {
            let (name, secs) = l.rsplit_once(' ')?;
            Some((name.to_string(), secs.parse().ok()?))
        })
        .collect()
}

fn main() {
    let quick = std::env::var("TENSILE_BENCH_QUICK").is_ok();
    let reps = if quick { 5 } else { 21 };
    println!("threads: {} (rayon)", rayon::current_num_threads());
    // The machine is shared and noisy: alternate the two sides and keep each side's better median.
    let rounds = if quick { 1 } else { 2 };
    let mut ours = tensile_times(reps);
    let mut theirs = torch_times(reps);
    for _ in 1..rounds {
        for ((_, best), (_, t)) in ours.iter_mut().zip(tensile_times(reps)) {
            *best = (*best).min(t);
        }
        if let (Some(best), Some(again)) = (theirs.as_mut(), torch_times(reps)) {
            for ((_, b), (_, t)) in best.iter_mut().zip(again) {
                *b = b.min(t);
            }
        }
    }
    println!("{:<26} {:>12} {:>12} {:>16}", "workload", "tensile", "pytorch", "speed vs pytorch");
    for (name, t) in &ours {
        let ms = t.as_secs_f64() * 1e3;
        match theirs.as_ref().and_then(|v| v.iter().find(|(n, _)| n == name)) {
            Some((_, secs)) => {
                let pt = secs * 1e3;
                println!("{name:<26} {ms:>9.3} ms {pt:>9.3} ms {:>15.2}x", pt / ms);
            }
            None => println!("{name:<26} {ms:>9.3} ms {:>12} {:>16}", "-", "-"),
        }
    }
    if theirs.is_none() {
        println!("(PyTorch not importable: `pip install torch` to see its times beside these)");
    }
}
