use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank4<1, 3, 8, 8>, f32, Cpu> = dev.zeros();
    let w: Tensor<Rank4<16, 1, 3, 3>, f32, Cpu> = dev.zeros();
    // the weight expects 1 input channel, the input has 3
    let _ = x.conv2d(w, ConvOpts::<1>);
}
