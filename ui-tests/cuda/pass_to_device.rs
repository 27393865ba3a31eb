use tensile::prelude::*;

// Moving one operand first is what a device mismatch asks for.
fn main() {
    let cpu = Cpu::seeded(0);
    if let Ok(gpu) = Cuda::try_new(0) {
        let a: Tensor<Rank2<2, 3>, f32, Cpu> = cpu.ones();
        let b: Tensor<Rank2<3, 4>, f32, Cuda> = gpu.ones();
        let _ = a.to_device(&gpu).matmul(b);
    }
}
