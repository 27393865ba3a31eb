use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank4<1, 1, 2, 2>, f32, Cpu> = dev.zeros();
    // a 3x3 window does not fit a 2x2 input
    let _ = x.max_pool2d(PoolOpts::<3, 1>);
}
