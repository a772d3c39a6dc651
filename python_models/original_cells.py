"""The original recurrent cells' computation, written from microsoft/CoCosNet-v2
models/networks/convgru.py (SepConvGRU), csmliu/STGAN models.py (ConvGRUCell)
and neuralchen/CooGAN components/STU/SRU_modify.py / SRU_modify_relu.py
(no code copied): CooGAN's SRU_modify(_relu) and STGAN's official
ConvGRUCell with pass_state 'stu', each gate its own convolution with bias,
TF 'SAME' padding, plain PyTorch gating; and RAFT / CoCosNet v2's
SepConvGRU. Oracles for hrops.nn.LSTU/STU/SepConvGRU and the eager baselines
of their benchmarks; `export_to` copies LSTU/STU weights into hrops'
concatenated layout (SepConvGRU shares its state_dict as it is)."""
import torch
from torch import nn


def tile_attributes(state, attr):
    """STGAN's `_concat`: the attribute vector tiled to the state's H x W."""
    n, _, h, w = state.shape
    return torch.cat([state, attr.view(n, -1, 1, 1).expand(n, attr.shape[1], h, w)], 1)


class OriginalLSTU(nn.Module):
    def __init__(self, in_dim, state_dim, activation="tanh", kernel_size=3):
        super().__init__()
        d, p = in_dim, kernel_size // 2
        self.activation = activation
        self.upsample = nn.ConvTranspose2d(state_dim, d, 4, 2, 1)
        self.transform = nn.Conv2d(d, d, 1)
        self.forget_gate = nn.Conv2d(d, d, kernel_size, padding=p)
        self.reset_gate = nn.Conv2d(d, d, kernel_size, padding=p)

    def forward(self, enc, state, attr):
        x = self.upsample(tile_attributes(state, attr))
        x_tilde = self.transform(x)
        f = torch.sigmoid(self.forget_gate(x))
        r = torch.sigmoid(self.reset_gate(x))
        c = f * enc + (1 - f) * x_tilde
        g = torch.tanh(c) if self.activation == "tanh" else torch.relu(c)
        return r * g + (1 - r) * x, c

    @torch.no_grad()
    def export_to(self, cell):
        cell.upsample.load_state_dict(self.upsample.state_dict())
        cell.transform.load_state_dict(self.transform.state_dict())
        cell.gates.weight.copy_(torch.cat([self.forget_gate.weight, self.reset_gate.weight]))
        cell.gates.bias.copy_(torch.cat([self.forget_gate.bias, self.reset_gate.bias]))
        return cell


class OriginalSTU(nn.Module):
    def __init__(self, in_dim, state_dim, out_dim=None, kernel_size=3):
        super().__init__()
        d, p = out_dim or in_dim, kernel_size // 2
        self.upsample = nn.ConvTranspose2d(state_dim, d, 4, 2, 1)
        self.reset_gate = nn.Conv2d(in_dim + d, d, kernel_size, padding=p)
        self.update_gate = nn.Conv2d(in_dim + d, d, kernel_size, padding=p)
        self.hidden = nn.Conv2d(in_dim + d, d, kernel_size, padding=p)

    def forward(self, enc, state, attr):
        s_hat = self.upsample(tile_attributes(state, attr))
        r = torch.sigmoid(self.reset_gate(torch.cat([enc, s_hat], 1)))
        u = torch.sigmoid(self.update_gate(torch.cat([enc, s_hat], 1)))
        s_new = r * s_hat
        info = torch.tanh(self.hidden(torch.cat([enc, s_new], 1)))
        return (1 - u) * s_hat + u * info, s_new

    @torch.no_grad()
    def export_to(self, cell):
        cell.upsample.load_state_dict(self.upsample.state_dict())
        cell.gates.weight.copy_(torch.cat([self.reset_gate.weight, self.update_gate.weight]))
        cell.gates.bias.copy_(torch.cat([self.reset_gate.bias, self.update_gate.bias]))
        cell.info.load_state_dict(self.hidden.state_dict())
        return cell


class OriginalSepConvGRU(nn.Module):
    """RAFT/CoCosNet v2's SepConvGRU as written there: separate z, r, q convs,
    a 1x5 pass then a 5x1 pass."""

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
