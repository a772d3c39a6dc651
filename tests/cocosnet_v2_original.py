"""CoCosNet v2's hierarchical matching as its own code computes it
(microsoft/CoCosNet-v2 models/networks/patch_match.py, ops.py,
correspondence.py), written as a test oracle: separate offset_x (row) / offset_y
(column) maps, float flat indices truncated with .long(), the zero-padded
concatenation for propagation, a Python loop over candidates gathering
columns of a (C, N*H*W) view, softmax + topk, RAFT's SepConvGRU with separate
z, r, q convolutions, and the loop warp. Square maps only, as the original.

Index arithmetic runs in float32 (CoCosNet v2 runs in fp32) even when the
oracle's tensors are float64, so a float64 comparison is exact on indices.

Also its translation generator (generator.py, SPADEGenerator; architecture.py,
SPADEResnetBlock; normalization.py, SPADE) with its 512x512 sizes.
"""
import torch
import torch.nn.functional as F

from python_models.original_cells import OriginalSepConvGRU


def _grid(n, size, device):
    ar = torch.arange(size, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(ar, ar, indexing="ij")
    return rows.expand(n, 1, size, size), cols.expand(n, 1, size, size)


def inds_to_offset(inds):
    n, _, size, _ = inds.shape
    rows, cols = _grid(n, size, inds.device)
    return inds // size - rows, inds % size - cols


def offset_to_inds(off_x, off_y):
    n, _, size, _ = off_x.shape
    rows, cols = _grid(n, size, off_x.device)
    x = torch.clamp(rows + off_x.float(), 0, size - 1)
    y = torch.clamp(cols + off_y.float(), 0, size - 1)
    return x * size + y


def propagate(off, horizontal):
    dim = 3 if horizontal else 2
    zero = torch.zeros_like(off.narrow(dim, 0, 1))
    size = off.shape[dim]
    return torch.cat((torch.cat((zero, off.narrow(dim, 0, size - 1)), dim), off,
                      torch.cat((off.narrow(dim, 1, size - 1), zero), dim)), dim=1)


def _costs(left, right_view, inds, temperature):
    """left (N, C, HW), right_view (C, N*HW), inds (N, HW, M) long."""
    n, c, hw = left.shape
    base = (torch.arange(n, device=left.device) * hw).view(-1, 1, 1)
    costs = []
    for i in range(inds.shape[-1]):
        picked = right_view[:, (inds + base)[:, :, i].reshape(-1)].view(c, n, -1).transpose(0, 1)
        costs.append((left * picked).sum(1, keepdim=True) / temperature)
    return torch.cat(costs, dim=1).transpose(1, 2)  # (N, HW, M)


def evaluate(left, right_view, off_x, off_y, temperature):
    n, m, size, _ = off_x.shape
    inds = offset_to_inds(off_x, off_y).view(n, m, size * size).permute(0, 2, 1).long()
    prob, top = torch.topk(F.softmax(_costs(left, right_view, inds, temperature), dim=-1),
                           m // 3, dim=-1)
    best = torch.gather(inds, -1, top).permute(0, 2, 1).reshape(n, -1, size, size).float()
    x, y = inds_to_offset(best)
    return x.to(off_x.dtype), y.to(off_x.dtype), prob.permute(0, 2, 1)


def patch_match_gru(pm, theta, phi, ref, off_x, off_y, generator):
    """pm: a module with CoCosNet v2's PatchMatchGRU parameters. Returns
    (matching_inds (N, HW, 16) long, warp (N, 3, H, W))."""
    n, c, size, _ = theta.shape
    hidden = pm.initial_layer(torch.cat((theta, phi), dim=1))
    left = theta.reshape(n, c, -1)
    right_view = phi.reshape(n, c, -1).transpose(0, 1).reshape(c, -1)
    enc, head = pm.refine_net.encoder, pm.refine_net.flow_head
    for _ in range(pm.iterations):
        order = (True, False) if torch.rand((), generator=generator) < 0.5 else (False, True)
        for horizontal in order:
            off_x, off_y = propagate(off_x, horizontal), propagate(off_y, horizontal)
            off_x, off_y, corr = evaluate(left, right_view, off_x, off_y, pm.temperature)
        flow = torch.cat((off_x, off_y), dim=1)
        cor = F.relu(enc.convc2(F.relu(enc.convc1(corr.reshape(n, -1, size, size)))))
        flo = F.relu(enc.convf2(F.relu(enc.convf1(flow))))
        motion = torch.cat([F.relu(enc.conv(torch.cat([cor, flo], dim=1))), flow], dim=1)
        hidden = OriginalSepConvGRU.forward(pm.refine_net.gru, hidden, motion)
        delta = head.conv2(F.relu(head.conv1(hidden)))
        off_x, off_y = off_x + delta[:, :16], off_y + delta[:, 16:]
    m = off_x.shape[1]
    inds = offset_to_inds(off_x, off_y).view(n, m, -1).permute(0, 2, 1).long()
    weights = F.softmax(_costs(left, right_view, inds, pm.temperature), dim=-1)
    ref_view = ref.transpose(0, 1).reshape(ref.shape[1], -1)
    base = (torch.arange(n) * size * size).view(-1, 1, 1)
    warp = torch.zeros_like(ref.reshape(n, ref.shape[1], -1))
    for i in range(m):
        picked = ref_view[:, (inds + base)[:, :, i].reshape(-1)].view(ref.shape[1], n, -1)
        warp = warp + picked.transpose(0, 1) * weights[:, :, i].unsqueeze(1)
    return inds, warp.view_as(ref)


def initial_offsets(inds, coarse):
    """multi_scale_patch_match's initialisation from the coarser level's top-1."""
    n = inds.shape[0]
    inds = inds.permute(0, 2, 1).reshape(n, 1, coarse, coarse).float()
    off_x, off_y = inds_to_offset(inds)
    d = torch.arange(4) - 1
    dx = d.unsqueeze(1).expand(-1, 4).reshape(1, 16, 1, 1) * 2
    dy = d.unsqueeze(0).expand(4, -1).reshape(1, 16, 1, 1) * 2
    up = lambda t: F.interpolate(t, scale_factor=2)
    return up(2 * off_x + dx), up(2 * off_y + dy)


def multi_scale_match(pm, thetas, phis, ref_img, temperature, generator):
    """All four levels: (warps, matching indices per level)."""
    n = ref_img.shape[0]
    warps, pre = [], None
    for level, (theta, phi) in enumerate(zip(thetas, phis)):
        size = theta.shape[-1]
        ref = F.avg_pool2d(ref_img, 2 ** (3 - level)) if level < 3 else ref_img
        if level == 0:
            scores = torch.matmul(theta.reshape(n, -1, size * size).permute(0, 2, 1),
                                  phi.reshape(n, -1, size * size)) / temperature
            mat = F.softmax(scores, dim=-1)
            warps.append(torch.matmul(mat, ref.reshape(n, 3, -1).permute(0, 2, 1))
                         .permute(0, 2, 1).reshape(n, 3, size, size))
            pre = torch.topk(mat, 1, dim=-1)[1]
            continue
        off_x, off_y = (o.to(theta.dtype) for o in initial_offsets(pre[:, :, :1], size // 2))
        pre, warp = patch_match_gru(pm, theta, phi, ref, off_x, off_y, generator)
        warps.append(warp)
    return warps, pre


# --- the translation generator (models/networks/generator.py, architecture.py, normalization.py)

def _positional_norm_2d(x, epsilon=1e-8):
    mean = x.mean(dim=1, keepdim=True)
    std = x.var(dim=1, keepdim=True).add(epsilon).sqrt()
    return (x - mean) / std


class OriginalSPADE(torch.nn.Module):
    """SPADE('spadesyncbatch3x3', norm_nc, label_nc, PONO): reflection-padded
    3x3 convs, 128 hidden; PONO replaces the synchronized BatchNorm."""

    def __init__(self, norm_nc, label_nc, pono):
        super().__init__()
        nn = torch.nn
        self.param_free_norm = _positional_norm_2d if pono else nn.BatchNorm2d(norm_nc, affine=True)
        self.mlp_shared = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(label_nc, 128, 3, padding=0),
                                        nn.ReLU())
        self.pad = nn.ReflectionPad2d(1)
        self.mlp_gamma = nn.Conv2d(128, norm_nc, 3, padding=0)
        self.mlp_beta = nn.Conv2d(128, norm_nc, 3, padding=0)

    def forward(self, x, segmap):
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.size()[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        gamma = self.mlp_gamma(self.pad(actv))
        beta = self.mlp_beta(self.pad(actv))
        return normalized * (1 + gamma) + beta


class OriginalSPADEResnetBlock(torch.nn.Module):
    """SPADEResnetBlock with norm_G 'spectralspadesyncbatch3x3' (pad_type 'nozero')."""

    def __init__(self, fin, fout, ic, pono):
        super().__init__()
        nn, sn = torch.nn, torch.nn.utils.spectral_norm
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.pad = nn.ReflectionPad2d(1)
        self.conv_0 = sn(nn.Conv2d(fin, fmiddle, kernel_size=3, padding=0))
        self.conv_1 = sn(nn.Conv2d(fmiddle, fout, kernel_size=3, padding=0))
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(fin, fout, kernel_size=1, bias=False))
        self.norm_0 = OriginalSPADE(fin, ic, pono)
        self.norm_1 = OriginalSPADE(fmiddle, ic, pono)
        if self.learned_shortcut:
            self.norm_s = OriginalSPADE(fin, ic, pono)

    def forward(self, x, seg1):
        x_s = self.conv_s(self.norm_s(x, seg1)) if self.learned_shortcut else x
        dx = self.conv_0(self.pad(F.leaky_relu(self.norm_0(x, seg1), 2e-1)))
        dx = self.conv_1(self.pad(F.leaky_relu(self.norm_1(dx, seg1), 2e-1)))
        return x_s + dx


class OriginalSPADEGenerator(torch.nn.Module):
    """SPADEGenerator with crop_size 512, aspect_ratio 1: the warps resized to
    512x512 and the latent map to 16x16, as the official forward hard-codes."""

    def __init__(self, label_nc, ngf, pono):
        super().__init__()
        nf, ic = ngf, 4 * 3 + label_nc
        self.sw = self.sh = 512 // 2 ** 5
        self.fc = torch.nn.Conv2d(ic, 8 * nf, 3, padding=1)
        self.head_0 = OriginalSPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.G_middle_0 = OriginalSPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.G_middle_1 = OriginalSPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.up_0 = OriginalSPADEResnetBlock(8 * nf, 8 * nf, ic, pono)
        self.up_1 = OriginalSPADEResnetBlock(8 * nf, 4 * nf, ic, pono)
        self.up_2 = OriginalSPADEResnetBlock(4 * nf, 2 * nf, ic, pono)
        self.up_3 = OriginalSPADEResnetBlock(2 * nf, 1 * nf, ic, pono)
        self.conv_img = torch.nn.Conv2d(nf, 3, 3, padding=1)
        self.up = torch.nn.Upsample(scale_factor=2)

    def forward(self, input, warp_out):
        seg = torch.cat((F.interpolate(warp_out[0], size=(512, 512)),
                         F.interpolate(warp_out[1], size=(512, 512)),
                         F.interpolate(warp_out[2], size=(512, 512)), warp_out[3], input), dim=1)
        x = F.interpolate(seg, size=(self.sh, self.sw))
        x = self.fc(x)
        x = self.head_0(x, seg)
        x = self.up(x)
        x = self.G_middle_0(x, seg)
        x = self.G_middle_1(x, seg)
        x = self.up(x)
        x = self.up_0(x, seg)
        x = self.up(x)
        x = self.up_1(x, seg)
        x = self.up(x)
        x = self.up_2(x, seg)
        x = self.up(x)
        x = self.up_3(x, seg)
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.tanh(x)
