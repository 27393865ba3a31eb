//! safetensors save/load: round trips, the strict checks and their errors (the model unchanged
//! on every error), malformed bytes, and both directions with PyTorch: files PyTorch saved
//! (`tests/pytorch/saved/`, from `safetensors_roundtrip.py make`) load into tensile types and give
//! PyTorch's outputs; files tensile saves load in PyTorch with `strict=True` (run when Python
//! with torch is installed).

use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tensile::nn::{
    self, BatchNorm1d, BatchNorm2d, Conv2d, Embedding, Flatten, LayerNorm, Linear, MaxPool2d, ReLU, SaveLoad, Tanh,
};
use tensile::prelude::*;

type Cnn = (Conv2d<1, 4, 3>, BatchNorm2d<4>, ReLU, MaxPool2d<2>, Flatten, Linear<36, 3>);
type Text = (Embedding<10, 6>, LayerNorm<6>, Linear<6, 4>);
type Mlp64 = (Linear<3, 4, f64>, Tanh, Linear<4, 2, f64>);
type Image = Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu>;

fn saved(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pytorch/saved").join(name)
}

fn case(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(saved(&format!("{name}.json"))).unwrap()).unwrap()
}

fn data<E: Dtype>(v: &Value) -> Vec<E> {
    v["data"].as_array().unwrap().iter().map(|x| E::cast_f64(x.as_f64().unwrap())).collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

fn assert_close<E: Dtype>(what: &str, got: &[E], want: &[E], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.as_f64(), w.as_f64());
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}[{i}]: tensile {g}, PyTorch {w}");
    }
}

/// Every tensor's values, to compare a model before and after a refused load.
fn snapshot<M: nn::Params<Cpu>>(m: &M) -> Vec<u8> {
    m.to_safetensors().unwrap()
}

fn cnn_input(case: &Value) -> Image {
    let x = &case["input"];
    let shape = <(usize, Const<1>, Const<8>, Const<8>) as Shape>::from_dims(&dims(x)).unwrap();
    Cpu::seeded(0).from_vec(data(x), shape)
}

fn text_input(case: &Value) -> Tensor<(usize, usize), i64, Cpu> {
    let x = &case["input"];
    Cpu::seeded(0).from_vec(data(x), <(usize, usize) as Shape>::from_dims(&dims(x)).unwrap())
}

fn mlp_input(case: &Value) -> Tensor<(usize, Const<3>), f64, Cpu> {
    let x = &case["input"];
    Cpu::seeded(0).from_vec(data(x), <(usize, Const<3>) as Shape>::from_dims(&dims(x)).unwrap())
}

#[test]
fn files_saved_by_pytorch_load_and_give_pytorch_outputs() {
    let dev = Cpu::seeded(7);
    let c = case("cnn");
    let mut cnn = Cnn::build(&dev);
    cnn.load(saved("cnn.safetensors")).unwrap();
    assert_eq!(cnn.1.num_batches_tracked.to_vec(), [1], "PyTorch took one training step");
    assert_close("cnn", &cnn.forward(cnn_input(&c)).to_vec(), &data::<f32>(&c["output"]), 1e-5);

    let c = case("text");
    let mut text = Text::build(&dev);
    text.load(saved("text.safetensors")).unwrap();
    assert_close("text", &text.forward(text_input(&c)).to_vec(), &data::<f32>(&c["output"]), 1e-5);

    let c = case("mlp64");
    let mut mlp = Mlp64::build(&dev);
    mlp.load(saved("mlp64.safetensors")).unwrap();
    assert_close("mlp64", &mlp.forward(mlp_input(&c)).to_vec(), &data::<f64>(&c["output"]), 1e-12);
}

