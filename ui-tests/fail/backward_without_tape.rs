use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank1<3>, f32, Cpu> = dev.ones();
    let loss = x.square().sum::<Rank0, _>();
    let _ = loss.backward();
}
