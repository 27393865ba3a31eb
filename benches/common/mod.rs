//! The harness the benchmark binaries share: medians of repeated runs, a Python process that
//! times the same workloads in PyTorch (or onnxruntime) on request, and the side-by-side table.
//!
//! The two sides are timed row by row, alternately: tensile's median for a workload, then the
//! reference's median for the same workload, a few rounds each, keeping each side's best median
//! and the median of the rounds' ratios (the two sides of one round ran seconds apart).
//! On a shared machine whose speed drifts by tens of percent within a minute, timing all of one
//! side and then all of the other compared different minutes; interleaving compares the same one.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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

/// Repetitions per median and rounds per row: `TENSILE_BENCH_QUICK` asks for fewer of both.
pub fn reps_and_rounds() -> (usize, usize) {
    if std::env::var("TENSILE_BENCH_QUICK").is_ok() { (5, 1) } else { (21, 3) }
}

/// The start of every PyTorch script: 2 threads.
pub const TORCH_PRELUDE: &str = r#"
import torch
torch.set_num_threads(2)
"#;

/// What [`Reference::start`] wraps a script in: before it, the same median as [`median`] and
/// `work`, the table of workloads by name that the script fills (`work["name"] = lambda: ...`);
/// after it, `ready`, then an answer to each request line `name reps` with the median seconds
/// of `work[name]`.
const SERVE_BEFORE: &str = r#"
import sys, time
def median(f, reps):
    f(); f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts.sort(); return ts[reps // 2]
work = {}
"#;
const SERVE_AFTER: &str = r#"
print("ready", flush=True)
for line in sys.stdin:
    name, reps = line.rstrip("\n").rsplit(" ", 1)
    print(median(work[name], int(reps)), flush=True)
"#;

/// A Python process holding the reference side's workloads, timing one on each request.
pub struct Reference {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Reference {
    /// Starts `python3 -c script args..`, with `script` (which fills `work`) wrapped in the
    /// timing server; `None` when it fails or does not reach `ready` (the reference library is
    /// not installed, for one).
    pub fn start(script: &str, args: &[String]) -> Option<Reference> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(format!("{SERVE_BEFORE}{script}{SERVE_AFTER}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let input = child.stdin.take()?;
        let mut output = BufReader::new(child.stdout.take()?);
        let mut line = String::new();
        if output.read_line(&mut line).ok()? == 0 || line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(Reference { child, input, output })
    }

    /// The reference's median over `reps` runs of the workload `name`.
    pub fn time(&mut self, name: &str, reps: usize) -> Option<Duration> {
        writeln!(self.input, "{name} {reps}").ok()?;
        self.input.flush().ok()?;
        let mut line = String::new();
        self.output.read_line(&mut line).ok()?;
        line.trim().parse::<f64>().ok().map(Duration::from_secs_f64)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One workload: its name (the key of the reference script's `work` table), how many runs make
/// its median, and tensile's run.
pub struct Row<'a> {
    pub name: String,
    pub reps: usize,
    pub run: Box<dyn FnMut() + 'a>,
}

impl<'a> Row<'a> {
    pub fn new(name: &str, reps: usize, run: impl FnMut() + 'a) -> Row<'a> {
        Row { name: name.into(), reps, run: Box::new(run) }
    }
}

/// Both sides of one workload over alternating rounds (see [`interleave`]).
pub struct Interleaved {
    /// tensile's best median.
    pub ours: Duration,
    /// The reference's best median (`None` when it had no answer).
    pub theirs: Option<Duration>,
    /// The median over rounds of the ratio of the two sides' medians in the same round: on a
    /// machine whose speed drifts, the two best medians may come from different minutes, while
    /// the two sides of a round ran seconds apart.
    pub paired_ratio: Option<f64>,
}

/// Both sides timed over `rounds` alternating rounds (the side that goes first alternates too).
pub fn interleave(
    rounds: usize,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Option<Duration>,
) -> Interleaved {
    let mut pairs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let pair = if round % 2 == 0 {
            let o = ours();
            (o, theirs())
        } else {
            let t = theirs();
            (ours(), t)
        };
        pairs.push(pair);
    }
    let mut ratios: Vec<f64> =
        pairs.iter().filter_map(|&(o, t)| t.map(|t| o.as_secs_f64() / t.as_secs_f64())).collect();
    ratios.sort_by(f64::total_cmp);
    Interleaved {
        ours: pairs.iter().map(|p| p.0).min().unwrap_or(Duration::MAX),
        theirs: pairs.iter().filter_map(|p| p.1).min(),
        paired_ratio: ratios.get(ratios.len() / 2).copied(),
    }
}

/// Times every row on both sides, interleaved (see the module's comment), and prints the table:
/// the speed from the best medians, and from the rounds' paired ratios ([`Interleaved`]).
/// `torch_script` fills `work` after [`TORCH_PRELUDE`].
pub fn compare(rows: Vec<Row<'_>>, torch_script: &str) {
    let (_, rounds) = reps_and_rounds();
    println!(
        "threads: {} (rayon); best median of {rounds} alternating round(s) per side",
        rayon::current_num_threads()
    );
    let mut torch = Reference::start(&format!("{TORCH_PRELUDE}{torch_script}"), &[]);
    let had_torch = torch.is_some();
    println!("{:<34} {:>12} {:>12} {:>16} {:>8}", "workload", "tensile", "pytorch", "speed vs pytorch", "paired");
    for mut row in rows {
        let Interleaved { ours, theirs, paired_ratio } = interleave(
            rounds,
            || median(&mut row.run, row.reps),
            || torch.as_mut().and_then(|t| t.time(&row.name, row.reps)),
        );
        let ms = ours.as_secs_f64() * 1e3;
        match (theirs, paired_ratio) {
            (Some(t), Some(p)) => {
                let pt = t.as_secs_f64() * 1e3;
                println!("{:<34} {ms:>9.3} ms {pt:>9.3} ms {:>15.2}x {:>7.2}x", row.name, pt / ms, 1.0 / p);
            }
            _ => println!("{:<34} {ms:>9.3} ms {:>12} {:>16} {:>8}", row.name, "-", "-", "-"),
        }
    }
    if !had_torch {
        println!("(PyTorch not importable: `pip install torch` to see its times beside these)");
    }
}
