#!/usr/bin/env python3
"""The README's digits CNN trained by PyTorch, for timing beside `cargo run --release --example
digits_cnn` (same model, optimizer, learning rate, batch size and epochs; 2 threads).

    python3 tests/pytorch/digits_cnn.py         # needs `pip install torch`

Prints each epoch's train loss and test accuracy, and the training time until the test accuracy
first reaches 97 %.
"""
import gzip
import pathlib
import time

import torch
import torch.nn as nn

torch.set_num_threads(2)
torch.manual_seed(0)
DATA = pathlib.Path(__file__).resolve().parents[2] / "examples" / "data" / "digits"


def idx(name):
    raw = gzip.decompress((DATA / name).read_bytes())
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return torch.frombuffer(bytearray(raw[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


def split(prefix):
    images = idx(f"{prefix}-images-idx3-ubyte.gz").float().div(16).unsqueeze(1)
    return images, idx(f"{prefix}-labels-idx1-ubyte.gz").long()


(xs, ys), (xt, yt) = split("train"), split("t10k")
model = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, ys), batch_size=32, shuffle=True)
start, reached = time.perf_counter(), None
for epoch in range(12):
    model.train()
    total = 0.0
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    model.eval()
    with torch.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    secs = time.perf_counter() - start
    if accuracy >= 0.97 and reached is None:
        reached = secs
    print(f"epoch {epoch + 1:2}: train loss {total / len(loader):.4f}, test accuracy {accuracy * 100:.2f} % ({secs:.1f} s)")
print(f"PyTorch digits CNN: 97 % test accuracy reached after {reached:.1f} s of training" if reached else "97 % not reached")
