"""CoCosNet v2 PatchMatch cases, fp32, batch 2, C = 32 unit features,
K = 16 candidates (48 after propagation), temperature 0.01
(microsoft/CoCosNet-v2: models/networks/patch_match.py,
options/base_options.py, README.md).

Peer "cocosnet_v2": CoCosNet v2's own formulation (PropagationFaster's
zero-padded concatenation, Evaluate's Python loop over the 48 candidates
gathering columns of a (C, N*H*W) view, softmax, topk), re-expressed here.
The step's check compares the sorted top-k probabilities only: CoCosNet's
topk orders exact ties (duplicate targets are common) arbitrarily, hrops by
candidate index (tests/test_patchmatch.py checks offsets exactly).

Floor (issue 5's definition): the bytes streamed (inputs read and outputs
written once) PLUS one C-vector of B read per evaluated candidate: 3K per
pixel for the step, K per pixel for the warp's forward and K more for its
backward (which re-scores the candidates, and must touch each candidate's
B and grad_B vectors). The candidate reads re-read B, so the bandwidth is
measured with a copy of half the streamed bytes, as for other cases; the
offsets here are random in [-8, 8] (real PatchMatch fields are coherent),
so most of those reads hit the cache anyway.
"""
import torch
import torch.nn.functional as F

import hrops
from hrops import ref

from ..harness import Case, Impl, compiled, nbytes

SIZES = {"default": [128, 256], "quick": [16]}
N, C, K, T, CR = 2, 32, 16, 0.01, 3


def cases(quick=False):
    sizes = SIZES["quick" if quick else "default"]
    return [_step_case(s) for s in sizes] + [_warp_case(s) for s in sizes]


def _inputs(hw, with_ref):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        a = F.normalize(torch.randn(N, C, hw, hw, generator=gen, device=device, dtype=dtype), dim=1)
        b = F.normalize(torch.randn(N, C, hw, hw, generator=gen, device=device, dtype=dtype), dim=1)
        off = torch.randint(-8, 9, (N, 2, K, hw, hw), generator=gen, device=device).to(dtype)
        if not with_ref:
            return a, b, off
        return a, b, torch.rand(N, CR, hw, hw, generator=gen, device=device, dtype=dtype), off
    return make_inputs


def _cocosnet_step(a, b, off):
    """Horizontal propagation + evaluation as CoCosNet v2 computes them."""
    n, k, h, w = off.shape[0], off.shape[2], off.shape[3], off.shape[4]
    z = torch.zeros(n, k, h, 1, device=a.device)
    prop = lambda o: torch.cat((torch.cat((z, o[..., :-1]), 3), o, torch.cat((o[..., 1:], z), 3)), 1)
    off_x, off_y = prop(off[:, 0]), prop(off[:, 1])
    xs = torch.arange(h, dtype=torch.float32, device=a.device).view(1, 1, h, 1)
    ys = torch.arange(w, dtype=torch.float32, device=a.device).view(1, 1, 1, w)
    inds = ((xs + off_x).clamp(0, h - 1) * w + (ys + off_y).clamp(0, w - 1))
    inds = inds.view(n, 3 * k, h * w).permute(0, 2, 1).long()
    inds = inds + (torch.arange(n, device=a.device) * h * w).view(-1, 1, 1)
    b_view = b.view(n, C, h * w).transpose(0, 1).contiguous().view(C, -1)
    a_flat = a.view(n, C, h * w)
    costs = []
    for i in range(3 * k):
        picked = b_view[:, inds[:, :, i].reshape(-1)].view(C, n, -1).transpose(0, 1)
        costs.append((a_flat * picked).sum(1, keepdim=True) / T)
    prob, top = torch.topk(F.softmax(torch.cat(costs, 1).transpose(1, 2), -1), k, dim=-1)
    return torch.gather(inds, -1, top), prob.permute(0, 2, 1)


def _candidate_reads(hw, candidates):
    """Bytes of one C-vector of B per evaluated candidate of every pixel."""
    return nbytes((N, hw, hw, candidates, C))


