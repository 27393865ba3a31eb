//! Export: train the digits CNN, trace it into a graph, optimise the graph, save it to one file,
//! load it back in the runtime (no model types, no tape), check it against eager mode, and write
//! the same graph as ONNX.
//!
//! ```sh
//! cargo run --release --example export
//! # and refresh the graph and sample digits the no_std example embeds:
//! cargo run --release --example export -- --embedded examples/embedded/model
//! ```

#[path = "common/digits.rs"]
mod digits;
#[path = "common/digits_cnn.rs"]
mod digits_cnn;

use digits_cnn::DigitsCnn as Cnn;

use std::time::Instant;
use tensile::data::mnist::{Mnist, Split};
use tensile::data::{Dataset, transforms};
use tensile::export::{Graph, Runtime, memory_plan, optimize, trace};
use tensile::prelude::*;

/// One image, batch of 1: what an edge device classifies.
type Image = Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu>;

/// Test digits written beside the graph for the embedded example.
const EMBEDDED_DIGITS: usize = 20;

/// The folder after `--embedded`, if given.
fn embedded_dir() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--embedded").and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<()> {
    let dev = Cpu::seeded(0);
    let mut model = Cnn::build(&dev);
    digits::train("digits CNN", &mut model, 5, 2e-3)?;

    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits");
    let test = Mnist::<8, 8>::load(&dev, folder, Split::Test)?;
    let mut pixels = Vec::new();
    let images: Vec<(Image, i64)> = (0..test.len())
        .map(|i| {
            let (image, label) = test.get(i)?;
            pixels.push((image.to_vec(), label));
            let x = transforms::to_float(&image, 1.0 / 16.0);
            Ok((x.try_reshape_like(&(1usize, Const::<1>, Const::<8>, Const::<8>))?, label))
        })
        .collect::<Result<_>>()?;

    let traced = trace(&model, &images[0].0)?;
    println!("\ntraced graph:\n{traced}\n");
    let fused = optimize(&traced)?;
    println!("after the passes:\n{fused}\n");
    let plan = memory_plan(&fused);
    println!(
        "memory plan: {} buffers, peak {} bytes of intermediates ({} without reuse)",
        plan.buffers.len(),
        plan.peak_bytes,
        plan.unplanned_bytes
    );

    let path = std::env::temp_dir().join("digits_cnn.tgraph");
    fused.save(&path)?;
    let size = std::fs::metadata(&path)
        .map_err(|e| Error::Io { path: path.display().to_string(), reason: e.to_string() })?
        .len();
    println!("saved {} ({size} bytes)", path.display());
    let runtime = Runtime::new(&Graph::load(&path)?)?;
    let onnx = std::env::temp_dir().join("digits_cnn.onnx");
    fused.save_onnx(&onnx)?;
    println!("wrote {} (ONNX opset {}; onnxruntime runs it)", onnx.display(), tensile::export::ONNX_OPSET);

    let (mut right, mut max_diff) = (0, 0f32);
    let (mut eager_s, mut runtime_s) = (0.0, 0.0);
    for (x, label) in &images {
        let t = Instant::now();
        let eager = model.try_forward(x.clone())?.to_vec();
        eager_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let out = runtime.run_one(x)?.to_vec::<f32>()?;
        runtime_s += t.elapsed().as_secs_f64();
        max_diff = eager.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(max_diff, f32::max);
        let predicted = (0..10).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap_or(0) as i64;
        right += (predicted == *label) as usize;
    }
    let n = images.len() as f64;
    println!(
        "runtime on {} test images: accuracy {:.1} %, largest difference from eager {max_diff:.2e}",
        images.len(),
        100.0 * right as f64 / n
    );
    println!("per image: eager {:.0} µs, runtime {:.0} µs", 1e6 * eager_s / n, 1e6 * runtime_s / n);
    assert!(max_diff <= 1e-5, "the runtime should match eager mode");

    if let Some(dir) = embedded_dir() {
        // What `examples/embedded` includes: the graph file, and the first test digits as raw
        // bytes (64 pixels of 0..=16 each, then one label byte each).
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), reason: e.to_string() })?;
        fused.save(format!("{dir}/digits_cnn.tgraph"))?;
        let sample = &pixels[..EMBEDDED_DIGITS];
        let mut bytes: Vec<u8> = sample.iter().flat_map(|(p, _)| p.iter().copied()).collect();
        bytes.extend(sample.iter().map(|&(_, label)| label as u8));
        let path = format!("{dir}/digits_test.bin");
        std::fs::write(&path, bytes).map_err(|e| Error::Io { path: path.clone(), reason: e.to_string() })?;
        println!("wrote {dir}/digits_cnn.tgraph and {path} ({EMBEDDED_DIGITS} digits) for examples/embedded");
    }
    Ok(())
}
