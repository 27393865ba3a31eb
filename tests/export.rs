//! Export: traced graphs run in the runtime give eager mode's outputs, for every example model
//! family; malformed graph files are refused.

mod common;

use common::export_models::{CONTEXT, Cnn, tiny_gpt};
use tensile::export::{Runtime, trace};
use tensile::nn;
use tensile::prelude::*;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn mlp_runs_as_eager() {
    let dev = Cpu::seeded(0);
    let model: (nn::Linear<16, 32>, nn::ReLU, nn::Linear<32, 32>, nn::GELU, nn::Linear<32, 4>) = BuildOn::build(&dev);
    let x: Tensor<Rank2<5, 16>, f32, Cpu> = dev.randn();
    let g = trace(&model, &x).unwrap();
    println!("{g}");
    let y = Runtime::new(&g).unwrap().run_one(&x).unwrap();
    let eager = model.forward(x).to_vec();
    assert!(max_diff(&y.to_vec::<f32>().unwrap(), &eager) <= 1e-6);
}

#[test]
fn cnn_runs_as_eager() {
    let dev = Cpu::seeded(1);
    let model: Cnn = BuildOn::build(&dev);
    let x: Tensor<Rank4<2, 1, 12, 12>, f32, Cpu> = dev.randn();
    let g = trace(&model, &x).unwrap();
    println!("{g}");
    let y = Runtime::new(&g).unwrap().run_one(&x).unwrap();
    let eager = model.forward(x).to_vec();
    assert!(max_diff(&y.to_vec::<f32>().unwrap(), &eager) <= 1e-6);
}

/// A ResNet basic block (conv, batch norm, ReLU, conv, batch norm, identity shortcut).
#[derive(Clone)]
struct Block {
    conv1: nn::Conv2d<8, 8, 3, 1, 1>,
    bn1: nn::BatchNorm2d<8>,
    conv2: nn::Conv2d<8, 8, 3, 1, 1>,
    bn2: nn::BatchNorm2d<8>,
}
tensile::module_fields!(Block { conv1, bn1, conv2, bn2 });

type Image<T> = Tensor<(Const<2>, Const<8>, Const<8>, Const<8>), f32, Cpu, T>;

impl<T: Tape<Cpu>> Module<Image<T>> for Block {
    type Output = Image<T>;
    fn try_forward(&self, x: Image<T>) -> Result<Image<T>> {
        let y = self.bn1.try_forward(self.conv1.try_forward(x.clone())?)?.relu();
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        Ok((y.try_realize::<(Const<2>, Const<8>, Const<8>, Const<8>)>()? + x).relu())
    }
}

struct ResNetLike {
    stem: nn::Conv2d<3, 8, 3, 1, 1>,
    bn: nn::BatchNorm2d<8>,
    blocks: nn::Repeat<Block, 2>,
    head: nn::Linear<8, 5>,
}
tensile::module_fields!(ResNetLike { stem, bn, blocks, head });

impl<T: Tape<Cpu>> Module<Tensor<Rank4<2, 3, 8, 8>, f32, Cpu, T>> for ResNetLike {
    type Output = Tensor<Rank2<2, 5>, f32, Cpu, T>;
    fn try_forward(&self, x: Tensor<Rank4<2, 3, 8, 8>, f32, Cpu, T>) -> Result<Self::Output> {
        let mut y: Image<T> = self.bn.try_forward(self.stem.try_forward(x)?)?.relu().try_realize()?;
        for b in &self.blocks.0 {
            y = b.try_forward(y)?;
        }
        let pooled = y.adaptive_avg_pool2d::<1, 1>().flatten();
        self.head.try_forward(pooled.try_realize::<Rank2<2, 8>>()?)
    }
}

