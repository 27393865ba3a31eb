use tensile::nn::{Linear, ReLU};
use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    // the second layer expects 256 features, the first gives 128
    let model = <(Linear<784, 128>, ReLU, Linear<256, 10>)>::build(&dev);
    let x: Tensor<(usize, Const<784>), f32, Cpu> = dev.zeros_like(&(8, Const));
    let _ = model.forward(x);
}
