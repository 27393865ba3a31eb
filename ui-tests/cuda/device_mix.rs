use tensile::prelude::*;

fn main() {
    let cpu = Cpu::seeded(0);
    let gpu = Cuda::try_new(0).unwrap();
    let a: Tensor<Rank2<2, 3>, f32, Cpu> = cpu.ones();
    let b: Tensor<Rank2<3, 4>, f32, Cuda> = gpu.ones();
    let _ = a.matmul(b);
}
