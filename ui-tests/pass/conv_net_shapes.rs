// A LeNet-style stack on static dims: conv and pool output dims are computed at compile time, so
// the flattened size meets `Linear`'s weight with no annotation but the final `realize`.
use tensile::prelude::*;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, Cpu> = dev.zeros_like(&(2, Const, Const, Const));
    let w1: Tensor<Rank4<8, 1, 5, 5>, f32, Cpu> = dev.zeros();
    let w2: Tensor<Rank4<16, 8, 5, 5>, f32, Cpu> = dev.zeros();
    let fc: Tensor<Rank2<256, 10>, f32, Cpu> = dev.zeros();
    let h = x.conv2d(w1, ConvOpts::<1>).relu().max_pool2d(PoolOpts::<2, 2>);
    let h = h.conv2d(w2, ConvOpts::<1, 0, 1, 1>).relu().max_pool2d(PoolOpts::<2, 2>);
    let h: Tensor<(usize, Const<256>), f32, Cpu> = h.flatten().realize();
    let y = h.matmul(fc);
    assert_eq!(y.dims().as_slice(), &[2, 10]);
}