#[test]
fn a_saved_model_loads_back_exactly_with_its_buffers() {
    let dev = Cpu::seeded(0);
    let mut model = Cnn::build(&dev);
    let x: Image = dev.randn_like(&(4, Const, Const, Const));
    let _ = model.forward_mut(x.clone()); // running statistics move, num_batches_tracked becomes 1
    let dir = std::env::temp_dir().join(format!("tensile-serialize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cnn.safetensors");
    model.save(&path).unwrap();
    model.save(&path).unwrap(); // overwriting goes through a temporary file too

    let mut back = Cnn::build(&Cpu::seeded(99));
    back.load(&path).unwrap();
    assert_eq!(snapshot(&back), snapshot(&model));
    assert_eq!(back.1.num_batches_tracked.to_vec(), [1]);
    assert_eq!(back.forward(x.clone()).to_vec(), model.forward(x).to_vec());
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["cnn.safetensors"], "no temporary file is left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_float_dtype_round_trips() {
    fn round_trip<E: Float>() {
        let m = <(Linear<3, 2, E>, BatchNorm1d<2, E>)>::build(&Cpu::seeded(1));
        let mut back = <(Linear<3, 2, E>, BatchNorm1d<2, E>)>::build(&Cpu::seeded(2));
        back.load_safetensors(&m.to_safetensors().unwrap()).unwrap();
        assert_eq!(back.0.weight.to_vec(), m.0.weight.to_vec(), "{}", E::NAME);
    }
    round_trip::<f32>();
    round_trip::<f64>();
    round_trip::<half::f16>();
    round_trip::<half::bf16>();
}

#[test]
fn a_file_that_does_not_fit_is_refused_naming_the_first_mismatch_and_changes_nothing() {
    let dev = Cpu::seeded(0);
    let bytes = <(Linear<4, 8>, ReLU, Linear<8, 2>)>::build(&dev).to_safetensors().unwrap();

    let mut wider = <(Linear<4, 8>, ReLU, Linear<8, 3>)>::build(&dev);
    let before = snapshot(&wider);
    let err = wider.load_safetensors(&bytes).unwrap_err();
    assert_eq!(err, Error::WrongShape { key: "2.weight".into(), expected: vec![3, 8], found: vec![2, 8] });
    assert_eq!(snapshot(&wider), before, "layer 0 fitted, but nothing was loaded");

    let mut deeper = <(Linear<4, 8>, ReLU, Linear<8, 2>, ReLU, Linear<2, 2>)>::build(&dev);
    let err = deeper.load_safetensors(&bytes).unwrap_err();
    assert_eq!(err, Error::MissingKey { key: "4.weight".into() });

    let mut shallower = <(Linear<4, 8>,)>::build(&dev);
    let before = snapshot(&shallower);
    let err = shallower.load_safetensors(&bytes).unwrap_err();
    assert_eq!(err, Error::UnexpectedKey { key: "2.bias".into() });
    assert_eq!(err.to_string(), "the saved state has `2.bias`, which the model does not");
    assert_eq!(snapshot(&shallower), before);

    let mut in_f64 = <(Linear<4, 8, f64>, ReLU, Linear<8, 2, f64>)>::build(&dev);
    let err = in_f64.load_safetensors(&bytes).unwrap_err();
    assert_eq!(err, Error::WrongDtype { key: "0.weight".into(), expected: "float64", found: "F32".into() });

    let err = wider.load(saved("no-such-file.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn truncated_and_garbage_bytes_are_malformed() {
    let dev = Cpu::seeded(0);
    let mut m = <(Linear<4, 8>, ReLU, Linear<8, 2>)>::build(&dev);
    let bytes = m.to_safetensors().unwrap();
    let before = snapshot(&m);
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let err = m.load_safetensors(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, Error::Malformed { format: "safetensors", .. }), "cut at {cut}: {err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(m.load_safetensors(&longer), Err(Error::Malformed { .. })));
    assert_eq!(snapshot(&m), before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Random byte changes never panic; whatever is refused leaves the model as it was.
    #[test]
    fn mutated_files_never_panic(changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let dev = Cpu::seeded(0);
        let mut m = <(Linear<3, 2>, BatchNorm1d<2>)>::build(&dev);
        let mut bytes = m.to_safetensors().unwrap();
        for (at, byte) in changes {
            let n = bytes.len();
            bytes[at % n] = byte;
        }
        let keep = bytes.len() - cut % 4; // sometimes truncated too
        bytes.truncate(keep);
        let before = snapshot(&m);
        if m.load_safetensors(&bytes).is_err() {
            prop_assert_eq!(snapshot(&m), before);
        }
    }
}

fn tensor_json<S: Shape, E: Dtype>(t: &Tensor<S, E, Cpu>) -> Value {
    json!({"shape": t.dims().to_vec(), "dtype": E::NAME, "data": t.to_vec().iter().map(|v| v.as_f64()).collect::<Vec<_>>()})
}

/// Writes `NAME.safetensors` and `NAME.json` (input, tensile's eval output) for the checker.
fn save_for_pytorch<S: Shape, E: Dtype, Y: Shape, F: Dtype, M>(dir: &Path, name: &str, model: &M, x: Tensor<S, E, Cpu>)
where
    M: nn::Params<Cpu> + Module<Tensor<S, E, Cpu>, Output = Tensor<Y, F, Cpu>>,
{
    model.save(dir.join(format!("{name}.safetensors"))).unwrap();
    let y = model.forward(x.clone());
    let case = json!({"input": tensor_json(&x), "output": tensor_json(&y)});
    std::fs::write(dir.join(format!("{name}.json")), case.to_string()).unwrap();
}

#[test]
fn pytorch_loads_files_saved_by_tensile_strictly() {
    let dev = Cpu::seeded(3);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tensile-saved");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cnn = Cnn::build(&dev);
    let x: Image = dev.randn_like(&(2, Const, Const, Const));
    let _ = cnn.forward_mut(x.clone());
    save_for_pytorch(&dir, "cnn", &cnn, x);
    let tokens: Tensor<(usize, usize), i64, Cpu> = dev.from_vec(vec![0, 3, 9, 3, 1, 2, 8, 7, 6, 5], (2, 5));
    save_for_pytorch(&dir, "text", &Text::build(&dev), tokens);
    let x: Tensor<(usize, Const<3>), f64, Cpu> = dev.randn_like(&(5, Const));
    save_for_pytorch(&dir, "mlp64", &Mlp64::build(&dev), x);

    let torch = std::process::Command::new("python3").args(["-c", "import torch, safetensors"]).output();
    if !torch.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped the PyTorch side: python3 with torch and safetensors is not installed");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pytorch/safetensors_roundtrip.py");
    let out = std::process::Command::new("python3").arg(script).arg("check").arg(&dir).output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "PyTorch refused tensile's files:\n{report}");
    assert_eq!(report.matches("strict load ok, output matches").count(), 3, "{report}");
}
