"""The SEAN generator forward (python_models.sean), fp32, batch 1, eval mode:
hrops' model against the same network built from SEAN-style loop layers
(python_models.sean_reference, "ref"), from one state_dict with SEAN's init.

Default: SEAN's CelebAMask-HQ model (256^2, 19 labels, ngf 64, style 512;
~265 M parameters, ~1 GiB per model). Per-block times:
`python benchmarks/model_cases/sean.py [--quick] [--threads=N]`.
"""
import functools
import pathlib
import sys
from time import perf_counter

import torch

from hrops.bench.cases.region import face_labels
from hrops.bench.harness import Case, Impl

CONFIGS = {"default": dict(label_nc=19, ngf=64, crop_size=256, style_length=512),
           "quick": dict(label_nc=5, ngf=4, crop_size=64, style_length=16)}


def cases(quick=False):
    cfg = CONFIGS["quick" if quick else "default"]
    size, regions = cfg["crop_size"], cfg["label_nc"]

    def make_inputs(device, dtype):
        labels = face_labels(1, size, size, regions).to(device)
        seg = torch.nn.functional.one_hot(labels, regions).permute(0, 3, 1, 2).to(dtype)
        gen = torch.Generator(device).manual_seed(0)
        return seg, torch.rand((1, 3, size, size), generator=gen, device=device, dtype=dtype) * 2 - 1

    def impls(device, dtype):
        try:
            original, model = _models(tuple(sorted(cfg.items())), device, dtype)
        except ImportError as e:
            return {"hrops": Impl.missing(f"python_models not importable: {e}"),
                    "ref": Impl.missing(f"python_models not importable: {e}")}
        return {"hrops": Impl(_no_grad(model)), "ref": Impl(_no_grad(original))}

    label = f"B1x{size}^2xR{regions}xngf{cfg['ngf']}"
    # A whole model: no memory floor (fwd_bytes=None).
    return [Case("sean_generator", label, make_inputs, impls, fwd_bytes=None, bwd_bytes=None)]


def _no_grad(model):
    def run(seg, style):
        with torch.no_grad():
            return model(seg, style)
    return run


@functools.lru_cache(maxsize=1)
def _models(cfg, device, dtype):
    from python_models.sean import SEANGenerator, init_weights
    from python_models.sean_reference import reference_generator
    cfg = dict(cfg)
    torch.manual_seed(0)
    original = init_weights(reference_generator(**cfg)).to(device, dtype).eval()
    model = SEANGenerator(**cfg).to(device, dtype).eval()
    model.load_state_dict(original.state_dict())
    return original, model


def block_times(model, seg, style, runs=2):
    """Best seconds per stage of one forward: the encoder, each block, the rest."""
    stages = ["Zencoder", "fc", "head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2",
              "up_3", "conv_img"]
    best = {}
    for _ in range(runs):
        times = {}
        for name in stages:
            mod = getattr(model, name)
            mod.register_forward_pre_hook(lambda m, a, n=name: times.__setitem__(n, perf_counter()))
            mod.register_forward_hook(
                lambda m, a, o, n=name: times.__setitem__(n, perf_counter() - times[n]))
        start = perf_counter()
        with torch.no_grad():
            model(seg, style)
        times["total"] = perf_counter() - start
        for module in (getattr(model, n) for n in stages):
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
        best = {k: min(v, best.get(k, v)) for k, v in times.items()}
    return best


def main(argv):
    quick = "--quick" in argv
    threads = int(next((a.split("=")[1] for a in argv if a.startswith("--threads=")), 1))
    torch.set_num_threads(threads)
    cfg = CONFIGS["quick" if quick else "default"]
    case = cases(quick)[0]
    seg, style = case.make_inputs(torch.device("cpu"), torch.float32)
    original, model = _models(tuple(sorted(cfg.items())), torch.device("cpu"), torch.float32)
    with torch.no_grad():
        model(seg, style)  # warm-up
    ours, theirs = block_times(model, seg, style), block_times(original, seg, style, runs=1)
    print(f"SEAN generator forward, {case.size}, CPU, {threads} thread(s): best seconds")
    print(f"{'stage':<12}{'ref (loops)':>14}{'hrops':>10}{'speed-up':>10}")
    for name in theirs:
        print(f"{name:<12}{theirs[name]:>14.3f}{ours[name]:>10.3f}{theirs[name] / ours[name]:>10.1f}")


if __name__ == "__main__":
    sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))  # python_models, as in __init__
    main(sys.argv[1:])
