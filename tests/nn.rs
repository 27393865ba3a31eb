//! Modules composed as tuples: shapes flow through at compile time, parameters are named as in
//! PyTorch's `state_dict`, and gradients reach every parameter through the input's tape.

use tensile::nn::{
    self, AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Params, ReLU, Tanh, TensorKind, VisitorMut,
};
use tensile::prelude::*;

/// LeNet-style: every dim after the input is computed by the types.
type LeNet = (
    Conv2d<1, 6, 5, 1, 2>,
    ReLU,
    MaxPool2d<2>,
    Conv2d<6, 16, 5>,
    ReLU,
    MaxPool2d<2>,
    Flatten,
    Linear<400, 120>,
    ReLU,
    Linear<120, 84>,
    ReLU,
    Linear<84, 10>,
);

#[test]
fn a_conv_net_composes_and_names_its_parameters() {
    let dev = Cpu::seeded(0);
    let model = LeNet::build(&dev);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu> = dev.randn_like(&(3, Const, Const, Const));
    let y: Tensor<(usize, Const<10>), f32, Cpu> = model.forward(x);
    assert_eq!(y.dims().as_slice(), &[3, 10]);
    let names: Vec<String> = nn::named_tensors(&model).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "3.weight",
            "3.bias",
            "7.weight",
            "7.bias",
            "9.weight",
            "9.bias",
            "11.weight",
            "11.bias"
        ]
    );
    assert_eq!(nn::num_params(&model), 61_706); // PyTorch's count for this LeNet-5
}

#[test]
fn every_parameter_gets_a_gradient() {
    let dev = Cpu::seeded(0);
    let model = <(Conv2d<2, 4, 3, 1, 1, 1, 2>, Tanh, AdaptiveAvgPool2d<1, 1>, Flatten, Linear<4, 3>)>::build(&dev);
    let x: Tensor<Rank4<2, 2, 5, 5>, f64, Cpu> = dev.randn();
    let model = model_to_f64(model, &dev);
    let g = model.forward(x.trace(nn::alloc_grads(&model))).square().sum::<Rank0, _>().backward();
    for (name, kind, dims) in nn::named_tensors(&model) {
        assert_eq!(kind, TensorKind::Parameter);
        let _ = (name, dims);
    }
    assert!(g.get(&model.0.weight).to_vec().iter().any(|v| *v != 0.0));
    assert!(g.get(model.0.bias.as_ref().unwrap()).to_vec().iter().any(|v| *v != 0.0));
    assert!(g.get(&model.4.weight).to_vec().iter().any(|v| *v != 0.0));
    assert!(g.get(model.4.bias.as_ref().unwrap()).to_vec().iter().any(|v| *v != 0.0));
}

/// The same model built in f64 (each module is generic over its dtype).
fn model_to_f64(
    _: (Conv2d<2, 4, 3, 1, 1, 1, 2>, Tanh, AdaptiveAvgPool2d<1, 1>, Flatten, Linear<4, 3>),
    dev: &Cpu,
) -> (Conv2d<2, 4, 3, 1, 1, 1, 2, f64>, Tanh, AdaptiveAvgPool2d<1, 1>, Flatten, Linear<4, 3, f64>) {
    BuildOn::build(dev)
}

/// Plain SGD through the mutable visitor: `p -= lr * grad`.
struct Sgd<'a> {
    grads: &'a Gradients<Cpu>,
    lr: f64,
}

impl VisitorMut<Cpu> for Sgd<'_> {
    fn visit_mut<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &mut Tensor<S, E, Cpu>) {
        if kind == TensorKind::Parameter {
            let g = self.grads.get(t);
            *t = t.clone() - g.mul_scalar(self.lr);
        }
    }
}

#[test]
fn an_mlp_learns_xor() {
    let dev = Cpu::seeded(3);
    let mut model = <(Linear<2, 16>, Tanh, Dropout, Linear<16, 1>)>::build(&dev);
    model.2.p = 0.0;
    let x: Tensor<Rank2<4, 2>, f32, Cpu> = dev.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]);
    let y: Tensor<Rank2<4, 1>, f32, Cpu> = dev.tensor([[0.0], [1.0], [1.0], [0.0]]);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..500 {
        let out = model.forward_mut(x.trace(nn::alloc_grads(&model)));
        let loss = (out - y.clone()).square().mean::<Rank0, _>();
        last = loss.to_array();
        first.get_or_insert(last);
        let grads = loss.backward();
        model.visit_params_mut("", &mut Sgd { grads: &grads, lr: 0.2 });
    }
    assert!(last < 0.01, "loss went from {first:?} to {last}");
}

