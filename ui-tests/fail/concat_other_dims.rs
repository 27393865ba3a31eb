use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    let b: Tensor<Rank2<5, 4>, f32, Cpu> = dev.zeros();
    // along axis 0 the other dims (3 and 4) must agree
    let _ = a.concat_along(b, Axis::<0>);
}
