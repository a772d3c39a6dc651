"""SEAN's region layers on hrops ops (SEAN, Zhu et al. CVPR 2020; ZPdesu/SEAN
models/networks/architecture.py, Zencoder, and
models/networks/normalization.py, ACE).

ACE keeps SEAN's parameter and buffer names (fc_mu0..fc_mu{R-1},
conv_gamma, conv_beta, blending_gamma, blending_beta, noise_var,
param_free_norm, Spade.*), so SEAN generator state_dicts load unchanged, but
stores the R per-region Linears as one stacked weight so that they run as
one batched matmul; state_dict() and load_state_dict() translate to and from
SEAN's per-region keys.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops._checks import check_integer, check_same_device_dtype, check_tensor
from ..ops.ace import ace_modulate
from ..ops.region import (region_avg_pool, region_broadcast, region_conv2d, resize_seg,
                          seg_to_labels)
from ..ops.region_classes import region_classes
from ._checks import check_counts


class RegionAvgPool(nn.Module):
    """Module form of hrops.region_avg_pool: (feat, seg) -> (N, R, C)."""

    def __init__(self, num_regions: int | None = None):
        super().__init__()
        if num_regions is not None:
            num_regions = check_integer(num_regions, "num_regions", ge=0)
        self.num_regions = num_regions

    def forward(self, feat, seg):
        return region_avg_pool(feat, seg, self.num_regions)

    def extra_repr(self):
        return f"num_regions={self.num_regions}"


class RegionBroadcast(nn.Module):
    """Module form of hrops.region_broadcast: (codes, seg) -> (N, C, H, W)."""

    def forward(self, codes, seg):
        return region_broadcast(codes, seg)


class SPADE(nn.Module):
    """SEAN's SPADE submodule (the ACE's label-only branch): gamma and beta =
    mlp_gamma / mlp_beta of ReLU(mlp_shared(one-hot map)), all 3x3 convs.

    Computed exactly without any dense convolution: mlp_shared's output at a
    pixel depends only on the labels under its 3x3 taps, so it is one
    activation row per neighbourhood class (hrops.region_classes), and
    mlp_gamma / mlp_beta of that class-constant map are each a region_conv2d
    over the classes. param_free_norm is unused, as in SEAN, but kept for its
    state_dict entries."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.label_nc = label_nc

    def forward(self, labels):
        classes, signatures = region_classes(labels, self.label_nc, 3, 1)
        actv = F.relu(_one_hot_conv_at(signatures, self.mlp_shared[0]))
        # One region_conv2d each: their gradients then reach them separately,
        # where one call's output split in two would join them again (a copy
        # of both maps) in the backward.
        return tuple(region_conv2d(actv, classes, conv.weight, conv.bias, padding=1)
                     for conv in (self.mlp_gamma, self.mlp_beta))


def _one_hot_conv_at(signatures, conv):
    """conv(one-hot map) at pixels whose taps lie on the regions `signatures`
    (N, U, k*k), -1 for none: bias + sum over taps t of weight[:, label_t, t]
    -> (N, U, O)."""
    taps = conv.weight.flatten(2).permute(2, 1, 0)  # (k*k, R, O)
    taps = F.pad(taps, (0, 0, 1, 0))  # row 0: no region, adds 0
    t = torch.arange(taps.shape[0], device=signatures.device)
    return taps[t, signatures + 1].sum(2) + conv.bias


