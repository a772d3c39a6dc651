"""CooGAN's patch-wise high-resolution edit (python_models.coogan.CooGAN.edit),
fp32, batch 1, one attribute switched on. Default: CooGAN's model (dim 32,
384^2 snapshot, 128^2 patches, 4 per batch) on 1024^2 and 2048^2 images.

hrops: the model on hrops' LSTU cells, allocating the output;
hrops(out=): the same writing into a preallocated output (as out=image does
when editing in place), so its peak MiB is the edit's working memory alone,
which should not grow with the image; ref: the same model on the reference
cells (impl="ref"), from one state_dict. No floor: a whole network.
"""
import functools

import torch

from hrops.bench.harness import Case, Impl

CONFIGS = {"default": dict(model=dict(dim=32, global_dim=32, snapshot_size=384, patch=128),
                           batch_patches=4, sizes=[1024, 2048]),
           "quick": dict(model=dict(dim=8, global_dim=8, snapshot_size=64, patch=64),
                         batch_patches=2, sizes=[128])}


def cases(quick=False):
    key = "quick" if quick else "default"
    return [_case(key, size) for size in CONFIGS[key]["sizes"]]


@functools.lru_cache(maxsize=1)
def _models(key, device, dtype):
    from python_models.coogan import CooGAN
    torch.manual_seed(0)
    model = CooGAN(**CONFIGS[key]["model"]).to(device, dtype).eval()
    ref = CooGAN(**CONFIGS[key]["model"], impl="ref").to(device, dtype).eval()
    ref.load_state_dict(model.state_dict())
    return model, ref


def _case(key, size):
    cfg = CONFIGS[key]
    batch_patches = cfg["batch_patches"]

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        image = torch.rand(1, 3, size, size, generator=gen, device=device, dtype=dtype) * 2 - 1
        attr = torch.zeros(1, 13, device=device, dtype=dtype)
        attr[0, 3] = 1
        return image, attr

    def impls(device, dtype):
        try:
            model, ref = _models(key, device, dtype)
        except ImportError as e:
            return {name: Impl.missing(f"python_models not importable: {e}")
                    for name in ("hrops", "hrops(out=)", "ref")}
        buffer = {}

        def edit(net, preallocated=False):
            def run(image, attr):
                if preallocated and "out" not in buffer:
                    buffer["out"] = torch.empty_like(image)
                return net.edit(image, attr, batch_patches=batch_patches,
                                out=buffer["out"] if preallocated else None)
            return Impl(run)
        return {"hrops": edit(model), "hrops(out=)": edit(model, preallocated=True),
                "ref": edit(ref)}

    m = cfg["model"]
    return Case("coogan_edit", f"B1x{size}^2,dim{m['dim']},patch{m['patch']}x{batch_patches}",
                make_inputs, impls, fwd_bytes=None, bwd_bytes=None,
                tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
