use tensile::prelude::*;

fn main() {
    let x: Tensor<Rank2<2, 5>, f32, Cpu> = Cpu::seeded(0).zeros();
    // an axis of 5 cannot be split after 6 elements
    let _ = x.split_at(Axis::<1>, Const::<6>);
}