class ACE(nn.Module):
    """SEAN normalisation (ZPdesu/SEAN, models/networks/normalization.py,
    ACE.forward): x (B, C, H, W), a one-hot segmap
    (B, R, h, w) or label map (B, h, w) of any size (nearest-resized to
    (H, W)), style_codes (B, R, style_length).

    out = BN(x + noise) * (1 + gamma) + beta, with gamma/beta blended by
    sigmoid(blending_*) from the region branch (per-region
    ReLU(fc_mu_j(code_j)) broadcast and convolved by conv_gamma/conv_beta,
    computed as hrops.region_conv2d) and the SPADE branch, in one pass
    (hrops.ace_modulate). A one-hot map is
    taken as its labels (hrops.seg_to_labels), which is exact for SEAN's hard
    one-hot maps. use_rgb=False: the SPADE branch only (SEAN's up_3).
    """

    def __init__(self, norm_nc: int, label_nc: int, use_rgb: bool = True,
                 style_length: int = 512):
        super().__init__()
        check_counts(norm_nc=norm_nc, label_nc=label_nc, style_length=style_length)
        self.norm_nc, self.label_nc, self.use_rgb = norm_nc, label_nc, use_rgb
        self.style_length = style_length
        self.blending_gamma = nn.Parameter(torch.zeros(1))
        self.blending_beta = nn.Parameter(torch.zeros(1))
        self.noise_var = nn.Parameter(torch.zeros(norm_nc))
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.Spade = SPADE(norm_nc, label_nc)
        if use_rgb:
            # SEAN's fc_mu0..fc_mu{R-1} (Linear(style, style) each), stacked.
            self.fc_mu_weight = nn.Parameter(torch.empty(label_nc, style_length, style_length))
            self.fc_mu_bias = nn.Parameter(torch.empty(label_nc, style_length))
            for j in range(label_nc):
                linear = nn.Linear(style_length, style_length)
                with torch.no_grad():
                    self.fc_mu_weight[j].copy_(linear.weight)
                    self.fc_mu_bias[j].copy_(linear.bias)
            self.conv_gamma = nn.Conv2d(style_length, norm_nc, 3, padding=1)
            self.conv_beta = nn.Conv2d(style_length, norm_nc, 3, padding=1)
            self.register_state_dict_post_hook(_split_fc_mu)
            self.register_load_state_dict_pre_hook(_stack_fc_mu)

    def region_styles(self, style_codes):
        """ReLU(fc_mu_j(style_codes[:, j])) for every region j at once."""
        mu = torch.einsum("bjd,jod->bjo", style_codes, self.fc_mu_weight)
        return F.relu(mu + self.fc_mu_bias)

    def _check_inputs(self, x, style_codes):
        check_tensor(x, "x", 4, f"(B, {self.norm_nc}, H, W)")
        check_same_device_dtype(x, "x", self.noise_var, "the ACE's parameters")
        if x.shape[1] != self.norm_nc:
            raise ValueError(f"x must have shape (B, {self.norm_nc}, H, W), got {tuple(x.shape)}")
        if not self.use_rgb:
            return
        codes_shape = (x.shape[0], self.label_nc, self.style_length)
        if style_codes is None:
            raise ValueError(f"style_codes {codes_shape} are required with use_rgb=True")
        check_tensor(style_codes, "style_codes", 3, "(B, R, style_length)")
        check_same_device_dtype(x, "x", style_codes, "style_codes")
        if tuple(style_codes.shape) != codes_shape:
            raise ValueError(f"style_codes must have shape (B, R, style_length) = {codes_shape}, "
                             f"got {tuple(style_codes.shape)}")

    def forward(self, x, segmap, style_codes=None):
        self._check_inputs(x, style_codes)
        b, _, h, w = x.shape
        # SEAN adds randn(B, W, H, 1) * noise_var transposed to (B, C, H, W):
        # the same draw, added as one pixel map times a per-channel scale in
        # one pass (no (B, C, H, W) noise tensor).
        z = torch.randn(b, w, h, 1, device=x.device, dtype=x.dtype).permute(0, 3, 2, 1)
        normalized = self.param_free_norm(torch.addcmul(x, z, self.noise_var.view(1, -1, 1, 1)))
        seg = resize_seg(segmap, (h, w))
        labels = seg_to_labels(seg) if seg.is_floating_point() else seg
        gamma_spade, beta_spade = self.Spade(labels)
        if not self.use_rgb:
            return ace_modulate(normalized, gamma_spade, beta_spade)
        mu = self.region_styles(style_codes)
        gamma_avg = region_conv2d(mu, labels, self.conv_gamma.weight, self.conv_gamma.bias, 1)
        beta_avg = region_conv2d(mu, labels, self.conv_beta.weight, self.conv_beta.bias, 1)
        alpha = torch.sigmoid(torch.cat((self.blending_gamma, self.blending_beta)))
        return ace_modulate(normalized, gamma_spade, beta_spade, gamma_avg, beta_avg, alpha)

    def extra_repr(self):
        return (f"norm_nc={self.norm_nc}, label_nc={self.label_nc}, use_rgb={self.use_rgb}, "
                f"style_length={self.style_length}")


def _split_fc_mu(module, state_dict, prefix, local_metadata):
    """state_dict hook: fc_mu_weight/bias -> SEAN's fc_mu{j}.weight/bias."""
    weight = state_dict.pop(prefix + "fc_mu_weight")
    bias = state_dict.pop(prefix + "fc_mu_bias")
    for j in range(weight.shape[0]):
        state_dict[f"{prefix}fc_mu{j}.weight"] = weight[j]
        state_dict[f"{prefix}fc_mu{j}.bias"] = bias[j]


def _stack_fc_mu(module, state_dict, prefix, local_metadata, strict, missing_keys,
                 unexpected_keys, error_msgs):
    """load_state_dict pre-hook: SEAN's fc_mu{j}.* -> fc_mu_weight/bias."""
    names = [f"{prefix}fc_mu{j}" for j in range(module.label_nc)]
    if all(n + ".weight" in state_dict and n + ".bias" in state_dict for n in names):
        state_dict[prefix + "fc_mu_weight"] = torch.stack([state_dict.pop(n + ".weight")
                                                           for n in names])
        state_dict[prefix + "fc_mu_bias"] = torch.stack([state_dict.pop(n + ".bias")
                                                         for n in names])
