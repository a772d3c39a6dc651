"""CoCosNet v2's translation generator (microsoft/CoCosNet-v2,
models/networks/generator.py, SPADEGenerator; architecture.py,
SPADEResnetBlock; normalization.py, SPADE): a SPADE decoder conditioned on
the four warped exemplars and the label map, from H/32 to the image.

Module and parameter names follow generator.py, so a netG state_dict
(latest_net_G.pth) loads with load_generator_state_dict. Defaults are the
published DeepFashionHD configuration: ngf 64, 20 labels, norm_G
'spectralspadesyncbatch3x3' with --PONO (SPADE normalises with PONO, so the
synchronized BatchNorms are not built). The official forward resizes the
warps to 512x512 and the latent map to crop_size / 32; here both follow the
label map's size, so any H, W divisible by 32 (and at least 64) work.

CoCosNetV2 chains the correspondence network and the generator: label map +
exemplar + exemplar label map -> image (python -m python_models.cocosnet_v2
--gen latest_net_G.pth ...).
"""
import torch
from torch import nn
from torch.nn import functional as F

from .cocosnet_v2 import (NoVGGHPMCorrespondence, SPADEResnetBlock, leaky,
                          load_correspondence_state_dict)


class SPADEGenerator(nn.Module):
    def __init__(self, label_nc=20, ngf=64, pono=True):
        super().__init__()
        nf, ic = ngf, 4 * 3 + label_nc  # four RGB warps and the label map
        self.fc = nn.Conv2d(ic, 8 * nf, 3, padding=1)
        self.head_0 = SPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.G_middle_0 = SPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.G_middle_1 = SPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.up_0 = SPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.up_1 = SPADEResnetBlock(8 * nf, 4 * nf, ic, pono)
        self.up_2 = SPADEResnetBlock(4 * nf, 2 * nf, ic, pono)
        self.up_3 = SPADEResnetBlock(2 * nf, 1 * nf, ic, pono)
        self.conv_img = nn.Conv2d(nf, 3, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, seg_map, warps):
        """seg_map (N, label_nc, H, W) one-hot, H and W divisible by 32 and
        at least 64;
        warps: the correspondence's four warped exemplars, (N, 3, H/8, W/8)
        ... (N, 3, H, W). Returns the image (N, 3, H, W) in [-1, 1]."""
        # The first block runs at H/32 x W/32, and its reflection padding
        # needs at least 2 pixels on each side.
        if (seg_map.dim() != 4 or seg_map.shape[2] % 32 or seg_map.shape[3] % 32
                or min(seg_map.shape[2:]) < 64):
            raise ValueError(f"seg_map must be (N, label_nc, H, W) with H and W divisible by 32 "
                             f"and at least 64, got {tuple(seg_map.shape)}")
        if len(warps) != 4:
            raise ValueError(f"warps must hold the 4 levels' warped exemplars, got {len(warps)}")
        h, w = seg_map.shape[2:]
        seg = torch.cat([F.interpolate(warp, size=(h, w)) for warp in warps[:3]]
                        + [warps[3], seg_map], dim=1)
        x = self.fc(F.interpolate(seg, size=(h // 32, w // 32)))
        x = self.up(self.head_0(x, seg))
        x = self.up(self.G_middle_1(self.G_middle_0(x, seg), seg))
        x = self.up(self.up_0(x, seg))
        x = self.up(self.up_1(x, seg))
        x = self.up(self.up_2(x, seg))
        x = self.up_3(x, seg)
        return torch.tanh(self.conv_img(leaky(x)))


def load_generator_state_dict(model, state_dict):
    """Loads CoCosNet v2's netG state_dict (DataParallel 'module.' prefixes
    stripped); every weight must be present."""
    model.load_state_dict({k.removeprefix("module."): v for k, v in state_dict.items()}, strict=True)
    return model


class CoCosNetV2(nn.Module):
    """The whole translation: the correspondence network warps the exemplar
    onto the label map at four levels, the generator turns the label map and
    the warps into the image (CoCosNet v2's Pix2PixModel inference:
    netCorr, then netG on its warp_out)."""

    def __init__(self, label_nc=20, nef=32, ngf=64, pono=True):
        super().__init__()
        self.corr = NoVGGHPMCorrespondence(label_nc, nef)
        self.gen = SPADEGenerator(label_nc, ngf, pono)

    def load_state_dicts(self, corr=None, gen=None):
        """latest_net_Corr.pth's and latest_net_G.pth's state_dicts (either may
        be left out)."""
        if corr is not None:
            load_correspondence_state_dict(self.corr, corr)
        if gen is not None:
            load_generator_state_dict(self.gen, gen)
        return self

    def forward(self, seg_map, ref_img, ref_seg_map, generator=None):
        """seg_map / ref_seg_map (N, label_nc, H, W) one-hot, ref_img (N, 3, H,
        W) in [-1, 1], H and W divisible by 32, at least 64. Returns (image, the
        Correspondence: warps, offsets, indices). generator seeds the
        propagation order."""
        correspondence = self.corr(ref_img, seg_map, ref_seg_map, generator)
        return self.gen(seg_map, correspondence.warps), correspondence
