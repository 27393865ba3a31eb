// Every post-monomorphisation check on its good path: reshape, realize of a concat, and a
// run-time batch mixed with static dims.
use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let a: Tensor<Rank2<2, 3>, f32, Cpu> = dev.zeros();
    let b: Tensor<Rank2<5, 3>, f32, Cpu> = dev.ones();
    let c: Tensor<Rank2<7, 3>, f32, Cpu> = a.concat_along(b, Axis::<0>).realize();
    let r: Tensor<Rank2<3, 7>, f32, Cpu> = c.reshape();
    let x: Tensor<(usize, Const<7>), f32, Cpu> = dev.zeros_like(&(4, Const));
    let y = x.matmul(r.t());
    let loss = y.leaky_trace().sum::<Rank0, _>();
    let _ = loss.backward();
}
