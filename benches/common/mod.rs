//! The harness both benchmark binaries share: medians of repeated runs, PyTorch's times for the
//! same workloads from a Python script, and the side-by-side table.

use std::process::Command;
use std::time::{Duration, Instant};

/// The median time of `reps` runs of `f`, after two warm-up runs (which page buffers in and fill
/// the buffer cache).
pub fn median(mut f: impl FnMut(), reps: usize) -> Duration {
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

/// The start of every PyTorch script: 2 threads, the repetition count from the command line, and
/// the same median as [`median`].
pub const TORCH_PRELUDE: &str = r#"
import sys, time, torch
torch.set_num_threads(2)
reps = int(sys.argv[1])
def median(f, reps):
    f(); f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[reps // 2]
"#;

/// PyTorch's time per workload, from `script` run with `reps` as its argument (each output line
/// is `name seconds`); `None` when PyTorch is not importable.
pub fn torch_times(script: &str, reps: usize) -> Option<Vec<(String, f64)>> {
    let out = Command::new("python3").args(["-c", script, &reps.to_string()]).output().ok()?;
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

/// Runs both sides (alternately, twice unless `TENSILE_BENCH_QUICK` is set, keeping each side's
/// better median: the machine is shared and noisy) and prints the table.
pub fn compare(tensile: impl Fn(usize) -> Vec<(String, Duration)>, torch_script: &str) {
    let quick = std::env::var("TENSILE_BENCH_QUICK").is_ok();
    let reps = if quick { 5 } else { 21 };
    println!("threads: {} (rayon)", rayon::current_num_threads());
    let rounds = if quick { 1 } else { 2 };
    let mut ours = tensile(reps);
    let mut theirs = torch_times(torch_script, reps);
    for _ in 1..rounds {
        for ((_, best), (_, t)) in ours.iter_mut().zip(tensile(reps)) {
            *best = (*best).min(t);
        }
        if let (Some(best), Some(again)) = (theirs.as_mut(), torch_times(torch_script, reps)) {
            for ((_, b), (_, t)) in best.iter_mut().zip(again) {
                *b = b.min(t);
            }
        }
    }
    println!("{:<34} {:>12} {:>12} {:>16}", "workload", "tensile", "pytorch", "speed vs pytorch");
    for (name, t) in &ours {
        let ms = t.as_secs_f64() * 1e3;
        match theirs.as_ref().and_then(|v| v.iter().find(|(n, _)| n == name)) {
            Some((_, secs)) => {
                let pt = secs * 1e3;
                println!("{name:<34} {ms:>9.3} ms {pt:>9.3} ms {:>15.2}x", pt / ms);
            }
            None => println!("{name:<34} {ms:>9.3} ms {:>12} {:>16}", "-", "-"),
        }
    }
    if theirs.is_none() {
        println!("(PyTorch not importable: `pip install torch` to see its times beside these)");
    }
}
