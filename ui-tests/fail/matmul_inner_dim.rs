use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank2<8, 784>, f32, Cpu> = dev.zeros();
    let w: Tensor<Rank2<512, 10>, f32, Cpu> = dev.zeros();
    let _ = x.matmul(w);
}
