"""bluestyle97/STGAN-pytorch's generator forward in eval (models/stgan.py,
`Generator`, configs/train_stgan.yaml: 10 attributes, dim 64, 5 layers, 3
STU levels), fp32, batch 1, at 128^2 and 256^2: hrops
(python_models.stgan_pytorch: BatchNorms folded into oneDNN-prepacked
convolutions, fused STU gating) against the original module graph
(python_models.stgan_pytorch_original, "ref") and torch.compile of it, from
one state_dict with randomized BatchNorm statistics. No memory floor: a
whole network.
"""
import functools

import torch

from hrops.bench.harness import Case, Impl, compiled

CONFIGS = {"default": dict(model=dict(conv_dim=64), sizes=[128, 256]),
           "quick": dict(model=dict(conv_dim=8), sizes=[64])}


def cases(quick=False):
    key = "quick" if quick else "default"
    return [_case(key, size) for size in CONFIGS[key]["sizes"]]


@functools.lru_cache(maxsize=1)
def _models(key, device, dtype):
    from python_models.stgan_pytorch import STGANPyTorchGenerator
    from python_models.stgan_pytorch_original import Generator
    torch.manual_seed(0)
    original = Generator(**CONFIGS[key]["model"])
    for m in original.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    model = STGANPyTorchGenerator(**CONFIGS[key]["model"])
    model.load_state_dict(original.state_dict())
    return (model.to(device, dtype).eval().requires_grad_(False),
            original.to(device, dtype).eval().requires_grad_(False))


def _case(key, size):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        image = torch.rand(1, 3, size, size, generator=gen, device=device, dtype=dtype) * 2 - 1
        attr = (torch.randint(-1, 2, (1, 10), generator=gen, device=device) * 0.5).to(dtype)
        return image, attr

    def impls(device, dtype):
        try:
            model, original = _models(key, device, dtype)
        except ImportError as e:
            return {name: Impl.missing(f"python_models not importable: {e}")
                    for name in ("hrops", "ref", "compile(ref)")}
        return {"hrops": Impl(model), "ref": Impl(original), "compile(ref)": compiled(original)}

    return Case("stgan_pytorch_generator",
                f"B1x{size}^2,dim{CONFIGS[key]['model']['conv_dim']}", make_inputs, impls,
                fwd_bytes=None, bwd_bytes=None, tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
