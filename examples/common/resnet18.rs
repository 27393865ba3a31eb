//! ResNet-18 as types (torchvision's layout and names), shared by `examples/resnet18.rs`, the
//! export example and benchmarks, and the ONNX export test. Generic over the device (`Cpu` unless
//! named), f32.

use tensile::nn::{AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, NoBias};
use tensile::ops::ConvLen;
use tensile::prelude::*;

/// `(batch, C, h, w)`, any tape.
pub type Image<const C: usize, H, W, T, D = Cpu> = Tensor<(usize, Const<C>, H, W), f32, D, T>;
/// A 3 x 3 convolution without bias, torchvision's `conv3x3`.
type Conv3x3<const I: usize, const O: usize, const S: usize, D> = NoBias<Conv2d<I, O, 3, S, 1, 1, 1, f32, D>>;

/// Two 3 x 3 convolutions and an identity shortcut (torchvision's `BasicBlock`, stride 1).
pub struct BasicBlock<const C: usize, D: Device = Cpu> {
    pub conv1: Conv3x3<C, C, 1, D>,
    pub bn1: BatchNorm2d<C, f32, D>,
    pub conv2: Conv3x3<C, C, 1, D>,
    pub bn2: BatchNorm2d<C, f32, D>,
}
tensile::module_fields!(impl[const C: usize, D: Device] BasicBlock<C, D> { conv1, bn1, conv2, bn2 });

/// The first block of a stage: stride 2, and a 1 x 1 convolution on the shortcut.
pub struct DownBlock<const I: usize, const O: usize, D: Device = Cpu> {
    pub conv1: Conv3x3<I, O, 2, D>,
    pub bn1: BatchNorm2d<O, f32, D>,
    pub conv2: Conv3x3<O, O, 1, D>,
    pub bn2: BatchNorm2d<O, f32, D>,
    pub downsample: (NoBias<Conv2d<I, O, 1, 2, 0, 1, 1, f32, D>>, BatchNorm2d<O, f32, D>),
}
tensile::module_fields!(impl[const I: usize, const O: usize, D: Device] DownBlock<I, O, D> { conv1, bn1, conv2, bn2, downsample });

impl<const C: usize, H: Dim, W: Dim, D: Device, T: Tape<D>> Module<Image<C, H, W, T, D>> for BasicBlock<C, D> {
    type Output = Image<C, H, W, T, D>;
    fn try_forward(&self, x: Image<C, H, W, T, D>) -> Result<Self::Output> {
        let y = self.bn1.try_forward(self.conv1.try_forward(x.clone())?)?.relu();
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        // a 3 x 3 convolution with padding 1 keeps the size: the computed dims realize to H, W
        Ok((y.try_realize::<(usize, Const<C>, H, W)>()? + x).relu())
    }
}

/// A stride-2 stage's output size.
type Half<N> = ConvLen<N, Const<3>, 2, 1, 1>;

impl<const I: usize, const O: usize, H: Dim, W: Dim, D: Device, T: Tape<D>> Module<Image<I, H, W, T, D>>
    for DownBlock<I, O, D>
{
    type Output = Image<O, Half<H>, Half<W>, T, D>;
    fn try_forward(&self, x: Image<I, H, W, T, D>) -> Result<Self::Output> {
        let y = self.bn1.try_forward(self.conv1.try_forward(x.clone())?)?.relu();
        let y = self.bn2.try_forward(self.conv2.try_forward(y)?)?;
        let shortcut = self.downsample.try_forward(x)?;
        let y: Self::Output = y.try_realize()?;
        Ok((y + shortcut.try_realize()?).relu())
    }
}

/// torchvision's `resnet18()`: 11,689,512 parameters.
pub struct ResNet18<D: Device = Cpu> {
    pub conv1: NoBias<Conv2d<3, 64, 7, 2, 3, 1, 1, f32, D>>,
    pub bn1: BatchNorm2d<64, f32, D>,
    pub layer1: (BasicBlock<64, D>, BasicBlock<64, D>),
    pub layer2: (DownBlock<64, 128, D>, BasicBlock<128, D>),
    pub layer3: (DownBlock<128, 256, D>, BasicBlock<256, D>),
    pub layer4: (DownBlock<256, 512, D>, BasicBlock<512, D>),
    pub fc: Linear<512, 1000, f32, D>,
}
tensile::module_fields!(impl[D: Device] ResNet18<D> { conv1, bn1, layer1, layer2, layer3, layer4, fc });

/// ImageNet-sized input.
pub type Pixels<T, D = Cpu> = Image<3, Const<224>, Const<224>, T, D>;

/// Any image size of at least 32 x 32 (ImageNet's is 224 x 224): every later size is computed.
impl<H: Dim, W: Dim, D: Device, T: Tape<D>> Module<Image<3, H, W, T, D>> for ResNet18<D> {
    type Output = Tensor<(usize, Const<1000>), f32, D, T>;
    fn try_forward(&self, x: Image<3, H, W, T, D>) -> Result<Self::Output> {
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
