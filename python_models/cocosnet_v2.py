"""CoCosNet v2's correspondence network (microsoft/CoCosNet-v2, netCorr
"NoVGGHPM"; CoCosNet v2, Zhou et al. CVPR 2021; models/networks/correspondence.py,
patch_match.py, convgru.py) on hrops, inference and warp training side.

Module and parameter names follow CoCosNet v2's correspondence.py,
patch_match.py and convgru.py, so its netCorr state_dict loads
(load_correspondence_state_dict). Defaults are its published DeepFashionHD
configuration: nef 32, 20 labels, --PONO --PONO_C, spectral + instance norms,
temperature 0.01, 5 iterations per level.

Pipeline: two AdaptiveFeatureGenerators (content = label map, reference =
exemplar image + its label map) give features at H/8, H/4, H/2 and H; each
level is L2-normalised, projected by theta_i / phi_i (1x1) and centred +
normalised per pixel (cosine matching). Level 0 (H/8) matches densely
(softmax over all positions); levels 1-3 start from the coarser level's best
match (doubled, a dilated 4x4 window of 16 candidates, nearest-upsampled) and
run PatchMatchGRU: 5 x (horizontal + vertical propagation and evaluation in
random order with hrops.patchmatch_step, then a SepConvGRU offset refinement),
then the soft warp hrops.patchmatch_warp. Unlike the original, any H, W
divisible by 8 work (not only squares), and it runs on CPU.

Gradients: as in CoCosNet v2, losses reach the features only through the
warps' softmax weights; the refined offsets become indices, so no loss
reaches initial_layer or refine_net. hrops runs that refinement without
autograd (it would only store activations nobody uses).

Entry point (label maps + exemplar in; the translated image with --gen, the
warped exemplar without; warp and flow pictures on request):
  python -m python_models.cocosnet_v2 --corr latest_net_Corr.pth \\
      --gen latest_net_G.pth --seg seg.png --exemplar ref.png \\
      --exemplar-seg ref_seg.png --out out.png [--warp warp.png] [--flow flow.png]
"""
import argparse
import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

import hrops
from hrops.nn import SepConvGRU
from hrops.ref.patchmatch import target_offsets, targets

from ._impl import use_impl

SEARCH_OFFSETS = (-2, 0, 2, 4)  # dilated 4x4 window: (arange(4) - 1) * 2 per axis
LEVEL_STRIDES = (8, 4, 2, 1)


def feature_normalize(x, eps=1e-10):
    """util.feature_normalize: L2 normalisation over channels."""
    return x / (torch.norm(x, 2, 1, keepdim=True) + eps)


def match_kernel_and_pono_c(x, eps=1e-10):
    """match_kernel 1 with PONO_C: per pixel, subtract the channel mean and
    L2-normalise, so matching scores are cosine similarities."""
    x = x - x.mean(dim=1, keepdim=True)
    return x / (torch.norm(x, 2, 1, keepdim=True) + eps)


def positional_norm(x, eps=1e-8):
    """PONO: per-pixel normalisation over channels (unbiased variance)."""
    return (x - x.mean(dim=1, keepdim=True)) / x.var(dim=1, keepdim=True).add(eps).sqrt()


def leaky(x):
    return F.leaky_relu(x, 0.2)


def conv_instance_norm(cin, cout, kernel, stride=1, padding=1):
    """get_nonspade_norm_layer(opt, 'spectralinstance'): spectral-normalised
    conv without bias, then an affine-free InstanceNorm."""
    conv = spectral_norm(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False))
    return nn.Sequential(conv, nn.InstanceNorm2d(cout, affine=False))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.relu = nn.PReLU()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
            self.relu,
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return self.relu(x + self.model(x))


