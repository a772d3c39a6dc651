"""SEAN (Zhu et al., CVPR 2020) generator on hrops' region ops.

Same module tree and parameter names as ZPdesu/SEAN's SPADEGenerator with
its Zencoder (SEAN, Zhu et al. CVPR 2020; ZPdesu/SEAN
models/networks/generator.py, architecture.py, normalization.py), so an
official generator state_dict
(`Zencoder.*`, `fc.*`, `head_0.*` ... `up_3.*`, `conv_img.*`, spectral-norm
`weight_orig/_u/_v`, `fc_mu0..18`) loads with load_state_dict. Defaults are
SEAN's CelebAMask-HQ 256^2 setting: 19 labels, style length 512, ngf 64.

What differs from SEAN's code, not its math: region pooling and the ACE
broadcast + conv_gamma/conv_beta (and SPADE's first conv on the one-hot
map) run as hrops region ops instead of Python loops over batch and region;
the noise is drawn on the input's device (SEAN hard-codes .cuda()), in the
same order and shape, so it runs on CPU.

`norm_layer` and `pool` are injectable so that python_models.sean_reference
builds the same network from SEAN-style loop layers (the test oracle and the
benchmark baseline).
"""
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

import hrops
from hrops.nn.region import ACE


class Zencoder(nn.Module):
    """SEAN's style encoder: conv net to (B, style, H/2, W/2) codes, then
    the per-region average of the codes over the nearest-resized segmap.
    num_regions: the label count, which a label map segmap (B, H, W) needs
    (a one-hot one carries it); `pool` replaces hrops.region_avg_pool."""

    def __init__(self, input_nc=3, output_nc=512, ngf=32, n_downsampling=2, pool=None,
                 num_regions=None):
        super().__init__()
        model = [nn.ReflectionPad2d(1), nn.Conv2d(input_nc, ngf, 3, padding=0),
                 nn.InstanceNorm2d(ngf), nn.LeakyReLU(0.2, False)]
        for i in range(n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.LeakyReLU(0.2, False)]
        mult = 2 ** n_downsampling
        # SEAN declares InstanceNorm2d(ngf*mult/2) for these 2*ngf*mult channels. Without
        # affine parameters or running stats the count is only checked, with a warning
        # (a graph break under torch.compile): the true count computes the same.
        model += [nn.ConvTranspose2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1,
                                     output_padding=1),
                  nn.InstanceNorm2d(ngf * mult * 2), nn.LeakyReLU(0.2, False),
                  nn.ReflectionPad2d(1), nn.Conv2d(ngf * mult * 2, output_nc, 3, padding=0),
                  nn.Tanh()]
        self.model = nn.Sequential(*model)
        self.pool = pool or functools.partial(hrops.region_avg_pool, num_regions=num_regions)

    def forward(self, input, segmap):
        codes = self.model(input)
        return self.pool(codes, hrops.resize_seg(segmap, codes.shape[2:]))


class SEANResnetBlock(nn.Module):
    """SEAN's SPADEResnetBlock: ACE -> LReLU -> conv, twice, plus a learned
    shortcut (ACE -> 1x1 conv) when fin != fout; spectral norm on the convs."""

    def __init__(self, fin, fout, label_nc, use_rgb=True, style_length=512, norm_layer=ACE):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        self.ace_0 = norm_layer(fin, label_nc, use_rgb, style_length)
        self.ace_1 = norm_layer(fmiddle, label_nc, use_rgb, style_length)
        if self.learned_shortcut:
            self.ace_s = norm_layer(fin, label_nc, use_rgb, style_length)

    def forward(self, x, seg, style_codes):
        x_s = self.conv_s(self.ace_s(x, seg, style_codes)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.ace_0(x, seg, style_codes), 0.2))
        dx = self.conv_1(F.leaky_relu(self.ace_1(dx, seg, style_codes), 0.2))
        return x_s + dx


def init_weights(module, gain=0.02):
    """SEAN's init (base_network.init_weights, 'xavier'): xavier_normal weights
    with gain 0.02 and zero biases for every Conv and Linear (hrops' stacked
    fc_mu included, region by region)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(m, "weight_orig", m.weight)
            nn.init.xavier_normal_(weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, ACE) and m.use_rgb:
            for j in range(m.label_nc):
                nn.init.xavier_normal_(m.fc_mu_weight.data[j], gain=gain)
            nn.init.zeros_(m.fc_mu_bias)
    return module


BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")


class SEANGenerator(nn.Module):
    """SEAN's SPADEGenerator (num_upsampling_layers 'normal'): seg (B, R, H, W)
    one-hot (SEAN's input; an int64 label map (B, H, W) also works) and a
    style image (B, 3, H, W) -> image (B, 3, H, W) in [-1, 1]."""

    def __init__(self, label_nc=19, ngf=64, crop_size=256, style_length=512, norm_layer=ACE,
                 pool=None):
        super().__init__()
        nf = ngf
        self.label_nc = label_nc
        self.sh = self.sw = crop_size // 32
        self.Zencoder = Zencoder(3, style_length, pool=pool, num_regions=label_nc)
        self.fc = nn.Conv2d(label_nc, 16 * nf, 3, padding=1)
        chans = [(16 * nf, 16 * nf), (16 * nf, 16 * nf), (16 * nf, 16 * nf), (16 * nf, 8 * nf),
                 (8 * nf, 4 * nf), (4 * nf, 2 * nf), (2 * nf, nf)]
        for name, (fin, fout) in zip(BLOCKS, chans):
            setattr(self, name, SEANResnetBlock(fin, fout, label_nc, use_rgb=name != "up_3",
                                                style_length=style_length,
                                                norm_layer=norm_layer))
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def _onehot(self, seg):
        if seg.is_floating_point():
            return seg
        onehot = F.one_hot(seg.clamp_min(0), self.label_nc).permute(0, 3, 1, 2)
        return (onehot * (seg >= 0)[:, None]).to(self.fc.weight.dtype)

    def encode(self, style_img, seg):
        """Per-region style codes (B, R, style_length) of a style image."""
        return self.Zencoder(style_img, seg)

    def decode(self, seg, style_codes, trace=None):
        """The image of `seg` rendered with `style_codes`. trace, a dict, gets
        each stage's output (for per-block timing)."""
        x = self.fc(F.interpolate(self._onehot(seg), size=(self.sh, self.sw)))
        for name in BLOCKS:
            if name in ("G_middle_0", "up_0", "up_1", "up_2", "up_3"):
                x = self.up(x)
            x = getattr(self, name)(x, seg, style_codes)
            if trace is not None:
                trace[name] = x
        return torch.tanh(self.conv_img(F.leaky_relu(x, 2e-1)))

    def forward(self, seg, style_img):
        return self.decode(seg, self.encode(style_img, seg))

    def swap_region_style(self, seg, style_img, style_seg, donor_img, donor_seg, regions):
        """Per-region style editing: the codes of style_img, with the regions
        listed in `regions` taken from donor_img instead, rendered on seg."""
        codes = self.encode(style_img, style_seg)
        donor = self.encode(donor_img, donor_seg)
        regions = torch.as_tensor(regions, device=codes.device).reshape(-1)
        codes = codes.index_copy(1, regions, donor.index_select(1, regions))
        return self.decode(seg, codes)
