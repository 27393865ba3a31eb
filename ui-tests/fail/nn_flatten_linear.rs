use tensile::nn::{Conv2d, Flatten, Linear, MaxPool2d, ReLU};
use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    // 32 channels of 13x13 flatten to 5408 features, not 5000
    let model = <(Conv2d<1, 32, 3>, ReLU, MaxPool2d<2>, Flatten, Linear<5000, 10>)>::build(&dev);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu> = dev.zeros_like(&(8, Const, Const, Const));
    let _ = model.forward(x);
}
