//! Optimiser behaviour beyond the PyTorch trajectories: resuming from saved state in a fresh
//! process bit for bit, refusing state that does not fit, frozen parameters, master weights for
//! bf16, gradient accumulation.

use std::path::{Path, PathBuf};
use tensile::nn::{self, BatchNorm1d, Frozen, Linear, ReLU, SaveLoad, Tanh};
use tensile::optim::{Adam, CosineAnnealingLr, Optimizer, Scheduler, Sgd};
use tensile::prelude::*;

type Mlp = (Linear<4, 16>, BatchNorm1d<16>, Tanh, Linear<16, 2>);
type Batch = Tensor<(usize, Const<4>), f32, Cpu>;

fn data() -> (Batch, Tensor<(usize, Const<2>), f32, Cpu>) {
    let dev = Cpu::seeded(11);
    let x: Batch = dev.randn_like(&(32, Const));
    let y = x.clone().sin().narrow(Axis::<1>, 0, Const::<2>);
    (x, y)
}

const SCHEDULE: CosineAnnealingLr = CosineAnnealingLr { t_max: 40, eta_min: 1e-4 };

/// `steps` training steps (Adam with AMSGrad, a cosine schedule, batch norm in training mode).
fn train(model: &mut Mlp, opt: &mut Optimizer<Adam>, sched: &mut Scheduler<CosineAnnealingLr>, steps: usize) {
    let (x, y) = data();
    for _ in 0..steps {
        let out = model.forward_mut(x.trace(nn::alloc_grads(model)));
        let loss = (out - y.clone()).square().mean::<Rank0, _>();
        let grads = loss.backward();
        opt.step(model, &grads).unwrap();
        sched.step(opt);
    }
}