/// Batch norm with running statistics that are not the defaults, so folding it is tested.
fn trained_like<M: nn::Params<Cpu>>(model: &mut M, dev: &Cpu) {
    struct Stats<'a>(&'a Cpu);
    impl nn::VisitorMut<Cpu> for Stats<'_> {
        fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, _: nn::TensorKind, t: &mut Tensor<S, E, Cpu>) {
            if name.ends_with("running_var") {
                *t = t.clone().mul_scalar(0.5).add_scalar(0.7);
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                *t = t.clone().add_scalar(0.1);
            }
            let _ = self.0;
        }
    }
    model.visit_params_mut("", &mut Stats(dev));
}

#[test]
fn resnet_like_runs_as_eager_and_folds_batch_norm() {
    let dev = Cpu::seeded(2);
    let mut model = ResNetLike::build(&dev);
    trained_like(&mut model, &dev);
    let x: Tensor<Rank4<2, 3, 8, 8>, f32, Cpu> = dev.randn();
    let g = trace(&model, &x).unwrap();
    let eager = model.forward(x.clone()).to_vec();
    let y = Runtime::new(&g).unwrap().run_one(&x).unwrap();
    assert!(max_diff(&y.to_vec::<f32>().unwrap(), &eager) <= 1e-6);
    let fused = tensile::export::optimize(&g).unwrap();
    println!("{fused}");
    let bn_nodes = |g: &tensile::export::Graph| g.nodes.iter().filter(|n| n.op.name() == "sub").count();
    assert!(bn_nodes(&g) >= 5 && bn_nodes(&fused) == 0, "batch norm folded into the convolutions");
    assert!(fused.nodes.len() < g.nodes.len());
    let yf = Runtime::new(&fused).unwrap().run_one(&x).unwrap();
    assert!(max_diff(&yf.to_vec::<f32>().unwrap(), &eager) <= 1e-5);
}

#[path = "../examples/common/resnet18.rs"]
#[allow(dead_code)]
mod resnet18;

/// ResNet-18 with a run-time batch of one: every batch norm folds into its convolution (a
/// batch of one keeps the statistics as `[1, C]`, which once stopped the fold), and each
/// convolution takes its bias, residual and ReLU into one node that round-trips through a file.
#[test]
fn resnet18_at_batch_one_folds_and_fuses_every_convolution() {
    let dev = Cpu::seeded(7);
    let mut model = resnet18::ResNet18::build(&dev);
    trained_like(&mut model, &dev);
    let x: Tensor<(usize, Const<3>, Const<32>, Const<32>), f32, Cpu> = dev.randn_like(&(1, Const, Const, Const));
    let g = trace(&model, &x).unwrap();
    let fused = tensile::export::optimize(&g).unwrap();
    let count = |name: &str| fused.nodes.iter().filter(|n| n.op.name() == name).count();
    assert_eq!((count("sub"), count("conv2d"), count("fused_conv2d")), (0, 0, 20), "{fused}");
    let residual = |n: &&tensile::export::Node| matches!(n.op, tensile::export::Op::FusedConv { residual: true, .. });
    assert_eq!(fused.nodes.iter().filter(residual).count(), 8, "one per basic block");
    let eager = model.forward(x.clone()).to_vec();
    let loaded = tensile::export::Graph::from_bytes(&fused.to_bytes()).unwrap();
    assert_eq!(loaded, fused);
    let y = Runtime::new(&loaded).unwrap().run_one(&x).unwrap().to_vec::<f32>().unwrap();
    assert!(max_diff(&y, &eager) <= 1e-4, "{}", max_diff(&y, &eager));
}

#[test]
fn decoder_only_transformer_runs_as_eager() {
    let dev = Cpu::seeded(3);
    let model = tiny_gpt(&dev);
    let ids: Tensor<Rank2<2, CONTEXT>, i64, Cpu> = dev.tensor([[1, 5, 9, 3, 31, 0], [7, 7, 2, 8, 4, 6]]);
    let g = trace(&model, &ids).unwrap();
    let eager = model.forward(ids.clone()).to_vec();
    let y = Runtime::new(&g).unwrap().run_one(&ids).unwrap();
    assert!(max_diff(&y.to_vec::<f32>().unwrap(), &eager) <= 1e-6);
    let fused = tensile::export::optimize(&g).unwrap();
    assert!(fused.nodes.len() < g.nodes.len());
    let yf = Runtime::new(&fused).unwrap().run_one(&ids).unwrap();
    assert!(max_diff(&yf.to_vec::<f32>().unwrap(), &eager) <= 1e-5);
    // an out-of-vocabulary token is an `Err`, not a panic
    let bad = dev.tensor([[1i64, 5, 9, 3, 32, 0], [7, 7, 2, 8, 4, 6]]);
    assert!(matches!(Runtime::new(&g).unwrap().run_one(&bad), Err(Error::IndexOutOfRange { .. })));
}

