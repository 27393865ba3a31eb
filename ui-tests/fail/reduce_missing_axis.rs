use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank2<2, 3>, f32, Cpu> = dev.ones();
    let _ = x.sum::<_, Axis<2>>();
}
