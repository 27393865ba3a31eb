use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank4<1, 1, 4, 4>, f32, Cpu> = dev.zeros();
    let w: Tensor<Rank4<8, 1, 5, 5>, f32, Cpu> = dev.zeros();
    // a 5x5 kernel does not fit a 4x4 input padded by 0
    let _ = x.conv2d(w, ConvOpts::<1>);
}