class SPADE(nn.Module):
    """SPADE with 3x3 reflection-padded convs (128 hidden). pono=True (the
    published config) normalises with PONO; otherwise BatchNorm ('syncbatch').
    The modulation normalized * (1 + gamma) + beta is hrops.ace_modulate (one
    pass instead of three)."""

    def __init__(self, norm_nc, label_nc, pono=True, impl=None):
        super().__init__()
        self.impl = impl
        self.param_free_norm = positional_norm if pono else nn.BatchNorm2d(norm_nc, affine=True)
        self.mlp_shared = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(label_nc, 128, 3), nn.ReLU())
        self.pad = nn.ReflectionPad2d(1)
        self.mlp_gamma = nn.Conv2d(128, norm_nc, 3)
        self.mlp_beta = nn.Conv2d(128, norm_nc, 3)

    def forward(self, x, segmap):
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.pad(self.mlp_shared(segmap))
        return hrops.ace_modulate(self.param_free_norm(x), self.mlp_gamma(actv),
                                  self.mlp_beta(actv), impl=self.impl)


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin, fout, label_nc, pono=True):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.pad = nn.ReflectionPad2d(1)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = SPADE(fin, label_nc, pono)
        self.norm_1 = SPADE(fmiddle, label_nc, pono)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, pono)

    def forward(self, x, seg):
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(self.pad(leaky(self.norm_0(x, seg))))
        dx = self.conv_1(self.pad(leaky(self.norm_1(dx, seg))))
        return x_s + dx


class AdaptiveFeatureGenerator(nn.Module):
    """Encoder to H/8 and SPADE decoder with U-Net adds: features at H/8
    (4 nef), H/4 (4 nef), H/2 (2 nef) and H (nef)."""

    def __init__(self, in_channels, nef=32, pono=True):
        super().__init__()
        self.layer1 = conv_instance_norm(in_channels, nef, 3)
        self.layer2 = nn.Sequential(conv_instance_norm(nef, 2 * nef, 3), ResidualBlock(2 * nef))
        self.layer3 = nn.Sequential(conv_instance_norm(2 * nef, 4 * nef, 3, stride=2),
                                    ResidualBlock(4 * nef))
        self.layer4 = nn.Sequential(conv_instance_norm(4 * nef, 4 * nef, 3, stride=2),
                                    ResidualBlock(4 * nef))
        self.layer5 = nn.Sequential(conv_instance_norm(4 * nef, 4 * nef, 3, stride=2),
                                    ResidualBlock(4 * nef))
        self.head_0 = SPADEResnetBlock(4 * nef, 4 * nef, in_channels, pono)
        self.G_middle_0 = SPADEResnetBlock(4 * nef, 4 * nef, in_channels, pono)
        self.G_middle_1 = SPADEResnetBlock(4 * nef, 2 * nef, in_channels, pono)
        self.G_middle_2 = SPADEResnetBlock(2 * nef, nef, in_channels, pono)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x, seg):
        x2 = self.layer2(leaky(self.layer1(x)))
        x3 = self.layer3(leaky(x2))
        x4 = self.layer4(leaky(x3))
        x6 = self.head_0(self.layer5(leaky(x4)), seg)
        x7 = self.G_middle_0(self.up(x6) + x4, seg)
        x8 = self.G_middle_1(self.up(x7) + x3, seg)
        x9 = self.G_middle_2(self.up(x8) + x2, seg)
        return [x6, x7, x8, x9]


class BasicMotionEncoder(nn.Module):
    def __init__(self, candidates=16):
        super().__init__()
        self.convc1 = nn.Conv2d(candidates, 64, 1)
        self.convc2 = nn.Conv2d(64, 64, 3, padding=1)
        self.convf1 = nn.Conv2d(2 * candidates, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv = nn.Conv2d(128, 64 - 2 * candidates, 3, padding=1)

    def forward(self, flow, corr):
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat((F.relu(self.conv(torch.cat((cor, flo), dim=1))), flow), dim=1)


class FlowHead(nn.Module):
    def __init__(self, input_dim=32, hidden_dim=64, candidates=16):
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2 * candidates, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(x)))


