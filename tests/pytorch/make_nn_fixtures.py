#!/usr/bin/env python3
"""Writes tests/pytorch/nn_fixtures.json: for each module, PyTorch's weights (state_dict names),
an input, the output, every parameter's gradient and, after a training step, the buffers.

    python3 tests/pytorch/make_nn_fixtures.py      # needs `pip install torch`

Each case is reduced to a scalar with fixed weights, loss = sum(w * y), as make_fixtures.py does.
Everything is float64; values are rounded to bfloat16 first so that they are exact in any dtype.
"""
import json
import pathlib

import torch
import torch.nn as nn

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def rounded(t):
    return t.to(torch.bfloat16).to(torch.float64)


def case(name, module, x, train, index_input=False):
    with torch.no_grad():
        for key, p in module.state_dict().items():
            if key.endswith("running_var"):
                p.copy_(rounded(torch.rand_like(p) + 0.5))
            elif p.dtype == torch.float64:
                p.copy_(rounded(torch.randn_like(p) * 0.5))
    state = {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in module.state_dict().items()
             if v.dtype == torch.float64}
    module.train(train)
    if not index_input:
        x = rounded(x).requires_grad_(True)
    y = module(x)
    w = rounded(torch.rand_like(y) * 2 - 1)
    (y * w).sum().backward()
    after = {k: v.flatten().tolist() for k, v in module.state_dict().items() if v.dtype == torch.float64}
    return {
        "name": name,
        "train": train,
        "state": state,
        "input": {"shape": list(x.shape), "data": x.detach().flatten().tolist()},
        "weights": w.flatten().tolist(),
        "output": y.detach().flatten().tolist(),
        "input_grad": [] if index_input else x.grad.flatten().tolist(),
        "grads": {k: p.grad.flatten().tolist() for k, p in module.named_parameters()},
        "state_after": after,
    }


CASES = [
    case("linear", nn.Linear(5, 3), torch.randn(4, 5), True),
    case("mlp", nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), torch.randn(3, 4), True),
    case("conv2d", nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.randn(2, 4, 7, 6), True),
    case("conv1d", nn.Conv1d(3, 4, 3, padding=1), torch.randn(2, 3, 8), True),
    case("layer_norm", nn.LayerNorm(6), torch.randn(2, 3, 6), True),
    case("rms_norm", nn.RMSNorm(6, eps=1e-6), torch.randn(4, 6), True),
    case("group_norm", nn.GroupNorm(2, 4), torch.randn(2, 4, 3, 3), True),
    case("batch_norm2d_train", nn.BatchNorm2d(3), torch.randn(4, 3, 2, 2), True),
    case("batch_norm2d_eval", nn.BatchNorm2d(3), torch.randn(4, 3, 2, 2), False),
    case("batch_norm1d_train", nn.BatchNorm1d(5), torch.randn(6, 5), True),
    case("embedding", nn.Embedding(7, 4), torch.tensor([[1, 6, 1], [0, 3, 5]]), True, index_input=True),
    case("cnn", nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3)),
         torch.randn(2, 1, 8, 8), True),
]

path = pathlib.Path(__file__).with_name("nn_fixtures.json")
lines = ",\n".join(json.dumps(c) for c in CASES)
path.write_text(f'{{"torch": "{torch.__version__}", "cases": [\n{lines}\n]}}\n')
print(f"wrote {len(CASES)} cases to {path}")
