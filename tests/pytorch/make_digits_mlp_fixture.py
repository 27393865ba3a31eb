#!/usr/bin/env python3
"""Writes tests/pytorch/saved/digits_mlp_init.safetensors and digits_mlp_losses.json: a digits
MLP's initial weights and its first 100 SGD steps in PyTorch (batches of 32 in file order, no
shuffle, lr 0.1, float32), for tests/digits_parity.rs to repeat in tensile.

    python3 tests/pytorch/make_digits_mlp_fixture.py      # needs `pip install torch safetensors`
"""
import gzip
import json
import pathlib

import torch
import torch.nn as nn
from safetensors.torch import save_file

torch.manual_seed(0)
HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[1] / "examples" / "data" / "digits"


def idx(name):
    raw = gzip.decompress((DATA / name).read_bytes())
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return torch.frombuffer(bytearray(raw[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


xs = idx("train-images-idx3-ubyte.gz").float().div(16).unsqueeze(1)
ys = idx("train-labels-idx1-ubyte.gz").long()
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
save_file(model.state_dict(), str(HERE / "saved" / "digits_mlp_init.safetensors"), metadata={"format": "pt"})
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys), batch_size=32, shuffle=False)
losses = []
while len(losses) < 100:
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) == 100:
            break
(HERE / "saved" / "digits_mlp_losses.json").write_text(json.dumps({"torch": torch.__version__, "losses": losses}) + "\n")
print(f"first and last loss: {losses[0]:.4f} {losses[-1]:.4f}")