class BasicUpdateBlock(nn.Module):
    """Motion encoder, SepConvGRU (hrops gating ops) and flow head: the
    hidden state and the (N, 32, H, W) offset update [rows | columns]."""

    def __init__(self, impl=None):
        super().__init__()
        self.encoder = BasicMotionEncoder()
        self.gru = SepConvGRU(32, 64, impl=impl)
        self.flow_head = FlowHead()

    def forward(self, hidden, corr, flow):
        hidden = self.gru(hidden, self.encoder(flow, corr))
        return hidden, self.flow_head(hidden)


class PatchMatchGRU(nn.Module):
    """Levels 1-3: PatchMatch with GRU refinement, then the soft warp."""

    def __init__(self, nef=32, temperature=0.01, iterations=5, impl=None):
        super().__init__()
        self.temperature, self.iterations, self.impl = temperature, iterations, impl
        norm, relu = nn.InstanceNorm2d(32, affine=False), nn.ReLU(inplace=True)
        self.initial_layer = nn.Sequential(nn.Conv2d(2 * nef, 32, 3, padding=1), norm, relu,
                                           nn.Conv2d(32, 32, 3, padding=1), norm, relu)
        self.refine_net = BasicUpdateBlock(impl)

    def search(self, theta, phi, offsets, generator=None):
        """The iterations on (N, 2, K, H, W) offsets: final (fractional) offsets."""
        step = dict(temperature=self.temperature, cocosnet_truncation=True, impl=self.impl)

        def propagate(first, second):
            def steps(theta, phi, offsets):
                offsets, _ = hrops.patchmatch_step(theta, phi, offsets, first, **step)
                return hrops.patchmatch_step(theta, phi, offsets, second, **step)
            return steps

        with torch.no_grad():
            hidden = self.initial_layer(torch.cat((theta, phi), dim=1))
            for _ in range(self.iterations):
                # A coin flip orders the two propagations; torch.cond keeps the
                # branch in one graph under torch.compile and torch.export.
                offsets, corr = torch.cond(torch.rand((), generator=generator) >= 0.5,
                                           propagate("vertical", "horizontal"),
                                           propagate("horizontal", "vertical"),
                                           (theta, phi, offsets))
                hidden, delta = self.refine_net(hidden, corr, offsets.flatten(1, 2))
                offsets = offsets + delta.view_as(offsets)
        return offsets

    def forward(self, theta, phi, ref, offsets, generator=None):
        offsets = self.search(theta, phi, offsets, generator)
        # Under autocast the features may be bf16/fp16 while the exemplar is not.
        warp = hrops.patchmatch_warp(theta, phi.to(theta.dtype), ref.to(theta.dtype), offsets,
                                     self.temperature, cocosnet_truncation=True, impl=self.impl)
        return offsets, warp


class Correspondence(NamedTuple):
    """warps: the exemplar warped at H/8, H/4, H/2 and H; offsets: (N, 2, K,
    h, w) (row, column) offsets into the exemplar per level (K = 1 at the
    dense level 0, 16 after; levels 1-3 as refined, fractional); indices:
    (N, K, h, w) flat exemplar positions they select (CoCosNet v2's
    matching_inds, its truncation included)."""
    warps: list
    offsets: list
    indices: list


def dense_match(theta, phi, ref, temperature):
    """Level 0: softmax over all exemplar positions of <theta_p, phi_q> / T:
    the warp and each pixel's best position (its argmax)."""
    n, c, h, w = theta.shape
    scores = torch.bmm(theta.flatten(2).transpose(1, 2), phi.flatten(2)) / temperature
    mat = torch.softmax(scores, dim=-1)
    warp = torch.bmm(ref.flatten(2), mat.transpose(1, 2)).view(n, ref.shape[1], h, w)
    return warp, mat.argmax(dim=-1).view(n, 1, h, w)