/// A user-written block (ResNet's basic block without downsampling), fields named as PyTorch's.
struct BasicBlock {
    conv1: Conv2d<4, 4, 3, 1, 1>,
    bn1: nn::BatchNorm2d<4>,
    conv2: Conv2d<4, 4, 3, 1, 1>,
    bn2: nn::BatchNorm2d<4>,
}
tensile::module_fields!(BasicBlock { conv1, bn1, conv2, bn2 });

type Image = (usize, Const<4>, Const<6>, Const<6>);

impl<T: Tape<Cpu>> ModuleMut<Tensor<Image, f32, Cpu, T>> for BasicBlock {
    type Output = Tensor<Image, f32, Cpu, T>;
    fn try_forward_mut(&mut self, x: Tensor<Image, f32, Cpu, T>) -> Result<Self::Output> {
        let h = self.bn1.try_forward_mut(self.conv1.try_forward(x.clone())?.realize::<Image>())?.relu();
        let h = self.bn2.try_forward_mut(self.conv2.try_forward(h)?.realize::<Image>())?;
        Ok((h + x).relu())
    }
}

#[test]
fn a_user_written_block_names_its_fields_and_trains() {
    let dev = Cpu::seeded(0);
    let mut block = BasicBlock::build(&dev);
    let names: Vec<String> = nn::named_tensors(&block).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(&names[..4], ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"]);
    assert_eq!(names[4], "bn1.running_mean");
    let x: Tensor<Image, f32, Cpu> = dev.randn_like(&(3, Const, Const, Const));
    let y = block.forward_mut(x.trace(nn::alloc_grads(&block)));
    let g = y.square().mean::<Rank0, _>().backward();
    assert!(g.get(&block.conv1.weight).to_vec().iter().any(|v| *v != 0.0));
    assert!(g.get(&block.bn2.bias).to_vec().iter().any(|v| *v != 0.0));
}

/// Run-time sizes that do not fit a sequence module are an `Err` from `try_forward`.
#[test]
fn sequence_modules_refuse_run_time_sizes_that_do_not_fit() {
    use tensile::nn::{GRU, LSTM, MultiHeadAttention, TransformerDecoderLayer};
    type Seq<const M: usize> = Tensor<(usize, usize, Const<M>), f32, Cpu>;
    let dev = Cpu::seeded(0);

    let lstm = LSTM::<3, 4>::build(&dev);
    let empty: Seq<3> = dev.zeros_like(&(2, 0, Const));
    assert!(matches!(lstm.try_forward(empty), Err(Error::InvalidSize { op: "LSTM", .. })));
    let gru = GRU::<3, 4, 2>::build(&dev);
    let x: Seq<3> = dev.zeros_like(&(2, 5, Const));
    let h0: Tensor<(Const<2>, usize, Const<4>), f32, Cpu> = dev.zeros_like(&(Const, 3, Const)); // batch 3, not 2
    assert!(gru.try_forward((x, h0)).is_err());

    let mha = MultiHeadAttention::<8, 2>::build(&dev);
    let q: Seq<8> = dev.zeros_like(&(2, 3, Const));
    let k: Seq<8> = dev.zeros_like(&(2, 4, Const));
    let v: Seq<8> = dev.zeros_like(&(2, 5, Const)); // keys and values of different lengths
    assert!(mha.try_forward((q.clone(), k.clone(), v)).is_err());
    let mask: Tensor<(usize, usize), bool, Cpu> = dev.full_like(&(3, 3), true); // 3 x 3 for 3 x 4 pairs
    assert!(mha.try_forward((q.clone(), k.clone(), k.clone(), AttnMask::Keep(&mask))).is_err());

    let decoder = TransformerDecoderLayer::<8, 2, 16>::build(&dev);
    let memory: Seq<8> = dev.zeros_like(&(3, 4, Const)); // batch 3 against the target's 2
    assert!(decoder.try_forward((q, memory)).is_err());
}

/// Dropout in training mode changes the output; inference is deterministic.
#[test]
fn transformer_layers_drop_out_only_in_training() {
    use tensile::nn::TransformerEncoderLayer;
    let dev = Cpu::seeded(0);
    let mut layer = TransformerEncoderLayer::<8, 2, 16>::build(&dev);
    let x: Tensor<(usize, usize, Const<8>), f32, Cpu> = dev.randn_like(&(2, 5, Const));
    assert_eq!(layer.forward(x.clone()).to_vec(), layer.forward(x.clone()).to_vec());
    assert_ne!(layer.forward_mut(x.clone()).to_vec(), layer.forward(x.clone()).to_vec());
    let mut no_dropout = layer.clone().with_dropout(0.0);
    assert_eq!(no_dropout.forward_mut(x.clone()).to_vec(), no_dropout.forward(x).to_vec());
}
