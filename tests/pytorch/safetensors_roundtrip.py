#!/usr/bin/env python3
"""safetensors both ways between PyTorch and tensile (needs `pip install torch safetensors`).

    python3 tests/pytorch/safetensors_roundtrip.py make          # writes tests/pytorch/saved/*
    python3 tests/pytorch/safetensors_roundtrip.py check DIR     # loads tensile's files from DIR

`make` saves a few PyTorch models with `safetensors.torch.save_file` (after one training step, so
that batch norm's running statistics and `num_batches_tracked` are not their initial values),
with an input and the eval-mode output beside each as JSON: `tests/serialize.rs` loads them into
the same tensile types and compares. `check` is the other direction: for each `NAME.safetensors`
tensile wrote into DIR, it builds the same PyTorch model, loads the file with
`load_state_dict(strict=True)` and compares its output on the input in `NAME.json`.
"""
import json
import pathlib
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

HERE = pathlib.Path(__file__).with_name("saved")


def models():
    """Each case: (PyTorch model, input maker). Keys must match tensile's types in tests/serialize.rs."""
    return {
        "cnn": (nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(36, 3)),
                lambda: torch.randn(2, 1, 8, 8)),
        "text": (nn.Sequential(nn.Embedding(10, 6), nn.LayerNorm(6), nn.Linear(6, 4)),
                 lambda: torch.randint(0, 10, (2, 5))),
        "mlp64": (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double(),
                  lambda: torch.randn(5, 3, dtype=torch.float64)),
    }


def as_json(t):
    return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "data": t.flatten().tolist()}


def make():
    torch.manual_seed(0)
    HERE.mkdir(exist_ok=True)
    for name, (model, make_input) in models().items():
        x = make_input()
        model.train()
        model(x)  # one step of running statistics
        model.eval()
        with torch.no_grad():
            y = model(x)
        save_file(model.state_dict(), str(HERE / f"{name}.safetensors"), metadata={"format": "pt"})
        (HERE / f"{name}.json").write_text(json.dumps({"input": as_json(x), "output": as_json(y)}) + "\n")
        print(f"wrote {name}: {sorted(model.state_dict())}")


def check(folder):
    folder = pathlib.Path(folder)
    failures = 0
    for name, (model, _) in models().items():
        path = folder / f"{name}.safetensors"
        case = json.loads((folder / f"{name}.json").read_text())
        model.load_state_dict(load_file(str(path)), strict=True)
        model.eval()
        x = case["input"]
        x = torch.tensor(x["data"], dtype=getattr(torch, x["dtype"])).reshape(x["shape"])
        with torch.no_grad():
            y = model(x).flatten()
        want = torch.tensor(case["output"]["data"], dtype=y.dtype)
        tol = 1e-5 if y.dtype == torch.float32 else 1e-10
        ok = torch.allclose(y, want, rtol=tol, atol=tol)
        print(f"{name}: strict load ok, output {'matches' if ok else 'DIFFERS'} "
              f"(max diff {(y - want).abs().max().item():.3g})")
        failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["make"]:
        make()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
