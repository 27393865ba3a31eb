//! Optimiser and schedule trajectories against torch.optim: 50 steps of each case in
//! `tests/pytorch/optim_fixtures.json` (written by `make_optim_fixtures.py`), the parameters and
//! the learning rate compared after every step.

use serde_json::Value;
use tensile::nn::{self, Linear};
use tensile::optim::{
    Adadelta, Adagrad, Adam, AdamW, Algorithm, CosineAnnealingLr, CosineAnnealingWarmRestarts, ExponentialLr, LinearLr,
    Lion, MultiStepLr, OneCycleLr, Optimizer, ReduceLrOnPlateau, Rmsprop, Schedule, Scheduler, SequentialLr, Sgd,
    StepLr, clip_grad_norm,
};
use tensile::prelude::*;

type Model = Linear<3, 4, f64>;
type Batch = Tensor<(usize, Const<3>), f64, Cpu>;
type Targets = Tensor<(usize, Const<4>), f64, Cpu>;

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

struct Fixture {
    x: Batch,
    target: Targets,
    model: Model,
    cases: Vec<Value>,
}

fn fixture() -> Fixture {
    let f: Value = serde_json::from_str(include_str!("pytorch/optim_fixtures.json")).expect("optim_fixtures.json");
    let dev = Cpu::seeded(0);
    let mut model = Model::build(&dev);
    model.weight = dev.from_vec(numbers(&f["weight"]), Default::default());
    model.bias = Some(dev.from_vec(numbers(&f["bias"]), Default::default()));
    Fixture {
        x: dev.from_vec(numbers(&f["x"]), (8, Const)),
        target: dev.from_vec(numbers(&f["target"]), (8, Const)),
        model,
        cases: f["cases"].as_array().expect("cases").clone(),
    }
}

/// How the learning rate moves between steps.
enum Driver<S: Schedule> {
    Fixed,
    Scheduled(S),
    Plateau(ReduceLrOnPlateau),
}

fn parameters(m: &Model) -> Vec<f64> {
    let mut v = m.weight.to_vec();
    v.extend(m.bias.as_ref().expect("bias").to_vec());
    v
}

/// Runs `opt` for the fixture's steps and compares every step with PyTorch's.
fn check<A: Algorithm, S: Schedule>(
    f: &Fixture,
    name: &str,
    mut opt: Optimizer<A>,
    driver: Driver<S>,
    clip: Option<f64>,
) {
    let case = f.cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no fixture case `{name}`"));
    let mut model = f.model.clone();
    let (mut scheduler, mut plateau) = (None, None);
    match driver {
        Driver::Fixed => {}
        Driver::Scheduled(s) => scheduler = Some(Scheduler::new(s, &mut opt)),
        Driver::Plateau(p) => plateau = Some(p),
    }
    let want_params = case["params"].as_array().expect("params");
    let want_lrs = numbers(&case["lrs"]);
    for (step, want) in want_params.iter().enumerate() {
        let y = model.forward(f.x.trace(nn::alloc_grads(&model))).tanh();
        let loss = (y - f.target.clone()).square().sum::<Rank0, _>().mul_scalar(1.0 / 8.0);
        let value = loss.to_array();
        let mut grads = loss.backward();
        if let Some(max) = clip {
            clip_grad_norm(&model, &mut grads, max);
        }
        opt.step(&mut model, &grads).unwrap();
        if let Some(s) = scheduler.as_mut() {
            s.step(&mut opt);
        }
        if let Some(p) = plateau.as_mut() {
            p.step(value, &mut opt);
        }
        for (i, (g, w)) in parameters(&model).iter().zip(numbers(want)).enumerate() {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1e-3),
                "{name} step {}: parameter {i} is {g}, PyTorch {w}",
                step + 1
            );
        }
        let lr = want_lrs[step];
        assert!(
            (opt.lr() - lr).abs() <= 1e-12 * lr.abs().max(1.0),
            "{name} step {}: lr {} vs {lr}",
            step + 1,
            opt.lr()
        );
    }
}

fn fixed<A: Algorithm>(f: &Fixture, name: &str, algorithm: A) {
    check::<A, StepLr>(f, name, Optimizer::new(algorithm), Driver::Fixed, None);
}

