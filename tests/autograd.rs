//! The tape's behaviour: accumulation, reuse of one tensor, several outputs, detaching, dtype
//! changes, and that gradients keep only what was asked for.

use tensile::prelude::*;

fn dev() -> Cpu {
    Cpu::seeded(0)
}

#[test]
fn gradients_accumulate_across_backward_passes() {
    let w = dev().tensor([1.0f64, -2.0]);
    let mut g = w.alloc_grads();
    for _ in 0..3 {
        g = (w.trace(g) * 2.0).sum::<Rank0, _>().backward();
    }
    assert_eq!(g.get(&w).to_vec(), vec![6.0, 6.0]);
    g.zero_grad();
    assert!(!g.contains(&w));
    g = (w.trace(g) * 2.0).sum::<Rank0, _>().backward();
    assert_eq!(g.get(&w).to_vec(), vec![2.0, 2.0]);
}

#[test]
fn a_tensor_used_in_two_branches_sums_its_gradients() {
    let x = dev().tensor([0.5f64, 1.5]);
    let t = x.leaky_trace();
    // two outputs, each with a copy of the tape, joined at the end
    let a = t.clone().exp();
    let b = t.square();
    let loss = (a + b).sum::<Rank0, _>();
    let g = loss.backward();
    let want: Vec<f64> = [0.5f64, 1.5].iter().map(|v| v.exp() + 2.0 * v).collect();
    assert_eq!(g.get(&x).to_vec(), want);
}

#[test]
fn two_losses_backward_together() {
    let x = dev().tensor([1.0f64, 2.0]);
    let t = x.leaky_trace();
    let l1 = t.clone().sum::<Rank0, _>();
    let l2 = t.square().sum::<Rank0, _>();
    let g = (l1 + l2).backward();
    assert_eq!(g.get(&x).to_vec(), vec![3.0, 5.0]);
}

#[test]
fn detach_stops_the_gradient() {
    let x = dev().tensor([3.0f64]);
    let t = x.leaky_trace();
    let g = (t.clone() * t.detach()).sum::<Rank0, _>().backward();
    assert_eq!(g.get(&x).to_vec(), vec![3.0]);
}

#[test]
fn several_parameters_share_one_tape() {
    let w = dev().tensor([[1.0f64, 2.0], [3.0, 4.0]]);
    let b = dev().tensor([0.5f64, -0.5]);
    let x = dev().tensor([[1.0f64, 1.0]]);
    let mut g = w.alloc_grads();
    g.keep(&b);
    let tape = OwnedTape::new(g);
    let y = x.clone().matmul(w.trace_on(&tape)) + b.trace_on(&tape).broadcast::<_, Axis<0>>();
    let g = y.sum::<Rank0, _>().backward();
    assert_eq!(g.get(&b).to_vec(), vec![1.0, 1.0]);
    assert_eq!(g.get(&w).to_vec(), vec![1.0, 1.0, 1.0, 1.0]);
    // x was not asked for
    assert!(!g.contains(&x));
}

#[test]
fn gradients_flow_through_dtype_changes() {
    let x = dev().tensor([1.5f32, -0.5]);
    let g = x.leaky_trace().to_dtype::<f64>().square().sum::<Rank0, _>().backward();
    assert_eq!(g.get(&x).to_vec(), vec![3.0, -1.0]);
    let h = x.leaky_trace().to_dtype::<half::bf16>().exp().sum::<Rank0, _>().backward();
    let want = [1.5f32.exp(), (-0.5f32).exp()];
    for (a, b) in h.get(&x).to_vec().iter().zip(want) {
        assert!((a - b).abs() < 0.05, "{a} vs {b}");
    }
}

#[test]
fn leaky_trace_keeps_intermediate_gradients() {
    let x = dev().tensor([2.0f64]);
    let t = x.leaky_trace();
    let y = t.square();
    let y_handle = y.clone();
    let g = (y * 3.0).sum::<Rank0, _>().backward();
    assert_eq!(g.get(&y_handle).to_vec(), vec![3.0]);
    assert_eq!(g.get(&x).to_vec(), vec![12.0]);
}

#[test]
fn dropout_scales_kept_elements_and_routes_their_gradient() {
    // PyTorch's generator differs from ours, so the check is against dropout's definition:
    // y = x * mask / (1 - p), dy/dx = mask / (1 - p).
    let dev = dev();
    let x: Tensor<Rank1<2000>, f64, Cpu> = dev.uniform_like(&Default::default(), 0.5, 1.5);
    let t = x.leaky_trace();
    let y = t.dropout(0.2);
    let yv = y.to_vec();
    let g = y.sum::<Rank0, _>().backward().get(&x).to_vec();
    let mut kept = 0;
    for ((xi, yi), gi) in x.to_vec().iter().zip(&yv).zip(&g) {
        if *yi == 0.0 {
            assert_eq!(*gi, 0.0);
        } else {
            kept += 1;
            assert!((yi / xi - 1.25).abs() < 1e-12 && (gi - 1.25).abs() < 1e-12);
        }
    }
    // 80 % kept, within five standard deviations
    assert!((kept as f64 - 1600.0).abs() < 5.0 * (2000.0f64 * 0.8 * 0.2).sqrt(), "kept {kept}");
}

#[test]
fn the_tape_records_each_op_with_its_inputs() {
    let x = dev().tensor([[1.0f64, 2.0]]);
    let w = dev().tensor([[1.0f64], [2.0]]);
    let y = x.leaky_trace().matmul(w.clone()).relu().t();
    let ops = y.tape().recorded_ops();
    assert_eq!(ops.iter().map(|r| r.name).collect::<Vec<_>>(), ["matmul", "relu", "permute"]);
    assert_eq!(ops[0].inputs, vec![x.id(), w.id()]);
    assert_eq!(ops[1].inputs, vec![ops[0].output]);
    assert_eq!(ops[2].output, y.id());
    assert_eq!(ops[0].output_dims.as_slice(), &[1, 1]);
}

#[test]
fn stacking_one_tensor_twice_sums_both_gradients() {
    let x = dev().tensor([1.0f64, 2.0]);
    let t = x.leaky_trace();
    let s = Tensor::stack([t.clone(), t.clone(), t * 3.0]);
    let g = s.sum::<Rank0, _>().backward();
    assert_eq!(g.get(&x).to_vec(), vec![5.0, 5.0]);
}