def initial_offsets(best, window=SEARCH_OFFSETS):
    """Coarser level's best flat index (N, 1, h, w) -> the 16 candidates
    (N, 2, 16, 2h, 2w) of the next level: doubled offsets plus a dilated
    window (row-offset major), nearest-upsampled."""
    base = target_offsets(best, best.shape[-1])
    d = torch.tensor(window, dtype=torch.float32, device=best.device)
    k = len(window)
    win = torch.stack((d.repeat_interleave(k), d.repeat(k)))  # (2, k*k)
    cand = 2 * base + win.view(1, 2, k * k, 1, 1)
    return cand.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)


class NoVGGHPMCorrespondence(nn.Module):
    def __init__(self, semantic_nc=20, nef=32, temperature=0.01, iterations=5, pono=True,
                 impl=None):
        super().__init__()
        self.temperature = temperature
        self.adaptive_model_seg = AdaptiveFeatureGenerator(semantic_nc, nef, pono)
        self.adaptive_model_img = AdaptiveFeatureGenerator(3 + semantic_nc, nef, pono)
        for i, cin in enumerate((4 * nef, 4 * nef, 2 * nef, nef)):
            setattr(self, f"phi_{i}", nn.Conv2d(cin, nef, 1))
            setattr(self, f"theta_{i}", nn.Conv2d(cin, nef, 1))
        self.patch_match = PatchMatchGRU(nef, temperature, iterations, impl)

    def features(self, seg_map, ref_img, ref_seg_map):
        """Matching features per level: lists theta (content), phi (exemplar)."""
        cont = self.adaptive_model_seg(seg_map, seg_map)
        ref_input = torch.cat((ref_img, ref_seg_map), dim=1)
        refs = self.adaptive_model_img(ref_input, ref_input)
        theta = [match_kernel_and_pono_c(getattr(self, f"theta_{i}")(feature_normalize(f)))
                 for i, f in enumerate(cont)]
        phi = [match_kernel_and_pono_c(getattr(self, f"phi_{i}")(feature_normalize(f)))
               for i, f in enumerate(refs)]
        return theta, phi

    def match(self, theta, phi, ref_img, generator=None):
        """The hierarchy on given features (4 levels, each twice the previous
        size, the last at ref_img's size): a Correspondence."""
        warps, offsets, indices = [], [], []
        for level, (t, p) in enumerate(zip(theta, phi)):
            ref = ref_img if level == 3 else F.avg_pool2d(ref_img, LEVEL_STRIDES[level])
            if level == 0:
                warp, idx = dense_match(t, p, ref, self.temperature)
                off = target_offsets(idx, idx.shape[-1])
            else:
                start = initial_offsets(indices[-1][:, :1]).to(t.dtype)
                off, warp = self.patch_match(t, p, ref, start, generator)
                idx = targets(off, *t.shape[-2:], cocosnet_truncation=True)
            warps.append(warp)
            offsets.append(off)
            indices.append(idx)
        return Correspondence(warps, offsets, indices)

    def forward(self, ref_img, seg_map, ref_seg_map, generator=None):
        """ref_img (N, 3, H, W), seg_map / ref_seg_map (N, semantic_nc, H, W)
        one-hot label maps, H and W divisible by 8: a Correspondence."""
        for name, t in (("ref_img", ref_img), ("seg_map", seg_map), ("ref_seg_map", ref_seg_map)):
            if t.dim() != 4 or t.shape[-2] % 8 or t.shape[-1] % 8:
                raise ValueError(f"{name} must be (N, C, H, W) with H and W divisible by 8, got "
                                 f"{tuple(t.shape)}")
        if seg_map.shape[-2:] != ref_img.shape[-2:] or ref_seg_map.shape[-2:] != ref_img.shape[-2:]:
            raise ValueError("seg_map, ref_img and ref_seg_map must have the same H, W")
        theta, phi = self.features(seg_map, ref_img, ref_seg_map)
        return self.match(theta, phi, ref_img, generator)


