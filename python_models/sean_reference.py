"""SEAN's region layers written the original way (SEAN, Zhu et al. CVPR 2020;
ZPdesu/SEAN models/networks/architecture.py, Zencoder.forward, and
models/networks/normalization.py, ACE.forward): Python
loops over batch and region, 19 separate fc_mu Linears, masked_select /
masked_scatter_, dense conv_gamma / conv_beta on the broadcast map, SPADE's
dense conv on the one-hot map. Only the hard-coded .cuda() of the noise is
replaced by the input's device.

The oracle that python_models.sean's hrops model is tested against (same
state_dict, same output) and the benchmark baseline ("reference layers").
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .sean import SEANGenerator


def loop_avg_pool(codes, segmap):
    """Zencoder.forward's pooling loop."""
    b, c = codes.shape[:2]
    s = segmap.shape[1]
    codes_vector = torch.zeros((b, s, c), dtype=codes.dtype, device=codes.device)
    for i in range(b):
        for j in range(s):
            component_mask_area = torch.sum(segmap.bool()[i, j])
            if component_mask_area > 0:
                codes_component_feature = codes[i].masked_select(
                    segmap.bool()[i, j]).reshape(c, component_mask_area).mean(1)
                codes_vector[i][j] = codes_component_feature
    return codes_vector


class LoopSPADE(nn.Module):
    def __init__(self, norm_nc, label_nc, hidden=128):
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, segmap):
        actv = self.mlp_shared(segmap)
        return self.mlp_gamma(actv), self.mlp_beta(actv)


class LoopACE(nn.Module):
    def __init__(self, norm_nc, label_nc, use_rgb=True, style_length=512):
        super().__init__()
        self.style_length = style_length
        self.use_rgb = use_rgb
        self.label_nc = label_nc
        self.blending_gamma = nn.Parameter(torch.zeros(1))
        self.blending_beta = nn.Parameter(torch.zeros(1))
        self.noise_var = nn.Parameter(torch.zeros(norm_nc))
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.Spade = LoopSPADE(norm_nc, label_nc)
        if use_rgb:
            for j in range(label_nc):
                self.add_module(f"fc_mu{j}", nn.Linear(style_length, style_length))
            self.conv_gamma = nn.Conv2d(style_length, norm_nc, 3, padding=1)
            self.conv_beta = nn.Conv2d(style_length, norm_nc, 3, padding=1)

    def forward(self, x, segmap, style_codes=None):
        added_noise = (torch.randn(x.shape[0], x.shape[3], x.shape[2], 1, device=x.device,
                                   dtype=x.dtype) * self.noise_var).transpose(1, 3)
        normalized = self.param_free_norm(x + added_noise)
        segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
        gamma_spade, beta_spade = self.Spade(segmap)
        if not self.use_rgb:
            return normalized * (1 + gamma_spade) + beta_spade
        b, _, h, w = normalized.shape
        middle_avg = torch.zeros((b, self.style_length, h, w), device=normalized.device,
                                 dtype=normalized.dtype)
        for i in range(b):
            for j in range(segmap.shape[1]):
                component_mask_area = torch.sum(segmap.bool()[i, j])
                if component_mask_area > 0:
                    middle_mu = F.relu(getattr(self, f"fc_mu{j}")(style_codes[i][j]))
                    component_mu = middle_mu.reshape(self.style_length, 1).expand(
                        self.style_length, int(component_mask_area))
                    middle_avg[i].masked_scatter_(segmap.bool()[i, j], component_mu)
        gamma_avg = self.conv_gamma(middle_avg)
        beta_avg = self.conv_beta(middle_avg)
        gamma_alpha = torch.sigmoid(self.blending_gamma)
        beta_alpha = torch.sigmoid(self.blending_beta)
        gamma_final = gamma_alpha * gamma_avg + (1 - gamma_alpha) * gamma_spade
        beta_final = beta_alpha * beta_avg + (1 - beta_alpha) * beta_spade
        return normalized * (1 + gamma_final) + beta_final


def reference_generator(**kwargs):
    """SEANGenerator built from the loop layers above (takes one-hot segmaps)."""
    return SEANGenerator(norm_layer=LoopACE, pool=loop_avg_pool, **kwargs)