fn fresh() -> (Mlp, Optimizer<Adam>) {
    let model = Mlp::build(&Cpu::seeded(5));
    (model, Optimizer::new(Adam { amsgrad: true, ..Adam::new(0.01) }))
}

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tensile-resume-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_run_resumed_in_a_fresh_process_equals_the_uninterrupted_run_bit_for_bit() {
    let (mut straight, mut opt) = fresh();
    let mut sched = Scheduler::new(SCHEDULE, &mut opt);
    train(&mut straight, &mut opt, &mut sched, 40);

    let (mut model, mut opt) = fresh();
    let mut sched = Scheduler::new(SCHEDULE, &mut opt);
    train(&mut model, &mut opt, &mut sched, 20);
    let dir = dir();
    model.save(dir.join("model.safetensors")).unwrap();
    opt.save(&model, dir.join("adam.safetensors")).unwrap();
    drop((model, opt, sched));

    // the second half runs in another process: this test binary, asked for the child test
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["resume_child", "--exact", "--include-ignored", "--nocapture"])
        .env("TENSILE_RESUME_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success(), "the resumed half failed");
    let mut resumed = Mlp::build(&Cpu::seeded(99));
    resumed.load(dir.join("resumed.safetensors")).unwrap();
    assert_eq!(resumed.to_safetensors().unwrap(), straight.to_safetensors().unwrap(), "not bit for bit");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The second half of the run above, in its own process.
#[test]
#[ignore = "run by a_run_resumed_in_a_fresh_process_equals_the_uninterrupted_run_bit_for_bit"]
fn resume_child() {
    let dir = PathBuf::from(std::env::var("TENSILE_RESUME_DIR").expect("run by the resume test"));
    let (mut model, mut opt) = fresh();
    model.load(dir.join("model.safetensors")).unwrap();
    opt.load(&model, dir.join("adam.safetensors")).unwrap();
    let mut sched = Scheduler::resume(SCHEDULE, 0.01, 20, &mut opt);
    train(&mut model, &mut opt, &mut sched, 20);
    model.save(dir.join("resumed.safetensors")).unwrap();
}

#[test]
fn state_that_does_not_fit_is_refused_and_changes_nothing() {
    let (mut model, mut opt) = fresh();
    let mut sched = Scheduler::new(SCHEDULE, &mut opt);
    train(&mut model, &mut opt, &mut sched, 3);
    let bytes = opt.state_to_safetensors(&model).unwrap();
    let before = opt.state_to_safetensors(&model).unwrap();

    // another model: the first slot of another shape
    let other = <(Linear<4, 8>, BatchNorm1d<8>, Tanh, Linear<8, 2>)>::build(&Cpu::seeded(0));
    let mut fresh_opt: Optimizer<Adam> = Optimizer::new(Adam::new(0.01));
    let err = fresh_opt.load_state_safetensors(&other, &bytes).unwrap_err();
    assert_eq!(err, Error::WrongShape { key: "0.weight.exp_avg".into(), expected: vec![8, 4], found: vec![16, 4] });
    // a model without the last layer: its state is unexpected
    let shorter = <(Linear<4, 16>, BatchNorm1d<16>)>::build(&Cpu::seeded(0));
    assert!(matches!(opt.load_state_safetensors(&shorter, &bytes), Err(Error::UnexpectedKey { .. })));
    // another algorithm's state
    let mut sgd: Optimizer<Sgd> = Optimizer::new(Sgd::new(0.1));
    assert!(matches!(sgd.load_state_safetensors(&model, &bytes), Err(Error::Malformed { .. })));
    // truncated bytes
    assert!(opt.load_state_safetensors(&model, &bytes[..bytes.len() / 2]).is_err());
    assert_eq!(opt.state_to_safetensors(&model).unwrap(), before, "a refused load changed the state");
    assert_eq!(opt.steps_of("0.weight"), 3);
}

#[test]
fn frozen_parameters_and_parameters_without_gradients_stay() {
    let dev = Cpu::seeded(0);
    let mut model = <(Frozen<Linear<4, 8>>, ReLU, Linear<8, 2>)>::build(&dev);
    let frozen_before = model.0.0.weight.to_vec();
    let head_before = model.2.weight.to_vec();
    let mut opt: Optimizer<Sgd> = Optimizer::new(Sgd::new(0.1));
    let (x, _) = data();
    let grads = model.forward(x.trace(nn::alloc_grads(&model))).sum::<Rank0, _>().backward();
    opt.step(&mut model, &grads).unwrap();
    assert_eq!(model.0.0.weight.to_vec(), frozen_before);
    assert_ne!(model.2.weight.to_vec(), head_before);
    assert_eq!(opt.steps_of("0.weight"), 0);

    // gradients for nothing: nothing moves
    let head = model.2.weight.to_vec();
    opt.step(&mut model, &Gradients::leaky()).unwrap();
    assert_eq!(model.2.weight.to_vec(), head);
}

#[test]
fn master_weights_keep_small_bf16_updates() {
    use half::bf16;
    let dev = Cpu::seeded(0);
    let run = |master: bool| {
        let mut model = Linear::<4, 2, bf16>::build(&dev);
        model.weight = dev.full(bf16::from_f32(0.3)); // a bf16 ulp here is 2^-8
        let start = model.weight.to_vec();
        let mut opt = Optimizer::new(Sgd::new(1e-4)).with_master_weights(master);
        let x: Tensor<(usize, Const<4>), bf16, Cpu> = dev.ones_like(&(8, Const));
        for _ in 0..50 {
            let grads = model.forward(x.trace(nn::alloc_grads(&model))).sum::<Rank0, _>().backward();
            opt.step(&mut model, &grads).unwrap();
        }
        (start, model.weight.to_vec())
    };
    let (start, plain) = run(false);
    assert_eq!(plain, start, "each 8e-4 step is below half a bf16 ulp of these weights: lost");
    let (start, kept) = run(true);
    // 50 steps of 8e-4 add up in the f32 copy: 0.3 - 0.04, rounded to bf16
    assert!(kept.iter().all(|k| (k.to_f32() - 0.26).abs() < 2e-3), "{kept:?}");
    assert!(start.iter().all(|s| s.to_f32() > 0.29));
}

#[test]
fn gradients_accumulated_over_two_passes_step_like_one_big_batch() {
    let dev = Cpu::seeded(0);
    let base = Linear::<4, 2>::build(&dev);
    let (x, _) = data();
    let (a, b) = (x.clone().narrow(Axis::<0>, 0, 16usize), x.clone().narrow(Axis::<0>, 16, 16usize));

    let mut whole = base.clone();
    let grads = whole.forward(x.trace(nn::alloc_grads(&whole))).sum::<Rank0, _>().backward();
    Optimizer::new(Sgd::new(0.1)).step(&mut whole, &grads).unwrap();

    let mut accumulated = base.clone();
    let grads = accumulated.forward(a.trace(nn::alloc_grads(&accumulated))).sum::<Rank0, _>().backward();
    let grads = accumulated.forward(b.trace(grads)).sum::<Rank0, _>().backward();
    Optimizer::new(Sgd::new(0.1)).step(&mut accumulated, &grads).unwrap();
    for (p, q) in whole.weight.to_vec().iter().zip(accumulated.weight.to_vec()) {
        assert!((p - q).abs() < 1e-5);
    }
}

/// Every float dtype steps (f16/bf16 with f32 state), and f32 follows f64 closely.
#[test]
fn every_float_dtype_trains() {
    fn final_loss<E: Float>() -> f64 {
        let dev = Cpu::seeded(3);
        let mut model = <(Linear<4, 8, E>, Tanh, Linear<8, 1, E>)>::build(&dev);
        let x: Tensor<(usize, Const<4>), E, Cpu> = dev.randn_like(&(16, Const));
        let y = x.clone().sum::<(usize,), Axis<1>>().sin().try_reshape_like(&(16, Const::<1>)).unwrap();
        let mut opt = Optimizer::new(Adam::new(0.02));
        let mut loss = f64::NAN;
        for _ in 0..60 {
            let l = (model.forward(x.trace(nn::alloc_grads(&model))) - y.clone()).square().mean::<Rank0, _>();
            loss = l.to_array().as_f64();
            let grads = l.backward();
            opt.step(&mut model, &grads).unwrap();
        }
        loss
    }
    let (l64, l32, l16, lbf) =
        (final_loss::<f64>(), final_loss::<f32>(), final_loss::<half::f16>(), final_loss::<half::bf16>());
    assert!(l64 < 0.05, "f64 loss {l64}");
    assert!((l32 - l64).abs() < 1e-4, "f32 {l32} vs f64 {l64}");
    assert!(l16 < 0.1 && lbf < 0.1, "half types: {l16}, {lbf}");
}
