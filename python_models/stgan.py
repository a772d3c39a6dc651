"""STGAN's generator (csmliu/STGAN, models.py: Genc, Gstu, Gdec) on
hrops.nn.STU; CooGAN's (python_models.coogan) is the same network with
hrops.nn.LSTU cells.

Defaults: 128^2 images, dim 64, 5 encoder and 5 decoder layers, 4 STU
levels, 13 attributes, attribute difference tiled onto the state before
every cell's transposed convolution and injected after every decoder layer
but the last. Modules: encoder.{i} (Conv4x4/s2 + BN + LeakyReLU 0.2),
stu.{i} (coarse to fine: d = 8*dim @8^2 ... dim @64^2), decoder.{i}
(ConvT4x4/s2 + BN + ReLU, the last ConvT -> 3 channels + tanh). TF 'SAME'
padding of the stride-2 4x4 (transposed) convolutions is padding 1.
"""
import torch
from torch import nn

import hrops
from hrops.nn.recurrent import tile_attributes


class STGANGenerator(nn.Module):
    """Encoder / selective-transfer cells / decoder.

    forward(x, attr_diff): x (N, in_channels, H, W) with H, W multiples of
    2^n_layers, attr_diff (N, n_attrs) -> (N, 3, H, W) in [-1, 1].
    cell: "stu" (STGAN) or "lstu" (CooGAN; activation "tanh" or "relu").
    """

    def __init__(self, dim=64, n_attrs=13, n_layers=5, in_channels=3, cell="stu",
                 activation="tanh", impl=None):
        super().__init__()
        if cell not in ("stu", "lstu"):
            raise ValueError(f"cell must be 'stu' or 'lstu', got {cell!r}")
        self.n_attrs, self.n_layers, self.in_channels = n_attrs, n_layers, in_channels
        enc_dims = [dim * 2 ** i for i in range(n_layers)]
        self.encoder = nn.ModuleList()
        c = in_channels
        for d in enc_dims:
            self.encoder.append(nn.Sequential(nn.Conv2d(c, d, 4, 2, 1, bias=False),
                                              nn.BatchNorm2d(d), nn.LeakyReLU(0.2)))
            c = d
        widths = enc_dims[-2::-1]  # cell widths, coarse to fine
        states = [enc_dims[-1] + n_attrs] + [w + n_attrs for w in widths[:-1]]
        self.stu = nn.ModuleList(
            hrops.nn.STU(w, s, impl=impl) if cell == "stu" else
            hrops.nn.LSTU(w, s, activation, impl=impl) for w, s in zip(widths, states))
        self.decoder = nn.ModuleList()
        c = enc_dims[-1] + n_attrs
        for i, w in enumerate(widths):
            out = enc_dims[-1 - i]
            self.decoder.append(nn.Sequential(nn.ConvTranspose2d(c, out, 4, 2, 1, bias=False),
                                              nn.BatchNorm2d(out), nn.ReLU()))
            c = out + w + n_attrs
        self.decoder.append(nn.Sequential(nn.ConvTranspose2d(c, 3, 4, 2, 1), nn.Tanh()))

    def check_inputs(self, x, attr_diff):
        side = 2 ** self.n_layers
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % side or x.shape[3] % side:
            raise ValueError(f"x's H and W must be multiples of {side}, got {tuple(x.shape[2:])}")
        if attr_diff.dim() != 2 or tuple(attr_diff.shape) != (x.shape[0], self.n_attrs):
            raise ValueError(f"attr_diff must have shape (N, n_attrs) = {(x.shape[0], self.n_attrs)}, "
                             f"got {tuple(attr_diff.shape)}")

    def forward(self, x, attr_diff):
        self.check_inputs(x, attr_diff)
        attr = attr_diff.to(x.dtype)
        zs = []
        for layer in self.encoder:
            x = layer(x)
            zs.append(x)
        state, skips = zs[-1], []
        for i, cell in enumerate(self.stu):
            out, state = cell(zs[-2 - i], state, attr)
            skips.append(out)
        z = tile_attributes(zs[-1], attr)
        for layer, skip in zip(self.decoder, skips):
            z = tile_attributes(torch.cat([layer(z), skip], 1), attr)
        return self.decoder[-1](z)


def attribute_difference(source, target, thres_int=0.5, test_int=None):
    """STGAN's label='diff' input from 0/1 attribute vectors: (2b-1)t - (2a-1)t
    with t = thres_int, each edited entry scaled by test_int/thres_int at test time."""
    diff = (2 * target.float() - 1) * thres_int - (2 * source.float() - 1) * thres_int
    return diff if test_int is None else diff * (test_int / thres_int)
