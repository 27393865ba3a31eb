use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    let b: Tensor<Rank2<3, 2>, f32, Cpu> = dev.zeros();
    let _ = a + b;
}
