use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank4<1, 6, 8, 8>, f32, Cpu> = dev.zeros();
    let w: Tensor<Rank4<8, 2, 3, 3>, f32, Cpu> = dev.zeros();
    // 4 groups do not divide 6 input channels
    let _ = x.conv2d(w, ConvOpts::<1, 1, 1, 4>);
}