#[test]
fn algorithms_follow_torch_optim() {
    let f = fixture();
    fixed(&f, "sgd", Sgd::new(0.1));
    fixed(
        &f,
        "sgd_momentum_dampening_decay",
        Sgd { momentum: 0.9, dampening: 0.1, weight_decay: 0.01, ..Sgd::new(0.05) },
    );
    fixed(&f, "sgd_nesterov", Sgd { momentum: 0.8, nesterov: true, ..Sgd::new(0.05) });
    fixed(&f, "adam", Adam::new(0.01));
    fixed(&f, "adam_amsgrad_decay", Adam { betas: (0.8, 0.99), weight_decay: 0.05, amsgrad: true, ..Adam::new(0.02) });
    fixed(&f, "adamw", AdamW { weight_decay: 0.1, ..AdamW::new(0.01) });
    fixed(&f, "rmsprop", Rmsprop::new(0.01));
    fixed(
        &f,
        "rmsprop_centered_momentum",
        Rmsprop { alpha: 0.9, momentum: 0.5, centered: true, weight_decay: 0.01, ..Rmsprop::new(0.005) },
    );
    fixed(
        &f,
        "adagrad",
        Adagrad { lr_decay: 0.01, weight_decay: 0.01, initial_accumulator_value: 0.1, ..Adagrad::new(0.1) },
    );
    fixed(&f, "adadelta", Adadelta { weight_decay: 0.01, ..Adadelta::new(1.0) });
    fixed(&f, "lion", Lion { weight_decay: 0.1, ..Lion::new(0.003) });
}

#[test]
fn groups_and_clipping_follow_torch_optim() {
    let f = fixture();
    let grouped = Optimizer::new(AdamW { weight_decay: 0.1, ..AdamW::new(0.01) }).with_group(
        |name, _| name == "bias",
        1.0,
        Some(0.0),
    );
    check::<_, StepLr>(&f, "adamw_groups", grouped, Driver::Fixed, None);
    let momentum = Sgd { momentum: 0.9, ..Sgd::new(0.1) };
    check::<_, StepLr>(&f, "sgd_clip_norm", Optimizer::new(momentum), Driver::Fixed, Some(0.05));
}

#[test]
fn schedules_follow_torch_lr_scheduler() {
    let f = fixture();
    let sgd = || Optimizer::new(Sgd { momentum: 0.9, ..Sgd::new(0.1) });
    let run = |name: &str, s: Box<dyn Schedule>| check(&f, name, sgd(), Driver::Scheduled(s), None);
    run("step_lr", Box::new(StepLr { step_size: 7, gamma: 0.5 }));
    run("multistep_lr", Box::new(MultiStepLr { milestones: vec![10, 25, 40], gamma: 0.3 }));
    run("exponential_lr", Box::new(ExponentialLr { gamma: 0.95 }));
    run("cosine_lr", Box::new(CosineAnnealingLr { t_max: 20, eta_min: 0.001 }));
    run("cosine_warm_restarts", Box::new(CosineAnnealingWarmRestarts { t_0: 5, t_mult: 2, eta_min: 0.01 }));
    run("linear_warmup", Box::new(LinearLr { start_factor: 0.1, end_factor: 1.0, total_iters: 10 }));
    let no_momentum = OneCycleLr { cycle_momentum: false, ..OneCycleLr::new(0.3, 50) };
    run("one_cycle", Box::new(no_momentum));
    run("one_cycle_three_phase_linear", Box::new(OneCycleLr { three_phase: true, cosine: false, ..no_momentum }));
    run("one_cycle_momentum", Box::new(OneCycleLr { cycle_momentum: true, ..OneCycleLr::new(0.3, 50) }));
    let adam = Optimizer::new(Adam::new(0.01));
    let three_phase = OneCycleLr { three_phase: true, ..OneCycleLr::new(0.05, 50) };
    check(&f, "one_cycle_adam", adam, Driver::Scheduled(three_phase), None);
    let warmup_cosine = SequentialLr::new(
        vec![Box::new(LinearLr::warmup(0.1, 5)), Box::new(CosineAnnealingLr { t_max: 45, eta_min: 0.0 })],
        vec![5],
    );
    run("warmup_then_cosine", Box::new(warmup_cosine));
    let mut plateau = ReduceLrOnPlateau::default();
    plateau.factor = 0.5;
    plateau.patience = 2;
    plateau.threshold = 0.01;
    let opt = Optimizer::new(Sgd { momentum: 0.9, ..Sgd::new(0.5) });
    check::<_, StepLr>(&f, "reduce_on_plateau", opt, Driver::Plateau(plateau), None);
}

/// Every case of the fixture file is checked by one of the tests above.
#[test]
fn every_fixture_case_is_covered() {
    let source = include_str!("optim_parity.rs");
    for case in fixture().cases {
        let name = case["name"].as_str().expect("name");
        assert!(source.contains(&format!("\"{name}\"")), "fixture case `{name}` has no test");
    }
}
