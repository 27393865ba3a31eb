use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    let b: Tensor<Rank2<5, 3>, f32, Cpu> = dev.zeros();
    // 2 + 5 is 7, not 6
    let _: Tensor<Rank2<6, 3>, f32, Cpu> = a.concat_along(b, Axis::<0>).realize();
}
