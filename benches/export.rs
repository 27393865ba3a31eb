//! Export runtime latency: the digits CNN and ResNet-18 at batch 1 and 32, run eagerly, by the
//! graph runtime (after the passes), and by onnxruntime (Python, 2 threads) on the same ONNX
//! file when `onnxruntime` is importable.
//!
//! ```sh
//! cargo bench --bench export
//! ```

#[allow(dead_code)] // the timing helpers and the reference process, not the PyTorch table
mod common;
#[path = "../examples/common/digits_cnn.rs"]
mod digits_cnn;
#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use digits_cnn::DigitsCnn;
use std::path::Path;
use tensile::export::{Runtime, optimize, trace};
use tensile::prelude::*;

/// One model at one batch size: its eager forward and its graph runtime, both ready to run.
struct Case<'a> {
    name: String,
    reps: usize,
    eager: Box<dyn FnMut() + 'a>,
    runtime: Box<dyn FnMut() + 'a>,
}

/// Prepares `model` on `x`: traces and optimises its graph, and writes the graph as ONNX (with
/// the input) for onnxruntime.
fn prepare<'a, S, M, Y>(dir: &Path, name: &str, model: &'a M, x: Tensor<S, f32, Cpu>, reps: usize) -> Case<'a>
where
    S: Shape,
    M: tensile::nn::Params<Cpu>
        + Module<Tensor<S, f32, Cpu>>
        + Module<Tensor<S, f32, Cpu, tensile::export::TraceTape<Cpu>>, Output = Y>,
    Y: tensile::export::TracedOutputs,
{
    let graph = optimize(&trace(model, &x).expect("traces")).expect("optimises");
    graph.save_onnx(dir.join(format!("{name}.onnx"))).expect("writes ONNX");
    let mut bytes = Vec::new();
    for v in x.to_vec() {
        v.put_le(&mut bytes);
    }
    std::fs::write(dir.join(format!("{name}.bin")), bytes).expect("writes the input");
    let dims: Vec<String> = x.dims().as_slice().iter().map(|d| d.to_string()).collect();
    std::fs::write(dir.join(format!("{name}.dims")), dims.join(" ")).expect("writes the dims");
    let rt = Runtime::new(&graph).expect("loads");
    let x2 = x.clone();
    Case {
        name: name.into(),
        reps,
        eager: Box::new(move || {
            let _ = model.try_forward(x.clone()).expect("runs");
        }),
        runtime: Box::new(move || {
            let _ = rt.run_one(&x2).expect("runs");
        }),
    }
}

/// Loads every ONNX file in the folder (argument 1) into an onnxruntime session with 2 threads,
/// under the file's stem, in the timing server's `work` table (`common::Reference`).
const ORT: &str = r#"
import pathlib
import numpy as np, onnxruntime as ort
folder = pathlib.Path(sys.argv[1])
opts = ort.SessionOptions(); opts.intra_op_num_threads = 2; opts.inter_op_num_threads = 1
for model in sorted(folder.glob("*.onnx")):
    dims = [int(d) for d in (folder / f"{model.stem}.dims").read_text().split()]
    x = np.fromfile(folder / f"{model.stem}.bin", dtype=np.float32).reshape(dims)
    s = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    work[model.stem] = lambda s=s, feed={s.get_inputs()[0].name: x}: s.run(None, feed)
"#;

fn main() {
    let (reps, rounds) = common::reps_and_rounds();
    // more rounds than the other benches: a ResNet-18 median takes seconds at batch 32, long
    // enough for this machine's speed to change between the two sides' turns
    let rounds = if rounds > 1 { 5 } else { rounds };
    let dir = std::env::temp_dir().join(format!("tensile-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let dev = Cpu::seeded(0);
    let cnn = DigitsCnn::build(&dev);
    let resnet = resnet18::ResNet18::build(&dev);
    let mut cases = Vec::new();
    for batch in [1usize, 32] {
        let x: Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu> = dev.randn_like(&(batch, Const, Const, Const));
        cases.push(prepare(
            &dir,
            &format!("digits_cnn_b{batch:02}"),
            &cnn,
            x,
            // well under a millisecond a run: many runs per median, or the wake-up noise of the
            // threads decides it (5 runs at batch 32 gave 1.2x to 2.2x onnxruntime's time)
            5 * reps,
        ));
    }
    for batch in [1usize, 32] {
        let x: resnet18::Pixels<NoTape> = dev.randn_like(&(batch, Const, Const, Const));
        cases.push(prepare(
            &dir,
            &format!("resnet18_b{batch:02}"),
            &resnet,
            x,
            if batch == 1 { reps.min(11) } else { 3 },
        ));
    }
    let mut ort = common::Reference::start(ORT, &[dir.display().to_string()]);
    println!(
        "threads: {} (rayon); best median of {rounds} alternating round(s) per side, and the median \
         of the rounds' ratios (each round's two sides ran seconds apart)",
        rayon::current_num_threads()
    );
    println!(
        "{:<18} {:>12} {:>12} {:>14} {:>18} {:>14}",
        "workload", "eager", "runtime", "onnxruntime", "runtime vs ort", "paired ratio"
    );
    for mut case in cases {
        let eager = (0..rounds).map(|_| common::median(&mut case.eager, case.reps)).min().expect("one round");
        let common::Interleaved { ours: runtime, theirs, paired_ratio } = common::interleave(
            rounds,
            || common::median(&mut case.runtime, case.reps),
            || ort.as_mut().and_then(|o| o.time(&case.name, case.reps)),
        );
        let (e, r) = (eager.as_secs_f64() * 1e3, runtime.as_secs_f64() * 1e3);
        match (theirs, paired_ratio) {
            (Some(t), Some(p)) => {
                let o = t.as_secs_f64() * 1e3;
                println!("{:<18} {e:>9.3} ms {r:>9.3} ms {o:>11.3} ms {:>17.2}x {p:>13.2}x", case.name, r / o);
            }
            _ => println!("{:<18} {e:>9.3} ms {r:>9.3} ms {:>14} {:>18} {:>14}", case.name, "-", "-", "-"),
        }
    }
    if ort.is_none() {
        println!("(onnxruntime not importable: `pip install onnxruntime` to see its times beside these)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
