"""CoCosNet v2's correspondence network (python_models.cocosnet_v2), fp32,
batch 1, eval mode, 512^2 (DeepFashionHD's size: 20 labels, nef 32, 5
iterations per level): hrops' model against the same network on the
pure-PyTorch references ("ref": vectorised gathers for PatchMatch, the
reference gating for the SepConvGRU), from one state_dict.

The check compares the dense level's warp only: the float32 step kernels
differ from the reference in the last bits, which CoCosNet v2's float32
index truncation of the GRU's fractional offsets can turn into a
neighbouring pixel, and the GRU spreads such a flip over the level (with
random weights, most of it). tests/test_cocosnet_v2.py checks the network
against CoCosNet v2's code and the kernels with integer offsets; the ops are
checked exactly in tests/test_patchmatch.py.
"""
import functools

import torch
import torch.nn.functional as F

from hrops.bench.harness import Case, Impl

CONFIGS = {"default": dict(size=512, semantic_nc=20, nef=32),
           "quick": dict(size=32, semantic_nc=4, nef=8)}


def cases(quick=False):
    cfg = CONFIGS["quick" if quick else "default"]
    size, labels = cfg["size"], cfg["semantic_nc"]

    def make_inputs(device, dtype):
        gen = torch.Generator().manual_seed(0)
        coarse = torch.randint(0, labels, (2, size // 32, size // 32), generator=gen)
        seg = F.interpolate(F.one_hot(coarse, labels).permute(0, 3, 1, 2).float(), size=size)
        ref_img = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
        return tuple(t.to(device, dtype) for t in (ref_img, seg[:1], seg[1:]))

    def impls(device, dtype):
        try:
            model = _model(cfg["semantic_nc"], cfg["nef"], device, dtype)
        except ImportError as e:
            return {name: Impl.missing(f"python_models not importable: {e}")
                    for name in ("hrops", "ref")}
        return {"hrops": Impl(_run(model, "auto")), "ref": Impl(_run(model, "ref"))}

    label = f"B1x{size}^2xL{labels}xnef{cfg['nef']}"
    # A whole model: no memory floor (fwd_bytes=None).
    return [Case("cocosnet_v2_corr", label, make_inputs, impls, fwd_bytes=None, bwd_bytes=None,
                 tolerance=dict(atol=1e-5, rtol=1e-4))]


@functools.lru_cache(maxsize=1)
def _model(semantic_nc, nef, device, dtype):
    from python_models.cocosnet_v2 import NoVGGHPMCorrespondence
    torch.manual_seed(0)
    return NoVGGHPMCorrespondence(semantic_nc, nef).to(device, dtype).eval()


def _run(model, impl):
    from python_models.cocosnet_v2 import use_impl

    def run(ref_img, seg, ref_seg):
        use_impl(model, impl)
        with torch.no_grad():
            out = model(ref_img, seg, ref_seg, torch.Generator().manual_seed(0))
        return out.warps[0]
    return run