def load_correspondence_state_dict(model, state_dict):
    """Loads CoCosNet v2's netCorr state_dict (DataParallel 'module.'
    prefixes stripped); every weight must be present."""
    model.load_state_dict({k.removeprefix("module."): v for k, v in state_dict.items()}, strict=True)
    return model


def flow_to_rgb(offsets):
    """(2, H, W) (row, column) offsets -> (3, H, W) colours in [0, 1]: hue is
    the direction, saturation the length relative to the longest."""
    dy, dx = offsets[0].float(), offsets[1].float()
    mag = torch.sqrt(dx * dx + dy * dy)
    sat = mag / mag.max().clamp(min=1e-6)
    hue = (torch.atan2(-dy, -dx) / math.pi + 1) * 3  # [0, 6)
    k = (torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1) + hue) % 6
    return 1 - sat * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def label_map(path, semantic_nc):
    """Label-index PNG (class id as gray value) -> (1, semantic_nc, H, W) one-hot."""
    from .png_read import read_png
    labels = (read_png(path)[0] * 255).round().long()
    if labels.max() >= semantic_nc:
        raise SystemExit(f"{path}: label {int(labels.max())} >= semantic_nc {semantic_nc}")
    return F.one_hot(labels, semantic_nc).permute(2, 0, 1)[None].float()


def main(argv=None):
    from .cocosnet_v2_generator import CoCosNetV2
    from .png import write_png
    from .png_read import read_png
    p = argparse.ArgumentParser(description="CoCosNet v2: translate a label map in the style of "
                                            "an exemplar (PNG in, image / warp / flow PNG out)")
    p.add_argument("--corr", "--checkpoint", dest="corr",
                   help="netCorr state_dict (latest_net_Corr.pth); without it the weights are "
                        "random (for timing only)")
    p.add_argument("--gen", help="netG state_dict (latest_net_G.pth): --out is then the "
                                 "translated image, else the warped exemplar")
    p.add_argument("--seg", required=True, help="label map PNG of the target (class id as gray)")
    p.add_argument("--exemplar", required=True, help="exemplar RGB PNG, same size")
    p.add_argument("--exemplar-seg", required=True, help="label map PNG of the exemplar")
    p.add_argument("--semantic-nc", type=int, default=20)
    p.add_argument("--ngf", type=int, default=64, help="the generator's width (its --ngf)")
    p.add_argument("--out", default="out.png")
    p.add_argument("--warp", help="also write the finest warped exemplar")
    p.add_argument("--flow", help="also write the finest level's best offsets as a flow PNG")
    p.add_argument("--seed", type=int, default=0, help="seeds the propagation order")
    p.add_argument("--impl", default=None, help="hrops impl: auto, ref, cpu, cuda")
    args = p.parse_args(argv)
    load = lambda path: torch.load(path, map_location="cpu", weights_only=True)  # noqa: E731
    model = (CoCosNetV2(args.semantic_nc, ngf=args.ngf) if args.gen
             else NoVGGHPMCorrespondence(args.semantic_nc))
    if args.gen:
        model.load_state_dicts(corr=load(args.corr) if args.corr else None, gen=load(args.gen))
    elif args.corr:
        load_correspondence_state_dict(model, load(args.corr))
    use_impl(model.eval(), args.impl)
    ref_img = read_png(args.exemplar)[:3][None] * 2 - 1
    seg, ref_seg = label_map(args.seg, args.semantic_nc), label_map(args.exemplar_seg,
                                                                      args.semantic_nc)
    seed = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        if args.gen:
            image, out = model(seg, ref_img, ref_seg, seed)
            write_png(args.out, (image[0] + 1) / 2)
        else:
            out = model(ref_img, seg, ref_seg, seed)
            write_png(args.out, (out.warps[-1][0] + 1) / 2)
    if args.warp:
        write_png(args.warp, (out.warps[-1][0] + 1) / 2)
    if args.flow:
        write_png(args.flow, flow_to_rgb(out.offsets[-1][0, :, 0]))


if __name__ == "__main__":
    main()
