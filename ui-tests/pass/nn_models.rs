// Models whose computed dims meet the next layer's sizes: checked after monomorphisation, so this
// case makes trybuild build (not only check) the crate.
use tensile::nn::{Conv2d, Flatten, Linear, MaxPool2d, ReLU};
use tensile::prelude::*;

type Cnn = (Conv2d<1, 32, 3>, ReLU, MaxPool2d<2>, Conv2d<32, 64, 3>, ReLU, MaxPool2d<2>, Flatten, Linear<1600, 128>, ReLU, Linear<128, 10>);

fn main() {
    let dev = Cpu::seeded(0);
    let model = Cnn::build(&dev);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu> = dev.zeros_like(&(2, Const, Const, Const));
    let y: Tensor<(usize, Const<10>), f32, Cpu> = model.forward(x);
    assert_eq!(y.dims().as_slice(), &[2, 10]);
}
