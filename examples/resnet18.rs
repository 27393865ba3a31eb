//! ResNet-18 as types, with torchvision's layout and parameter names (`layer2.0.downsample.0.weight`),
//! so a `resnet18().state_dict()` saved as safetensors loads into it. Every spatial size after
//! the input is computed by the types, and each residual sum meets two differently computed
//! dims of equal size, checked at build time.
//!
//! ```sh
//! cargo run --release --example resnet18
//! ```
//! builds the model, checks its parameter count against torchvision's (11,689,512), and times
//! a forward pass and a training step on a batch of 224 x 224 images.

use std::time::Instant;
use tensile::nn::{self, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, NoBias};
use tensile::ops::ConvLen;
use tensile::prelude::*;

/// `(batch, C, h, w)` on the CPU, any tape.
type Image<const C: usize, H, W, T> = Tensor<(usize, Const<C>, H, W), f32, Cpu, T>;
/// A 3 x 3 convolution without bias, torchvision's `conv3x3`.
type Conv3x3<const I: usize, const O: usize, const S: usize> = NoBias<Conv2d<I, O, 3, S, 1>>;

/// Two 3 x 3 convolutions and an identity shortcut (torchvision's `BasicBlock`, stride 1).
struct BasicBlock<const C: usize> {
    conv1: Conv3x3<C, C, 1>,
    bn1: BatchNorm2d<C>,
    conv2: Conv3x3<C, C, 1>,
    bn2: BatchNorm2d<C>,
}
tensile::module_fields!(impl[const C: usize] BasicBlock<C> where D = Cpu { conv1, bn1, conv2, bn2 });

/// The first block of a stage: stride 2, and a 1 x 1 convolution on the shortcut.
struct DownBlock<const I: usize, const O: usize> {
    conv1: Conv3x3<I, O, 2>,
    bn1: BatchNorm2d<O>,
    conv2: Conv3x3<O, O, 1>,
    bn2: BatchNorm2d<O>,
    downsample: (NoBias<Conv2d<I, O, 1, 2>>, BatchNorm2d<O>),
}
tensile::module_fields!(impl[const I: usize, const O: usize] DownBlock<I, O> where D = Cpu { conv1, bn1, conv2, bn2, downsample });

impl<const C: usize, H: Dim, W: Dim, T: Tape<Cpu>> Module<Image<C, H, W, T>> for BasicBlock<C> {
    type Output = Image<C, H, W, T>;
    fn try_forward(&self, x: Image<C, H, W, T>) -> Result<Self::Output> {
        let y = self.bn1.try_forward(self.conv1.try_forward(x.clone())?)?.relu();
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        // a 3 x 3 convolution with padding 1 keeps the size: the computed dims realize to H, W
        Ok((y.try_realize::<(usize, Const<C>, H, W)>()? + x).relu())
    }
}

/// A stride-2 stage's output size.
type Half<N> = ConvLen<N, Const<3>, 2, 1, 1>;

impl<const I: usize, const O: usize, H: Dim, W: Dim, T: Tape<Cpu>> Module<Image<I, H, W, T>> for DownBlock<I, O> {
    type Output = Image<O, Half<H>, Half<W>, T>;
    fn try_forward(&self, x: Image<I, H, W, T>) -> Result<Self::Output> {
        let y = self.bn1.try_forward(self.conv1.try_forward(x.clone())?)?.relu();
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        let shortcut = self.downsample.try_forward(x)?;
        let y: Self::Output = y.try_realize()?;
        Ok((y + shortcut.try_realize()?).relu())
    }
}

/// torchvision's `resnet18()`: 11,689,512 parameters.
struct ResNet18 {
    conv1: NoBias<Conv2d<3, 64, 7, 2, 3>>,
    bn1: BatchNorm2d<64>,
    layer1: (BasicBlock<64>, BasicBlock<64>),
    layer2: (DownBlock<64, 128>, BasicBlock<128>),
    layer3: (DownBlock<128, 256>, BasicBlock<256>),
    layer4: (DownBlock<256, 512>, BasicBlock<512>),
    fc: Linear<512, 1000>,
}
tensile::module_fields!(ResNet18 { conv1, bn1, layer1, layer2, layer3, layer4, fc });

type Pixels<T> = Image<3, Const<224>, Const<224>, T>;

impl<T: Tape<Cpu>> Module<Pixels<T>> for ResNet18 {
    type Output = Tensor<(usize, Const<1000>), f32, Cpu, T>;
    fn try_forward(&self, x: Pixels<T>) -> Result<Self::Output> {
        let x = self.bn1.try_forward(self.conv1.try_forward(x)?)?.relu();
        let x = MaxPool2d::<3, 2, 1>.try_forward(x)?; // 56 x 56
        let x = self.layer1.try_forward(x)?;
        let x = self.layer2.try_forward(x)?; // 28 x 28
        let x = self.layer3.try_forward(x)?; // 14 x 14
        let x = self.layer4.try_forward(x)?; // 7 x 7
        let x = AdaptiveAvgPool2d::<1, 1>.try_forward(x)?;
        let (b, c, _, _) = *x.shape();
        self.fc.try_forward(x.try_reshape_like(&(b, c))?)
    }
}

fn main() -> Result<()> {
    let dev = Cpu::seeded(0);
    let model = ResNet18::build(&dev);
    let params = nn::num_params(&model);
    let names = nn::named_tensors(&model);
    println!("ResNet-18: {params} parameters, {} state_dict entries (torchvision: 11689512 and 122)", names.len());
    assert_eq!(names.len(), 122);
    assert_eq!(params, 11_689_512);
    assert!(names.iter().any(|(n, _, _)| n == "layer2.0.downsample.0.weight"));

    let batch = 8;
    let images: Pixels<NoTape> = dev.randn_like(&(batch, Const, Const, Const));
    let start = Instant::now();
    let logits = model.try_forward(images.clone())?;
    println!("inference, batch {batch}: {:?} in {:.0} ms", logits.dims(), start.elapsed().as_secs_f64() * 1e3);

    let labels: Tensor<(usize,), i64, Cpu> = dev.from_vec((0..batch as i64).collect(), (batch,));
    let start = Instant::now();
    let loss = model.try_forward(images.trace(nn::alloc_grads(&model)))?.try_cross_entropy(&labels)?;
    let grads = loss.clone().backward();
    println!(
        "training step (forward + backward), batch {batch}: loss {:.3} in {:.0} ms; fc grad norm {:.3}",
        loss.to_array(),
        start.elapsed().as_secs_f64() * 1e3,
        grads.get(&model.fc.weight).square().sum::<Rank0, _>().to_array().sqrt()
    );
    Ok(())
}
