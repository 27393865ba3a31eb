//! Export runtime latency: the digits CNN and ResNet-18 at batch 1 and 32, run eagerly, by the
//! graph runtime (after the passes), and by onnxruntime (Python, 2 threads) on the same ONNX
//! file when `onnxruntime` is importable.
//!
//! ```sh
//! cargo bench --bench export
//! ```

#[allow(dead_code)] // this bench uses only the timing helper
mod common;
#[path = "../examples/common/digits_cnn.rs"]
mod digits_cnn;
#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use digits_cnn::DigitsCnn;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tensile::export::{Runtime, optimize, trace};
use tensile::prelude::*;

struct Row {
    name: String,
    eager: Duration,
    runtime: Duration,
}

/// Times `model` on `x` eagerly and through its optimised graph, and writes the graph as ONNX
/// (with the input) for onnxruntime.
fn measure<S, M, Y>(dir: &Path, name: &str, model: &M, x: &Tensor<S, f32, Cpu>, reps: usize) -> Row
where
    S: Shape,
    M: tensile::nn::Params<Cpu>
        + Module<Tensor<S, f32, Cpu>>
        + Module<Tensor<S, f32, Cpu, tensile::export::TraceTape<Cpu>>, Output = Y>,
    Y: tensile::export::TracedOutputs,
{
    let graph = optimize(&trace(model, x).expect("traces")).expect("optimises");
    graph.save_onnx(dir.join(format!("{name}.onnx"))).expect("writes ONNX");
    let mut bytes = Vec::new();
    for v in x.to_vec() {
        v.put_le(&mut bytes);
    }
    std::fs::write(dir.join(format!("{name}.bin")), bytes).expect("writes the input");
    let dims: Vec<String> = x.dims().as_slice().iter().map(|d| d.to_string()).collect();
    std::fs::write(dir.join(format!("{name}.dims")), dims.join(" ")).expect("writes the dims");
    let rt = Runtime::new(&graph).expect("loads");
    let eager = common::median(
        || {
            let _ = model.try_forward(x.clone()).expect("runs");
        },
        reps,
    );
    let runtime = common::median(
        || {
            let _ = rt.run_one(x).expect("runs");
        },
        reps,
    );
    Row { name: name.into(), eager, runtime }
}

const ORT: &str = r#"
import sys, time, pathlib
import numpy as np, onnxruntime as ort
folder, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
opts = ort.SessionOptions(); opts.intra_op_num_threads = 2; opts.inter_op_num_threads = 1
for model in sorted(folder.glob("*.onnx")):
    name = model.stem
    dims = [int(d) for d in (folder / f"{name}.dims").read_text().split()]
    x = np.fromfile(folder / f"{name}.bin", dtype=np.float32).reshape(dims)
    s = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: x}
    r = reps if dims[0] == 1 else max(3, reps // 4)
    s.run(None, feed); s.run(None, feed)
    ts = []
    for _ in range(r):
        t = time.perf_counter(); s.run(None, feed); ts.append(time.perf_counter() - t)
    ts.sort(); print(name, ts[len(ts) // 2])
"#;

fn main() {
    let quick = std::env::var("TENSILE_BENCH_QUICK").is_ok();
    let reps = if quick { 5 } else { 21 };
    let dir = std::env::temp_dir().join(format!("tensile-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let dev = Cpu::seeded(0);
    let cnn = DigitsCnn::build(&dev);
    let resnet = resnet18::ResNet18::build(&dev);
    let mut rows = Vec::new();
    for batch in [1usize, 32] {
        let x: Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu> = dev.randn_like(&(batch, Const, Const, Const));
        rows.push(measure(&dir, &format!("digits_cnn_b{batch:02}"), &cnn, &x, reps));
    }
    for batch in [1usize, 32] {
        let x: resnet18::Pixels<NoTape> = dev.randn_like(&(batch, Const, Const, Const));
        let r = if batch == 1 { reps.min(11) } else { 3 };
        rows.push(measure(&dir, &format!("resnet18_b{batch:02}"), &resnet, &x, r));
    }
    let ort: Vec<(String, f64)> = Command::new("python3")
        .args(["-c", ORT, &dir.display().to_string(), &reps.to_string()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.rsplit_once(' ').and_then(|(n, t)| Some((n.to_string(), t.parse().ok()?))))
                .collect()
        })
        .unwrap_or_default();
    println!("threads: {} (rayon)", rayon::current_num_threads());
    println!("{:<18} {:>12} {:>12} {:>14} {:>18}", "workload", "eager", "runtime", "onnxruntime", "runtime vs ort");
    for row in &rows {
        let (e, r) = (row.eager.as_secs_f64() * 1e3, row.runtime.as_secs_f64() * 1e3);
        match ort.iter().find(|(n, _)| *n == row.name) {
            Some((_, t)) => {
                let o = t * 1e3;
                println!("{:<18} {e:>9.3} ms {r:>9.3} ms {o:>11.3} ms {:>17.2}x", row.name, r / o);
            }
            None => println!("{:<18} {e:>9.3} ms {r:>9.3} ms {:>14} {:>18}", row.name, "-", "-"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
