"""CoCosNet v2's hierarchical matching as its own code computes it
(microsoft/CoCosNet-v2 models/networks/patch_match.py, ops.py,
correspondence.py), written as a test oracle: separate offset_x (row) / offset_y
(column) maps, float flat indices truncated with .long(), the zero-padded
concatenation for propagation, a Python loop over candidates gathering
columns of a (C, N*H*W) view, softmax + topk, RAFT's SepConvGRU with separate
z, r, q convolutions, and the loop warp. Square maps only, as the original.

Index arithmetic runs in float32 (CoCosNet v2 runs in fp32) even when the
oracle's tensors are float64, so a float64 comparison is exact on indices.
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