#[test]
fn fused_graphs_keep_outputs_and_lose_nodes() {
    let dev = Cpu::seeded(4);
    let model: Cnn = BuildOn::build(&dev);
    let x: Tensor<Rank4<3, 1, 12, 12>, f32, Cpu> = dev.randn();
    let g = trace(&model, &x).unwrap();
    let fused = tensile::export::optimize(&g).unwrap();
    println!("{fused}");
    assert!(fused.nodes.len() < g.nodes.len(), "{} -> {}", g.nodes.len(), fused.nodes.len());
    assert!(fused.nodes.iter().any(|n| n.op.name() == "linear"));
    let a = Runtime::new(&g).unwrap().run_one(&x).unwrap().to_vec::<f32>().unwrap();
    let b = Runtime::new(&fused).unwrap().run_one(&x).unwrap().to_vec::<f32>().unwrap();
    assert!(max_diff(&a, &b) <= 1e-5);
    // relu(x * a + b) is one element-wise node
    let chain = |t: Tensor<Rank2<4, 4>, f32, Cpu, tensile::export::TraceTape<Cpu>>| (t.clone() * 2.0 + t).relu();
    let tracer = tensile::export::Tracer::new();
    let input: Tensor<Rank2<4, 4>, f32, Cpu> = dev.randn();
    let y = chain(tracer.input("x", &input));
    let g = tracer.finish(&(), &[("y", &y)]).unwrap();
    let fused = tensile::export::fuse_elementwise(&g);
    assert_eq!(fused.nodes.len(), 1, "{fused}");
    let expect = ((input.clone() * 2.0) + input.clone()).relu().to_vec();
    let got = Runtime::new(&fused).unwrap().run_one(&input).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(got, expect);
    let plan = tensile::export::memory_plan(&g);
    assert!(plan.peak_bytes <= plan.unplanned_bytes);
}

