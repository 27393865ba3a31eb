use tensile::nn::Conv2d;
use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let conv = Conv2d::<3, 16, 3>::build(&dev);
    // a grey-scale image has 1 channel, the layer expects 3
    let x: Tensor<Rank4<8, 1, 28, 28>, f32, Cpu> = dev.zeros();
    let _ = conv.forward(x);
}
