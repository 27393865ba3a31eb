//! Fits a small two-layer network to `sin(x)` with autograd and plain gradient descent, printing
//! the loss as it falls. Run with `cargo run --release --example fit_sine`.

use tensile::prelude::*;

const N: usize = 256;
const HIDDEN: usize = 32;

fn main() {
    let dev = Cpu::seeded(0);
    let x: Tensor<Rank2<N, 1>, f32, Cpu> = dev.uniform_like(&Default::default(), -3.0, 3.0);
    let y = x.clone().sin();

    // Kaiming-style scales for a tanh network.
    let mut w1: Tensor<Rank2<1, HIDDEN>, f32, Cpu> = dev.randn();
    let mut b1: Tensor<Rank1<HIDDEN>, f32, Cpu> = dev.uniform_like(&Default::default(), -1.0, 1.0);
    let mut w2: Tensor<Rank2<HIDDEN, 1>, f32, Cpu> = dev.randn::<_, f32>().mul_scalar(1.0 / (HIDDEN as f64).sqrt());
    let mut b2: Tensor<Rank1<1>, f32, Cpu> = dev.zeros();
    let lr = 0.1f32;

    let mut first = None;
    let mut last = 0.0;
    for step in 0..=2000 {
        // Gradients for the four parameters, recorded on one shared tape.
        let mut grads = w1.alloc_grads();
        grads.keep(&b1);
        grads.keep(&w2);
        grads.keep(&b2);
        let tape = OwnedTape::new(grads);

        let hidden = x.clone().matmul(w1.trace_on(&tape)) + b1.trace_on(&tape).broadcast::<_, Axis<0>>();
        let pred = hidden.tanh().matmul(w2.trace_on(&tape)) + b2.trace_on(&tape).broadcast::<_, Axis<0>>();
        let loss = (pred - y.clone()).square().mean::<Rank0, _>().ensure_finite().expect("the loss diverged");
        let value = loss.to_vec()[0];
        first.get_or_insert(value);
        last = value;
        if step % 250 == 0 {
            println!("step {step:>4}  loss {value:.6}");
        }
        let g = loss.backward();
        w1 = w1.clone() - g.get(&w1) * lr;
        b1 = b1.clone() - g.get(&b1) * lr;
        w2 = w2.clone() - g.get(&w2) * lr;
        b2 = b2.clone() - g.get(&b2) * lr;
    }
    let first = first.expect("at least one step");
    println!("loss fell from {first:.4} to {last:.6}");
    assert!(last < first / 10.0, "the loss did not fall");
}