#[test]
fn graph_files_round_trip_and_bad_inputs_are_errors() {
    let dev = Cpu::seeded(5);
    let model: Cnn = BuildOn::build(&dev);
    let x: Tensor<Rank4<2, 1, 12, 12>, f32, Cpu> = dev.randn();
    let g = tensile::export::optimize(&trace(&model, &x).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("tensile-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cnn.tgraph");
    g.save(&path).unwrap();
    let loaded = tensile::export::Graph::load(&path).unwrap();
    assert_eq!(loaded, g);
    let rt = Runtime::new(&loaded).unwrap();
    let eager = model.forward(x.clone()).to_vec();
    assert!(max_diff(&rt.run_one(&x).unwrap().to_vec::<f32>().unwrap(), &eager) <= 1e-5);
    // wrong dims, wrong dtype, wrong count
    let wrong: Tensor<Rank4<1, 1, 12, 12>, f32, Cpu> = dev.randn();
    assert!(matches!(rt.run_one(&wrong), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(rt.run_one(&x.clone().to_dtype::<f64>()), Err(Error::WrongDtype { .. })));
    assert!(rt.run(&[]).is_err());
    // a file from a newer version, a truncated one, a corrupted one, not a graph at all
    let mut bytes = g.to_bytes();
    let full = bytes.clone();
    bytes[8] = 99;
    let err = tensile::export::Graph::from_bytes(&bytes).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
    let err = tensile::export::Graph::from_bytes(&full[..full.len() / 2]).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    let mut flipped = full.clone();
    flipped[full.len() / 2] ^= 0x40;
    let err = tensile::export::Graph::from_bytes(&flipped).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    assert!(tensile::export::Graph::from_bytes(b"not a graph file at all, really not").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn masks_computed_from_the_input_stay_in_the_graph() {
    let dev = Cpu::seeded(6);
    let tracer = tensile::export::Tracer::new();
    let x: Tensor<Rank2<3, 4>, f32, Cpu> = dev.randn();
    let t = tracer.input("x", &x);
    // a leaky ReLU by hand: the mask depends on the input, so it must be a node, not a constant
    let y = t.gt_scalar(0.0).choose(t.clone(), t.clone().mul_scalar(0.1));
    let g = tracer.finish(&(), &[("y", &y)]).unwrap();
    assert!(g.nodes.iter().any(|n| n.op.name() == "gt"), "{g}");
    let other: Tensor<Rank2<3, 4>, f32, Cpu> = dev.randn();
    let got = Runtime::new(&g).unwrap().run_one(&other).unwrap().to_vec::<f32>().unwrap();
    let expect = other.gt_scalar(0.0).choose(other.clone(), other.clone().mul_scalar(0.1)).to_vec();
    assert_eq!(got, expect);
    assert!(g.to_onnx().is_ok());
}

#[test]
fn a_value_that_left_the_tape_is_refused() {
    struct Detaching(nn::Linear<4, 4>);
    impl nn::Params<Cpu> for Detaching {
        fn visit_params<V: nn::Visitor<Cpu>>(&self, prefix: &str, v: &mut V) {
            self.0.visit_params(prefix, v);
        }
        fn visit_params_mut<V: nn::VisitorMut<Cpu>>(&mut self, prefix: &str, v: &mut V) {
            self.0.visit_params_mut(prefix, v);
        }
    }
    impl<T: Tape<Cpu>> Module<Tensor<Rank2<2, 4>, f32, Cpu, T>> for Detaching {
        type Output = Tensor<Rank2<2, 4>, f32, Cpu, T>;
        fn try_forward(&self, x: Tensor<Rank2<2, 4>, f32, Cpu, T>) -> Result<Self::Output> {
            let scale = x.detach().exp(); // computed from the input, off the tape
            Ok(self.0.try_forward(x)? * scale)
        }
    }
    let dev = Cpu::seeded(7);
    let model = Detaching(BuildOn::build(&dev));
    let x: Tensor<Rank2<2, 4>, f32, Cpu> = dev.randn();
    let err = trace(&model, &x).unwrap_err();
    assert!(matches!(err, Error::Untraceable { .. }), "{err}");
    assert!(err.to_string().contains("left the trace"), "{err}");
}

/// The files `examples/embedded` includes: the committed graph still loads in this version of the
/// runtime and still classifies the committed digits (the same check the QEMU run makes).
#[test]
fn the_embedded_examples_graph_file_classifies_its_digits() {
    const PIXELS: usize = 64;
    let graph = tensile::export::Graph::from_bytes(include_bytes!("../examples/embedded/model/digits_cnn.tgraph"))
        .expect("the committed graph file loads");
    let runtime = Runtime::new(&graph).unwrap();
    let digits: &[u8] = include_bytes!("../examples/embedded/model/digits_test.bin");
    let count = digits.len() / (PIXELS + 1);
    assert!(count >= 10, "the sample holds {count} digits");
    let (images, labels) = digits.split_at(count * PIXELS);
    let mut right = 0;
    for (pixels, &label) in images.chunks_exact(PIXELS).zip(labels) {
        let x = pixels.iter().map(|&p| f32::from(p) / 16.0).collect();
        let out = runtime.run(&[tensile::export::Value::from_vec(&[1, 1, 8, 8], x).unwrap()]).unwrap();
        let logits = out[0].to_vec::<f32>().unwrap();
        let predicted = (0..10).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        right += usize::from(predicted == usize::from(label));
    }
    assert!(right * 10 >= count * 9, "{right} of {count} right");
}
