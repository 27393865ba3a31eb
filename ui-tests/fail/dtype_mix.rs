use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank1<3>, f32, Cpu> = dev.ones();
    let b: Tensor<Rank1<3>, f64, Cpu> = dev.ones();
    let _ = a + b;
}
