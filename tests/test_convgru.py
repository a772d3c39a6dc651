"""hrops.nn.SepConvGRU against CoCosNet v2's SepConvGRU math (SEEDS.md 4.4)
from the same state_dict, and its saved-for-backward memory."""
import pytest
import torch
from torch import nn

import hrops.nn as hnn


class OriginalSepConvGRU(nn.Module):
    """RAFT/CoCosNet v2's SepConvGRU as written there: separate z, r, q convs."""

    def __init__(self, hidden_dim=32, input_dim=64):
        super().__init__()
        cin = hidden_dim + input_dim
        for suffix, kernel, pad in (("1", (1, 5), (0, 2)), ("2", (5, 1), (2, 0))):
            for gate in "zrq":
                setattr(self, f"conv{gate}{suffix}", nn.Conv2d(cin, hidden_dim, kernel, padding=pad))

    def forward(self, h, x):
        for s in "12":
            hx = torch.cat([h, x], dim=1)
            z = torch.sigmoid(getattr(self, f"convz{s}")(hx))
            r = torch.sigmoid(getattr(self, f"convr{s}")(hx))
            q = torch.tanh(getattr(self, f"convq{s}")(torch.cat([r * h, x], dim=1)))
            h = (1 - z) * h + z * q
        return h


def _pair(dtype=torch.float64, hidden=8, inp=12):
    torch.manual_seed(0)
    original = OriginalSepConvGRU(hidden, inp).to(dtype)
    ours = hnn.SepConvGRU(hidden, inp).to(dtype)
    ours.load_state_dict(original.state_dict())  # strict: CoCosNet v2's names
    return original, ours


@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_matches_original_forward_and_backward(impl):
    original, ours = _pair()
    ours.impl = impl
    h = torch.randn(2, 8, 9, 11, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 12, 9, 11, dtype=torch.float64, requires_grad=True)
    a, b = original(h, x), ours(h, x)
    torch.testing.assert_close(b, a)
    g = torch.randn_like(a)
    leaves = [h, x, *original.parameters()]
    ga = torch.autograd.grad(a, leaves, g)
    gb = torch.autograd.grad(b, [h, x, *ours.parameters()], g)
    for u, v in zip(gb, ga):
        torch.testing.assert_close(u, v)


def test_saves_less_than_the_eager_update():
    """The gate convolutions' inputs dominate what both save; the gating
    itself keeps 3 pre-activations instead of eager's z, r, q and 1 - z."""
    original, ours = _pair(torch.float32, hidden=32, inp=64)  # CoCosNet v2's sizes
    h = torch.randn(1, 32, 64, 64, requires_grad=True)
    x = torch.randn(1, 64, 64, 64, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in list(original.parameters()) + list(ours.parameters())}
    inputs = {h.untyped_storage().data_ptr(), x.untyped_storage().data_ptr()}

    def activations(fn):
        total, seen = 0, set()

        def pack(t):
            nonlocal total
            k = t.untyped_storage().data_ptr()
            if k not in seen and k not in params and k not in inputs:
                seen.add(k)
                total += t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return total
    eager, fused = activations(lambda: original(h, x)), activations(lambda: ours(h, x))
    assert fused < eager, (fused, eager)
