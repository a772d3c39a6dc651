"""The generator of bluestyle97/STGAN-pytorch written the original way, from
its models/stgan.py (`ConvGRUCell`, `Generator`; STGAN, Liu et al. CVPR
2019, Sec. 3.1-3.2): separate reset / update / hidden gate convolutions,
each bias-free and followed by BatchNorm, the attributes tiled and
concatenated wherever the original does, every concatenation as it is. The
module tree is the original's, so its state_dict has the original's keys.

The oracle that python_models.stgan_pytorch's hrops generator is tested
against (same state_dict, same output, same running-stat updates) and the
baseline ("ref") of its benchmark. The configuration defaults are those of
the project's configs/train_stgan.yaml: 10 attributes, g_conv_dim 64,
g_layers 5, shortcut_layers 3, stu_kernel_size 3, use_stu, one_more_conv.
"""
import torch
from torch import nn


class ConvGRUCell(nn.Module):
    def __init__(self, n_attrs, in_dim, out_dim, kernel_size=3):
        super().__init__()
        self.n_attrs = n_attrs
        p = (kernel_size - 1) // 2
        self.upsample = nn.ConvTranspose2d(in_dim * 2 + n_attrs, out_dim, 4, 2, 1, bias=False)
        self.reset_gate = nn.Sequential(
            nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, p, bias=False),
            nn.BatchNorm2d(out_dim), nn.Sigmoid())
        self.update_gate = nn.Sequential(
            nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, p, bias=False),
            nn.BatchNorm2d(out_dim), nn.Sigmoid())
        self.hidden = nn.Sequential(
            nn.Conv2d(in_dim + out_dim, out_dim, kernel_size, 1, p, bias=False),
            nn.BatchNorm2d(out_dim), nn.Tanh())

    def forward(self, input, old_state, attr):
        n, _, h, w = old_state.size()
        attr = attr.view((n, self.n_attrs, 1, 1)).expand((n, self.n_attrs, h, w))
        state_hat = self.upsample(torch.cat([old_state, attr], 1))
        r = self.reset_gate(torch.cat([input, state_hat], dim=1))
        z = self.update_gate(torch.cat([input, state_hat], dim=1))
        new_state = r * state_hat
        hidden_info = self.hidden(torch.cat([input, new_state], dim=1))
        output = (1 - z) * state_hat + z * hidden_info
        return output, new_state


def _deconv_bn_relu(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Generator(nn.Module):
    def __init__(self, attr_dim=10, conv_dim=64, n_layers=5, shortcut_layers=3,
                 stu_kernel_size=3, use_stu=True, one_more_conv=True):
        super().__init__()
        self.n_attrs = attr_dim
        self.n_layers = n_layers
        self.shortcut_layers = min(shortcut_layers, n_layers - 1)
        self.use_stu = use_stu

        self.encoder = nn.ModuleList()
        in_channels = 3
        for i in range(n_layers):
            self.encoder.append(nn.Sequential(
                nn.Conv2d(in_channels, conv_dim * 2 ** i, 4, 2, 1, bias=False),
                nn.BatchNorm2d(conv_dim * 2 ** i),
                nn.LeakyReLU(negative_slope=0.2, inplace=True)))
            in_channels = conv_dim * 2 ** i

        if use_stu:
            self.stu = nn.ModuleList()
            for i in reversed(range(n_layers - 1 - self.shortcut_layers, n_layers - 1)):
                self.stu.append(ConvGRUCell(attr_dim, conv_dim * 2 ** i, conv_dim * 2 ** i,
                                            stu_kernel_size))

        self.decoder = nn.ModuleList()
        top = conv_dim * 2 ** (n_layers - 1)
        for i in range(n_layers):
            if i < n_layers - 1:
                out = conv_dim * 2 ** (n_layers - 1 - i)
                if i == 0:
                    self.decoder.append(_deconv_bn_relu(top + attr_dim, top))
                elif i <= self.shortcut_layers:
                    self.decoder.append(_deconv_bn_relu(3 * out, out))
                else:
                    self.decoder.append(_deconv_bn_relu(2 * out, out))
            else:
                in_dim = conv_dim * 3 if self.shortcut_layers == n_layers - 1 else conv_dim * 2
                if one_more_conv:
                    self.decoder.append(nn.Sequential(
                        nn.ConvTranspose2d(in_dim, conv_dim // 4, 4, 2, 1, bias=False),
                        nn.BatchNorm2d(conv_dim // 4), nn.ReLU(inplace=True),
                        nn.ConvTranspose2d(conv_dim // 4, 3, 3, 1, 1, bias=False), nn.Tanh()))
                else:
                    self.decoder.append(nn.Sequential(
                        nn.ConvTranspose2d(in_dim, 3, 4, 2, 1, bias=False), nn.Tanh()))

    def forward(self, x, a):
        y = []
        x_ = x
        for layer in self.encoder:
            x_ = layer(x_)
            y.append(x_)

        out = y[-1]
        n, _, h, w = out.size()
        attr = a.view((n, self.n_attrs, 1, 1)).expand((n, self.n_attrs, h, w))
        out = self.decoder[0](torch.cat([out, attr], dim=1))
        stu_state = y[-1]

        for i in range(1, self.shortcut_layers + 1):
            if self.use_stu:
                stu_out, stu_state = self.stu[i - 1](y[-(i + 1)], stu_state, a)
                out = self.decoder[i](torch.cat([out, stu_out], dim=1))
            else:
                out = self.decoder[i](torch.cat([out, y[-(i + 1)]], dim=1))

        for i in range(self.shortcut_layers + 1, self.n_layers):
            out = self.decoder[i](out)
        return out
