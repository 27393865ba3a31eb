//! An Adam step over 10 M f32 parameters, beside `torch.optim.Adam(foreach=True)` on the same
//! machine (2 threads), with the memory traffic per second: the step is memory-bound (it reads
//! the parameter, its gradient and two moments, and writes three of them: 28 bytes a parameter).
//!
//! `cargo bench --bench optim` (`TENSILE_BENCH_QUICK=1` for fewer repetitions).

mod common;

use common::Row;
use tensile::nn::{self, Linear};
use tensile::optim::{Adam, Optimizer};
use tensile::prelude::*;

/// 10 M weights (the bias has no gradient and is skipped).
type Model = Linear<1000, 10_000>;
const PARAMS: f64 = 10_000_000.0;
const BYTES_PER_PARAM: f64 = 28.0;

fn main() {
    let (reps, _) = common::reps_and_rounds();
    let dev = Cpu::seeded(0);
    let mut model = Model::build(&dev);
    let scale: Tensor<Rank2<10_000, 1000>, f32, Cpu> = dev.randn();
    let grads = (model.weight.trace(nn::alloc_grads(&model)) * scale).sum::<Rank0, _>().backward();
    let mut opt = Optimizer::new(Adam::new(1e-3));
    let mut step = || opt.step(&mut model, &grads).unwrap();
    let t = common::median(&mut step, 5).as_secs_f64();
    common::compare(vec![Row::new("Adam step, 10M f32", reps, step)], TORCH);
    println!("tensile: {:.1} GB/s ({BYTES_PER_PARAM} bytes per parameter)", PARAMS * BYTES_PER_PARAM / t / 1e9);
}

const TORCH: &str = r#"
p = torch.nn.Parameter(torch.randn(10_000, 1000))
p.grad = torch.randn(10_000, 1000)
opt = torch.optim.Adam([p], lr=1e-3, foreach=True)
work["Adam step, 10M f32"] = opt.step
"#;
