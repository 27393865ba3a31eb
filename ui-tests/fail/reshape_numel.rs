use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank2<16, 196>, f32, Cpu> = dev.zeros();
    let _: Tensor<Rank2<64, 50>, f32, Cpu> = a.reshape();
}
