"""CoCosNet v2's SepConvGRU (RAFT's separable ConvGRU; microsoft/CoCosNet-v2,
models/networks/convgru.py, SepConvGRU) on
hrops.conv_gru_pass, with CoCosNet v2's parameter names (convz1, convr1,
convq1 with 1x5 kernels, then convz2, convr2, convq2 with 5x1 kernels).

Each pass: z = sigmoid(convz([h, x])), r = sigmoid(convr([h, x])),
q = tanh(convq([r * h, x])), h = (1 - z) * h + z * q. Here the z and r
convolutions run as one, and each pass is one autograd node that saves only
the gate pre-activations: no concatenated conv input and no sigmoid or tanh
output is kept for backward.
"""
import torch
from torch import nn

from ..ops._checks import check_tensor
from ..ops.conv_gru import conv_gru_pass
from ._checks import check_counts


class SepConvGRU(nn.Module):
    def __init__(self, hidden_dim=32, input_dim=64, *, impl=None):
        super().__init__()
        check_counts(hidden_dim=hidden_dim, input_dim=input_dim)
        self.hidden_dim, self.input_dim = hidden_dim, input_dim
        cin = hidden_dim + input_dim
        for suffix, kernel, pad in (("1", (1, 5), (0, 2)), ("2", (5, 1), (2, 0))):
            for gate in "zrq":
                setattr(self, f"conv{gate}{suffix}", nn.Conv2d(cin, hidden_dim, kernel, padding=pad))
        self.impl = impl

    def _pass(self, h, x, convz, convr, convq):
        return conv_gru_pass(h, x, torch.cat((convz.weight, convr.weight)),
                             torch.cat((convz.bias, convr.bias)), convq.weight, convq.bias,
                             convz.padding, impl=self.impl)

    def forward(self, h, x):
        # (conv_gru_pass would blame its weights, whose shapes are the layer's)
        for name, t, channels in (("h", h, self.hidden_dim), ("x", x, self.input_dim)):
            check_tensor(t, name, 4, f"(N, {channels}, H, W)")
            if t.shape[1] != channels:
                raise ValueError(f"SepConvGRU: {name} must have shape (N, {channels}, H, W), "
                                 f"got {tuple(t.shape)}")
        h = self._pass(h, x, self.convz1, self.convr1, self.convq1)
        return self._pass(h, x, self.convz2, self.convr2, self.convq2)
