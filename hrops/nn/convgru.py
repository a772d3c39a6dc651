"""CoCosNet v2's SepConvGRU (RAFT's separable ConvGRU; SEEDS.md 4.4) on
hrops' gating ops, with CoCosNet v2's parameter names (convz1, convr1,
convq1 with 1x5 kernels, then convz2, convr2, convq2 with 5x1 kernels).

Each pass: z = sigmoid(convz([h, x])), r = sigmoid(convr([h, x])),
q = tanh(convq([r * h, x])), h = (1 - z) * h + z * q. Here the z and r
convolutions share their input and run as one convolution, r * h is
hrops.stu_reset and the update is hrops.gru_update: no sigmoid or tanh
output is saved for backward, only the pre-activations (recomputed gates).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..ops.gates import gru_update, stu_reset


class SepConvGRU(nn.Module):
    def __init__(self, hidden_dim=32, input_dim=64, *, impl=None):
        super().__init__()
        cin = hidden_dim + input_dim
        for suffix, kernel, pad in (("1", (1, 5), (0, 2)), ("2", (5, 1), (2, 0))):
            for gate in "zrq":
                setattr(self, f"conv{gate}{suffix}", nn.Conv2d(cin, hidden_dim, kernel, padding=pad))
        self.impl = impl

    def _pass(self, h, x, convz, convr, convq):
        hx = torch.cat((h, x), dim=1)
        pre_zr = F.conv2d(hx, torch.cat((convz.weight, convr.weight)),
                          torch.cat((convz.bias, convr.bias)), padding=convz.padding)
        c = h.shape[1]
        pre_z, pre_r = pre_zr[:, :c], pre_zr[:, c:]
        pre_q = convq(torch.cat((stu_reset(pre_r, h, impl=self.impl), x), dim=1))
        return gru_update(pre_z, h, pre_q, impl=self.impl)

    def forward(self, h, x):
        h = self._pass(h, x, self.convz1, self.convr1, self.convq1)
        return self._pass(h, x, self.convz2, self.convr2, self.convq2)
