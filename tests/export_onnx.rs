//! ONNX export checked by the real tools: each example model family is traced, written as ONNX,
//! and `tests/onnx/check_onnx.py` runs `onnx.checker.check_model(full_check=True)` and
//! onnxruntime on it against tensile's eager outputs. `.ci/run` installs onnx and onnxruntime and
//! sets `TENSILE_REQUIRE_ONNX=1`, so there a missing checker is a failure, not a skip.

mod common;
#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

use common::export_models::{Cnn, TinyGpt, tiny_gpt};
use std::path::Path;
use tensile::export::{Graph, optimize, trace};
use tensile::nn;
use tensile::prelude::*;

fn write_raw<E: Dtype>(path: &Path, data: &[E]) {
    let mut bytes = Vec::with_capacity(data.len() * E::BYTES);
    for v in data {
        v.put_le(&mut bytes);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes `<name>.onnx`, its input and tensile's output, and the case's description.
fn write_case<E: Dtype>(dir: &Path, name: &str, g: &Graph, input: &[E], output: &[f32], tolerance: f64) {
    g.save_onnx(dir.join(format!("{name}.onnx"))).unwrap();
    write_raw(&dir.join(format!("{name}.x.bin")), input);
    write_raw(&dir.join(format!("{name}.y.bin")), output);
    let (x, y) = (g.info(g.inputs[0].value), g.info(g.outputs[0].value));
    let meta = serde_json::json!({
        "model": format!("{name}.onnx"),
        "tolerance": tolerance,
        "inputs": [{"name": g.inputs[0].name, "dtype": x.dtype.name(), "dims": x.dims, "file": format!("{name}.x.bin")}],
        "outputs": [{"name": g.outputs[0].name, "dtype": "float32", "dims": y.dims, "file": format!("{name}.y.bin")}],
    });
    std::fs::write(dir.join(format!("{name}.json")), meta.to_string()).unwrap();
}

#[test]
fn onnx_exports_pass_the_checker_and_match_onnxruntime() {
    let dir = std::env::temp_dir().join(format!("tensile-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dev = Cpu::seeded(0);

    let mlp: (nn::Linear<16, 32>, nn::ReLU, nn::Linear<32, 32>, nn::GELU, nn::Linear<32, 4>) = BuildOn::build(&dev);
    let x: Tensor<Rank2<5, 16>, f32, Cpu> = dev.randn();
    let y = mlp.forward(x.clone()).to_vec();
    let g = trace(&mlp, &x).unwrap();
    write_case(&dir, "mlp", &g, &x.to_vec(), &y, 1e-5);
    write_case(&dir, "mlp_fused", &optimize(&g).unwrap(), &x.to_vec(), &y, 1e-5);

    let cnn: Cnn = BuildOn::build(&dev);
    let x: Tensor<Rank4<2, 1, 12, 12>, f32, Cpu> = dev.randn();
    let y = cnn.forward(x.clone()).to_vec();
    let g = trace(&cnn, &x).unwrap();
    write_case(&dir, "cnn", &g, &x.to_vec(), &y, 1e-5);
    write_case(&dir, "cnn_fused", &optimize(&g).unwrap(), &x.to_vec(), &y, 1e-5);

    let resnet = resnet18::ResNet18::build(&dev);
    let x: Tensor<(usize, Const<3>, Const<64>, Const<64>), f32, Cpu> = dev.randn_like(&(1, Const, Const, Const));
    let y = resnet.forward(x.clone()).to_vec();
    let g = optimize(&trace(&resnet, &x).unwrap()).unwrap();
    write_case(&dir, "resnet18", &g, &x.to_vec(), &y, 1e-4);

    let gpt: TinyGpt = tiny_gpt(&dev);
    let ids: Tensor<Rank2<2, 6>, i64, Cpu> = dev.tensor([[1, 5, 9, 3, 31, 0], [7, 7, 2, 8, 4, 6]]);
    let y = gpt.forward(ids.clone()).to_vec();
    let g = trace(&gpt, &ids).unwrap();
    write_case(&dir, "transformer_decoder", &g, &ids.to_vec(), &y, 1e-5);
    write_case(&dir, "transformer_decoder_fused", &optimize(&g).unwrap(), &ids.to_vec(), &y, 1e-5);

    let tools = std::process::Command::new("python3").args(["-c", "import onnx, onnxruntime"]).output();
    if !tools.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("TENSILE_REQUIRE_ONNX").is_err(),
            "TENSILE_REQUIRE_ONNX is set but python3 cannot import onnx and onnxruntime"
        );
        eprintln!("skipped the ONNX check: python3 with onnx and onnxruntime is not installed");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx/check_onnx.py");
    let out = std::process::Command::new("python3").arg(script).arg(&dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
