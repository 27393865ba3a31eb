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


def case(name, module, x, train, index_input=False, call=None):
    """`x` is the input, or a tuple of inputs passed to `call(module, *x)` (each gets a gradient)."""
    with torch.no_grad():
        for key, p in module.state_dict().items():
            if key.endswith("running_var"):
                p.copy_(rounded(torch.rand_like(p) + 0.5))
            elif p.dtype == torch.float64:
                p.copy_(rounded(torch.randn_like(p) * 0.5))
    state = {k: {"shape": list(v.shape), "data": v.flatten().tolist()} for k, v in module.state_dict().items()
             if v.dtype == torch.float64}
    module.train(train)
    xs = x if isinstance(x, tuple) else (x,)
    if not index_input:
        xs = tuple(rounded(t).requires_grad_(True) for t in xs)
    y = (call or (lambda m, *a: m(*a)))(module, *xs)
    x = xs[0]
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
        "inputs": [{"shape": list(t.shape), "data": t.detach().flatten().tolist()} for t in xs],
        "input_grads": [] if index_input else [t.grad.flatten().tolist() for t in xs],
        "grads": {k: p.grad.flatten().tolist() for k, p in module.named_parameters()},
        "state_after": after,
    }


class Branches(nn.Module):
    """tensile's ResidualWith: main(x) + shortcut(x)."""

    def __init__(self, main, shortcut):
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


def causal(n):
    return nn.Transformer.generate_square_subsequent_mask(n)


def mha(m, q, k=None, v=None, mask=None):
    k = q if k is None else k
    return m(q, k, q if v is None else v, attn_mask=mask, need_weights=False)[0]


def flat_outputs(out, state):
    """An RNN's `(output, h_n)` or `(output, (h_n, c_n))` as one flat tensor."""
    states = state if isinstance(state, tuple) else (state,)
    return torch.cat([out.flatten()] + [s.flatten() for s in states])


def prenorm_gelu():
    return nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", norm_first=True, batch_first=True)


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
    case("conv_transpose2d", nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         torch.randn(2, 4, 3, 4), True),
    case("conv_no_bias_bn", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)),
         torch.randn(2, 3, 5, 5), True),
    case("residual_with_downsample",
         Branches(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                nn.Conv2d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4)),
                  nn.Sequential(nn.Conv2d(3, 4, 1, 2, bias=False), nn.BatchNorm2d(4))),
         torch.randn(2, 3, 6, 5), True),
    case("activations_and_pools",
         nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.LeakyReLU(0.01), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                       nn.SiLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 5),
                       nn.Sigmoid()),
         torch.randn(2, 2, 6, 6), True),
    case("softmax_heads", nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1), nn.Linear(3, 3), nn.LogSoftmax(dim=-1)),
         torch.randn(5, 4), True),
    case("bilinear", nn.Bilinear(3, 4, 2), (torch.randn(5, 3), torch.randn(5, 4)), True),
    case("mha_self_causal", nn.MultiheadAttention(8, 2, batch_first=True), torch.randn(2, 5, 8), True,
         call=lambda m, x: mha(m, x, mask=causal(5))),
    case("mha_cross", nn.MultiheadAttention(8, 2, batch_first=True),
         (torch.randn(2, 3, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 8)), True, call=mha),
    case("encoder_layer", nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
         torch.randn(2, 5, 8), True),
    case("encoder_layer_eval", nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
         torch.randn(2, 5, 8), False),
    case("encoder_layer_prenorm_gelu_causal", prenorm_gelu(), torch.randn(2, 5, 8), True,
         call=lambda m, x: m(x, src_mask=causal(5))),
    case("decoder_layer_causal", nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
         (torch.randn(2, 4, 8), torch.randn(2, 6, 8)), True, call=lambda m, t, mem: m(t, mem, tgt_mask=causal(4))),
    case("lstm2", nn.LSTM(3, 5, 2, batch_first=True), (torch.randn(2, 4, 3), torch.randn(2, 2, 5), torch.randn(2, 2, 5)),
         True, call=lambda m, x, h, c: flat_outputs(*m(x, (h, c)))),
    case("lstm_zero_state", nn.LSTM(4, 3, batch_first=True), torch.randn(3, 5, 4), True,
         call=lambda m, x: flat_outputs(*m(x))),
    case("gru2", nn.GRU(3, 5, 2, batch_first=True), (torch.randn(2, 4, 3), torch.randn(2, 2, 5)), True,
         call=lambda m, x, h: flat_outputs(*m(x, h))),
    case("transformer", nn.Transformer(8, 2, 2, 2, 16, dropout=0.0, batch_first=True),
         (torch.randn(2, 6, 8), torch.randn(2, 4, 8)), True, call=lambda m, s, t: m(s, t, tgt_mask=causal(4))),
    case("transformer_eval", nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True),
         (torch.randn(2, 6, 8), torch.randn(2, 4, 8)), False, call=lambda m, s, t: m(s, t, tgt_mask=causal(4))),
]

path = pathlib.Path(__file__).with_name("nn_fixtures.json")
lines = ",\n".join(json.dumps(c) for c in CASES)
path.write_text(f'{{"torch": "{torch.__version__}", "cases": [\n{lines}\n]}}\n')
print(f"wrote {len(CASES)} cases to {path}")
