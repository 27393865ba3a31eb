#!/usr/bin/env python3
"""Writes tests/pytorch/optim_fixtures.json: torch.optim trajectories for tests/optim_parity.rs.

    python3 tests/pytorch/make_optim_fixtures.py      # needs `pip install torch`

One small model, `tanh(x W^T + b)` with W (4, 3), b (4,), in float64, trained on fixed data with
loss `sum((y - t)^2) / n`; each case is an optimizer (and a schedule, a parameter group or
gradient clipping) run for 50 steps, recording the parameters and the learning rate after every
step. Lion is not in torch.optim: its case follows the paper's update, written out below.
"""
import json
import math
import pathlib

import torch
import torch.nn as nn
from torch.optim import lr_scheduler as sched

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)
STEPS = 50
X = torch.randn(8, 3)
T = torch.randn(8, 4) * 0.5
W0 = torch.randn(4, 3) * 0.5
B0 = torch.randn(4) * 0.5


def model():
    m = nn.Linear(3, 4)
    with torch.no_grad():
        m.weight.copy_(W0)
        m.bias.copy_(B0)
    return m


def loss_of(m):
    return ((torch.tanh(m(X)) - T) ** 2).sum() / X.shape[0]


class Lion(torch.optim.Optimizer):
    """Chen et al. 2023, Algorithm 2 (decoupled weight decay)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                m = state.setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m * b1 + p.grad * (1 - b1)), alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def run(name, make_opt, make_sched=None, clip=None, plateau=False):
    m = model()
    opt = make_opt(m)
    s = make_sched(opt) if make_sched else None
    params, lrs, losses = [], [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_of(m)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        opt.step()
        if s is not None:
            s.step(loss.item()) if plateau else s.step()
        params.append(torch.cat([m.weight.detach().flatten(), m.bias.detach().flatten()]).tolist())
        lrs.append(opt.param_groups[0]["lr"])
        losses.append(loss.item())
    return {"name": name, "params": params, "lrs": lrs, "losses": losses}


def p(m):
    return m.parameters()


CASES = [
    run("sgd", lambda m: torch.optim.SGD(p(m), lr=0.1)),
    run("sgd_momentum_dampening_decay", lambda m: torch.optim.SGD(p(m), lr=0.05, momentum=0.9, dampening=0.1,
                                                                   weight_decay=0.01)),
    run("sgd_nesterov", lambda m: torch.optim.SGD(p(m), lr=0.05, momentum=0.8, nesterov=True)),
    run("adam", lambda m: torch.optim.Adam(p(m), lr=0.01)),
    run("adam_amsgrad_decay", lambda m: torch.optim.Adam(p(m), lr=0.02, betas=(0.8, 0.99), weight_decay=0.05,
                                                         amsgrad=True)),
    run("adamw", lambda m: torch.optim.AdamW(p(m), lr=0.01, weight_decay=0.1)),
    run("rmsprop", lambda m: torch.optim.RMSprop(p(m), lr=0.01)),
    run("rmsprop_centered_momentum", lambda m: torch.optim.RMSprop(p(m), lr=0.005, alpha=0.9, momentum=0.5,
                                                                   centered=True, weight_decay=0.01)),
    run("adagrad", lambda m: torch.optim.Adagrad(p(m), lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                                 initial_accumulator_value=0.1)),
    run("adadelta", lambda m: torch.optim.Adadelta(p(m), lr=1.0, rho=0.9, weight_decay=0.01)),
    run("lion", lambda m: Lion(p(m), lr=0.003, betas=(0.9, 0.99), weight_decay=0.1)),
    # no decay on the bias: a second parameter group
    run("adamw_groups", lambda m: torch.optim.AdamW([{"params": [m.weight]}, {"params": [m.bias], "weight_decay": 0.0}],
                                                    lr=0.01, weight_decay=0.1)),
    run("sgd_clip_norm", lambda m: torch.optim.SGD(p(m), lr=0.1, momentum=0.9), clip=0.05),
]


def sgd(m):
    return torch.optim.SGD(p(m), lr=0.1, momentum=0.9)


CASES += [
    run("step_lr", sgd, lambda o: sched.StepLR(o, step_size=7, gamma=0.5)),
    run("multistep_lr", sgd, lambda o: sched.MultiStepLR(o, milestones=[10, 25, 40], gamma=0.3)),
    run("exponential_lr", sgd, lambda o: sched.ExponentialLR(o, gamma=0.95)),
    run("cosine_lr", sgd, lambda o: sched.CosineAnnealingLR(o, T_max=20, eta_min=0.001)),
    run("cosine_warm_restarts", sgd, lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01)),
    run("linear_warmup", sgd, lambda o: sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10)),
    run("one_cycle", sgd, lambda o: sched.OneCycleLR(o, max_lr=0.3, total_steps=STEPS, cycle_momentum=False)),
    run("one_cycle_three_phase_linear", sgd,
        lambda o: sched.OneCycleLR(o, max_lr=0.3, total_steps=STEPS, cycle_momentum=False, three_phase=True,
                                   anneal_strategy="linear")),
    run("one_cycle_momentum", sgd, lambda o: sched.OneCycleLR(o, max_lr=0.3, total_steps=STEPS)),
    run("one_cycle_adam", lambda m: torch.optim.Adam(p(m), lr=0.01),
        lambda o: sched.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, three_phase=True)),
    run("warmup_then_cosine", sgd,
        lambda o: sched.SequentialLR(o, [sched.LinearLR(o, start_factor=0.1, total_iters=5),
                                         sched.CosineAnnealingLR(o, T_max=45)], milestones=[5])),
    run("reduce_on_plateau", lambda m: torch.optim.SGD(p(m), lr=0.5, momentum=0.9),
        lambda o: sched.ReduceLROnPlateau(o, factor=0.5, patience=2, threshold=0.01), plateau=True),
]

out = {
    "torch": torch.__version__,
    "steps": STEPS,
    "x": X.flatten().tolist(),
    "target": T.flatten().tolist(),
    "weight": W0.flatten().tolist(),
    "bias": B0.flatten().tolist(),
    "cases": CASES,
}
path = pathlib.Path(__file__).with_name("optim_fixtures.json")
path.write_text(json.dumps(out) + "\n")
print(f"wrote {len(CASES)} cases to {path}")