def _step_case(hw):
    px = N * hw * hw
    io = 2 * nbytes((N, C, hw, hw)) + nbytes((N, 2, K, hw, hw)) * 2 + nbytes((N, K, hw, hw))

    def impls(device, dtype):
        probs_only = lambda out: out[1]
        step = lambda impl: lambda a, b, o: hrops.patchmatch_step(a, b, o, "horizontal", T, impl=impl)
        return {
            "hrops": Impl(step("auto"), to_ref=probs_only),
            "ref": Impl(lambda a, b, o: step("ref")(a, b, o)[1]),
            "compile(ref)": compiled(lambda a, b, o: ref.patchmatch_step(a, b, o, "horizontal", T, K)[1]),
            "cocosnet_v2": Impl(_cocosnet_step, to_ref=lambda out: out[1].reshape(N, K, hw, hw)),
        }
    return Case("patchmatch_step", f"B{N}xC{C}x{hw}^2", _inputs(hw, False), impls,
                fwd_bytes=io + _candidate_reads(hw, 3 * K), bwd_bytes=None, bandwidth_bytes=io // 2,
                flops=2 * px * 3 * K * C, tolerance=dict(atol=1e-5, rtol=1e-3))


def _cocosnet_warp(a, b, r, off):
    """CoCosNet v2's final warp: Python loops over the K candidates."""
    n, k, h, w = off.shape[0], off.shape[2], off.shape[3], off.shape[4]
    xs = torch.arange(h, dtype=torch.float32, device=a.device).view(1, 1, h, 1)
    ys = torch.arange(w, dtype=torch.float32, device=a.device).view(1, 1, 1, w)
    inds = ((xs + off[:, 0]).clamp(0, h - 1) * w + (ys + off[:, 1]).clamp(0, w - 1))
    inds = inds.view(n, k, h * w).permute(0, 2, 1).long()
    inds = inds + (torch.arange(n, device=a.device) * h * w).view(-1, 1, 1)
    b_view = b.view(n, C, h * w).transpose(0, 1).contiguous().view(C, -1)
    a_flat = a.view(n, C, h * w)
    costs = [(a_flat * b_view[:, inds[:, :, i].reshape(-1)].view(C, n, -1).transpose(0, 1)).sum(1, keepdim=True) / T
             for i in range(k)]
    weight = F.softmax(torch.cat(costs, 1).transpose(1, 2), -1)
    r_view = r.transpose(0, 1).contiguous().view(CR, -1)
    warp = torch.zeros_like(r)
    for i in range(k):
        picked = r_view[:, inds[:, :, i].reshape(-1)].view(CR, n, -1).transpose(0, 1)
        warp = warp + (picked * weight[:, :, i].unsqueeze(1)).view_as(r)
    return warp


def _warp_case(hw):
    feats = 2 * nbytes((N, C, hw, hw)) + 2 * nbytes((N, CR, hw, hw))
    fwd = feats + nbytes((N, 2, K, hw, hw))
    bwd = nbytes((N, CR, hw, hw)) + feats  # read grad, write grad of A, B, ref

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda a, b, r, o: hrops.patchmatch_warp(a, b, r, o, T)),
            "ref": Impl(lambda a, b, r, o: ref.patchmatch_warp(a, b, r, o, T)),
            "compile(ref)": compiled(lambda a, b, r, o: ref.patchmatch_warp(a, b, r, o, T)),
            "cocosnet_v2": Impl(_cocosnet_warp),
        }
    return Case("patchmatch_warp", f"B{N}xC{C}x{hw}^2", _inputs(hw, True), impls,
                fwd_bytes=fwd + _candidate_reads(hw, K), bwd_bytes=bwd + _candidate_reads(hw, K),
                bandwidth_bytes=fwd // 2, tolerance=dict(scaled_atol=1e-4, rtol=1e-3),
                grad_inputs=(0, 1, 2))
