"""CoCosNet v2 at DeepFashionHD's size (512^2, 20 labels, nef 32, ngf 64, 5
PatchMatch iterations per level), fp32, batch 1, eval mode: hrops' models
against the same networks on the pure-PyTorch references ("ref":
vectorised gathers for PatchMatch, the reference gating for the SepConvGRU,
unfused SPADE modulation and leaky ReLU), from one state_dict.

- cocosnet_v2_corr: the correspondence network (python_models.cocosnet_v2);
- cocosnet_v2_generator: the translation generator on given warps
  (python_models.cocosnet_v2_generator.SPADEGenerator); its check compares
  the image;
- cocosnet_v2_pipeline: label map + exemplar -> image (CoCosNetV2), the
  two networks end to end.

The corr and pipeline checks compare the dense level's warp only: the
float32 step kernels differ from the reference in the last bits, and in
blocky label maps many PatchMatch candidates score the same up to rounding,
so a finer level can pick another of the tied candidates (float64 does not
help: measured at 128^2, levels 0-2 agree to 2e-14 and the finest level
differs at 32% of pixels); CoCosNet v2's float32 index truncation of the
GRU's fractional offsets and the GRU spread such a flip over the level.
tests/test_cocosnet_v2.py checks the network against CoCosNet v2's code and
the kernels with integer offsets, the ops are checked exactly in
tests/test_patchmatch.py, and the generator case checks the image the
pipeline's second half makes.
"""
import functools

import torch
import torch.nn.functional as F

from hrops.bench.harness import Case, Impl

CONFIGS = {"default": dict(size=512, semantic_nc=20, nef=32, ngf=64),
           "quick": dict(size=64, semantic_nc=4, nef=8, ngf=4)}
# The official forward's float32 image vs a copy of it differs by up to 1.4e-4
# (tests/test_cocosnet_v2_generator.py); "ref" here rounds like the official code.
IMAGE_TOLERANCE = dict(atol=5e-4, rtol=1e-3)


def cases(quick=False):
    cfg = CONFIGS["quick" if quick else "default"]
    size, labels = cfg["size"], cfg["semantic_nc"]

    def label_maps(gen):
        coarse = torch.randint(0, labels, (2, size // 32, size // 32), generator=gen)
        return F.interpolate(F.one_hot(coarse, labels).permute(0, 3, 1, 2).float(), size=size)

    def corr_inputs(device, dtype):
        gen = torch.Generator().manual_seed(0)
        seg = label_maps(gen)
        ref_img = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
        return tuple(t.to(device, dtype) for t in (ref_img, seg[:1], seg[1:]))

    def generator_inputs(device, dtype):
        gen = torch.Generator().manual_seed(0)
        seg = label_maps(gen)[:1]
        warps = [torch.rand(1, 3, size // s, size // s, generator=gen) * 2 - 1 for s in (8, 4, 2, 1)]
        return tuple(t.to(device, dtype) for t in [seg] + warps)

    def impls_of(run):
        def impls(device, dtype):
            try:
                model = _model(tuple(cfg.values()), device, dtype)
            except ImportError as e:
                return {name: Impl.missing(f"python_models not importable: {e}")
                        for name in ("hrops", "ref")}
            return {"hrops": Impl(run(model, "auto")), "ref": Impl(run(model, "ref"))}
        return impls

    label = f"B1x{size}^2xL{labels}xnef{cfg['nef']}"
    gen_label = f"B1x{size}^2xL{labels}xngf{cfg['ngf']}"
    # Whole models: no memory floor (fwd_bytes=None), forward only.
    return [Case("cocosnet_v2_corr", label, corr_inputs, impls_of(_run_corr), fwd_bytes=None,
                 bwd_bytes=None, tolerance=dict(atol=1e-5, rtol=1e-4)),
            Case("cocosnet_v2_generator", gen_label, generator_inputs, impls_of(_run_generator),
                 fwd_bytes=None, bwd_bytes=None, tolerance=IMAGE_TOLERANCE),
            Case("cocosnet_v2_pipeline", f"{label}xngf{cfg['ngf']}", corr_inputs,
                 impls_of(_run_pipeline), fwd_bytes=None, bwd_bytes=None,
                 tolerance=dict(atol=1e-5, rtol=1e-4))]


@functools.lru_cache(maxsize=1)
def _model(cfg, device, dtype):
    from python_models.cocosnet_v2_generator import CoCosNetV2
    _, semantic_nc, nef, ngf = cfg
    torch.manual_seed(0)
    return CoCosNetV2(semantic_nc, nef, ngf).to(device, dtype).eval()


def _run_corr(model, impl):
    from python_models.cocosnet_v2 import use_impl

    def run(ref_img, seg, ref_seg):
        use_impl(model, impl)
        with torch.no_grad():
            out = model.corr(ref_img, seg, ref_seg, torch.Generator().manual_seed(0))
        return out.warps[0]
    return run


def _run_generator(model, impl):
    from python_models.cocosnet_v2 import use_impl

    def run(seg, *warps):
        use_impl(model, impl)
        with torch.no_grad():
            return model.gen(seg, warps)
    return run


def _run_pipeline(model, impl):
    from python_models.cocosnet_v2 import use_impl

    def run(ref_img, seg, ref_seg):
        use_impl(model, impl)
        with torch.no_grad():
            _image, corr = model(seg, ref_img, ref_seg, torch.Generator().manual_seed(0))
        # Timed: the whole translation; checked: the dense level's warp (see
        # the module docstring; the image is checked by cocosnet_v2_generator).
        return corr.warps[0]
    return run
