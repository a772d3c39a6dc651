"""Calls every hrops CUDA kernel forward and backward on small odd shapes,
empty and 1-pixel maps included: the program benchmarks/gpu_check.sh runs
under compute-sanitizer (memcheck over all of it, racecheck over the
families whose kernels use shared memory). The `triton` family, run on its
own (--ops triton), calls the Triton kernels the same way. With --device cpu
it makes the same calls on the CPU kernels, which checks this script
without a GPU.

    python benchmarks/gpu_check/sanitize_driver.py [--device cuda] [--ops region,modulated_idwt]
"""
import argparse
import sys

import torch

import hrops

DTYPES = (torch.float32, torch.float16, torch.float64)


class Driver:
    def __init__(self, device):
        self.device = torch.device(device)
        self.impl = "cuda" if self.device.type == "cuda" else "cpu"
        self.gen = torch.Generator(self.device).manual_seed(0)
        self.calls = 0

    def randn(self, *shape, dtype=torch.float32, grad=False):
        t = torch.randn(shape, generator=self.gen, device=self.device, dtype=dtype)
        return t.requires_grad_(grad)

    def labels(self, n, h, w, regions):
        return torch.randint(-1, regions, (n, h, w), generator=self.gen, device=self.device)

    def offsets(self, n, k, h, w, fractional=False):
        t = torch.randn((n, 2, k, h, w), generator=self.gen, device=self.device) * 3
        return t if fractional else t.round()

    def run(self, fn, *args, **kwargs):
        """fn(*args, **kwargs), then a backward from random output grads
        into the args that require grad (the backward kernels)."""
        out = fn(*args, impl=self.impl, **kwargs)
        outs = [o for o in (out if isinstance(out, (tuple, list)) else (out,))
                if isinstance(o, torch.Tensor) and o.requires_grad]
        if outs:
            torch.autograd.backward(outs, [torch.randn_like(o) for o in outs])
        self.calls += 1
        return out


def haar(d):
    for dtype in DTYPES:
        for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 1, 6), (2, 3, 6, 4), (0, 2, 3, 3),
                      (2, 1, 0, 4)):
            y = d.run(hrops.haar_dwt, d.randn(*shape, dtype=dtype, grad=True))
            d.run(hrops.haar_idwt, d.randn(*y.shape, dtype=dtype, grad=True),
                  output_size=shape[2:])
    d.run(hrops.haar_dwt, d.randn(2, 3, 7, 5).transpose(2, 3))  # strided input


def fused_bias_leaky_relu(d):
    for dtype in DTYPES:
        for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (3, 5), (0, 3, 4, 4), (2, 3, 0, 5)):
            x = d.randn(*shape, dtype=dtype, grad=True)
            d.run(hrops.fused_bias_leaky_relu, x, d.randn(shape[1], dtype=dtype, grad=True))
            d.run(hrops.fused_bias_leaky_relu, x)
        x = d.randn(2, 3, 5, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
        d.run(hrops.fused_bias_leaky_relu, x.requires_grad_(), d.randn(3, dtype=dtype, grad=True))


def upfirdn2d(d):
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=d.device)
    kernels = (torch.outer(taps, taps) / 64, d.randn(3, 3), d.randn(1, 5))
    geometries = (dict(up=2, pad=(2, 1)), dict(down=2, pad=(2, 2)), dict(pad=(2, 2)),
                  dict(up=3, down=2, pad=(3, 3)), dict(up=(2, 1), down=(1, 2), pad=(2, 2, 3, 1)))
    for dtype in DTYPES:
        for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (0, 2, 4, 4)):
            for kernel in kernels:
                for geometry in geometries:
                    d.run(hrops.upfirdn2d, d.randn(*shape, dtype=dtype, grad=True),
                          kernel.to(dtype), **geometry)


def region(d):
    for dtype in DTYPES:
        for n, c, h, w, regions in ((2, 3, 5, 7, 4), (1, 2, 1, 1, 3), (2, 3, 4, 6, 40),
                                    (0, 3, 4, 4, 4), (2, 3, 0, 5, 4)):
            labels = d.labels(n, h, w, regions)
            d.run(hrops.region_avg_pool, d.randn(n, c, h, w, dtype=dtype, grad=True), labels,
                  regions)
            codes = d.randn(n, regions, c, dtype=dtype, grad=True)
            d.run(hrops.region_broadcast, codes, labels)
            for k in (1, 3, 5):
                pad = k // 2 if h * w else k  # an empty map needs a kernel-sized pad
                d.run(hrops.region_conv2d, codes, labels, d.randn(4, c, k, k, dtype=dtype, grad=True),
                      d.randn(4, dtype=dtype, grad=True), pad)
            d.run(hrops.region_classes, labels, regions, 3, 1)


def ace(d):
    for dtype in DTYPES:
        # (1, 3, 97, 101): more than one of the backward's sum blocks, and a partial one
        for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (0, 3, 4, 4), (1, 3, 97, 101)):
            maps = [d.randn(*shape, dtype=dtype, grad=True) for _ in range(5)]
            d.run(hrops.ace_modulate, *maps[:3])
            d.run(hrops.ace_modulate, *maps, torch.rand(2, device=d.device, dtype=dtype))


def gates(d):
    for dtype in DTYPES:
        for shape in ((2, 3, 5, 7), (1, 1, 1, 1), (0, 3, 4, 4), (2, 3, 0, 4)):
            n, c, h, w = shape
            for layout in (torch.contiguous_format, torch.channels_last):
                def t(channels=c):
                    x = d.randn(n, channels, h, w, dtype=dtype)
                    return x.contiguous(memory_format=layout).requires_grad_()
                for activation in ("tanh", "relu"):
                    d.run(hrops.lstu_gates, t(), t(), t(2 * c), t(), activation)
                # an NCHW enc among channels-last operands
                d.run(hrops.lstu_gates, t(), t(), t(2 * c), d.randn(*shape, dtype=dtype, grad=True))
                d.run(hrops.stu_reset, t(), t())
                d.run(hrops.gru_update, t(), t(), t())
                d.run(hrops.stu_update, t(), t(), t())


def modulated_idwt(d):
    for dtype in DTYPES:
        for n, c4, h, w in ((2, 12, 3, 5), (1, 4, 1, 1), (1, 4, 17, 19), (0, 8, 2, 2),
                            (2, 4, 0, 3)):
            d.run(hrops.modulated_idwt_upsample, d.randn(n, c4, h, w, dtype=dtype, grad=True),
                  d.randn(n, c4, dtype=dtype, grad=True))
    d.run(hrops.modulated_idwt_upsample, d.randn(2, 8, 5, 3).transpose(2, 3), d.randn(2, 8))


def patchmatch(d):
    for n, c, h, w, hb, wb in ((2, 3, 5, 7, 4, 6), (1, 3, 1, 1, 1, 1), (1, 2, 6, 5, 9, 3),
                               (0, 3, 5, 7, 4, 6), (2, 3, 0, 7, 4, 6)):
        a, b = d.randn(n, c, h, w, grad=True), d.randn(n, c, hb, wb, grad=True)
        ref_img = d.randn(n, 3, hb, wb, grad=True)
        for trunc in (False, True):
            offsets = d.offsets(n, 2, h, w, fractional=trunc)
            for direction in ("none", "horizontal", "vertical"):
                d.run(hrops.patchmatch_step, a, b, offsets, direction, topk=1,
                      cocosnet_truncation=trunc)
            d.run(hrops.patchmatch_step, a, b, offsets, "horizontal", random_search=2,
                  generator=torch.Generator(d.device).manual_seed(0), cocosnet_truncation=trunc)
            d.run(hrops.patchmatch_warp, a, b, ref_img, offsets, cocosnet_truncation=trunc)


def modulated_dwconv(d):
    for dtype in (torch.float32, torch.float16):
        for n, cin, h, w, cout, k in ((2, 3, 5, 7, 4, 3), (1, 1, 1, 1, 1, 3), (1, 4, 1, 6, 2, 1),
                                      (1, 33, 9, 10, 17, 5), (0, 3, 4, 4, 2, 3), (2, 0, 4, 5, 3, 3),
                                      (2, 3, 4, 5, 0, 3)):
            def args():
                return (d.randn(n, cin, h, w, dtype=dtype, grad=True),
                        d.randn(n, cin, dtype=dtype, grad=True),
                        d.randn(cin, 1, k, k, dtype=dtype, grad=True),
                        d.randn(cout, cin, 1, 1, dtype=dtype, grad=True))
            d.run(hrops.modulated_dwconv2d, *args(), d.randn(cout, dtype=dtype, grad=True))
            d.run(hrops.modulated_dwconv2d, *args(), bias=d.randn(cout, dtype=dtype, grad=True),
                  noise=d.randn(1, 1, h, w, dtype=dtype),
                  noise_weight=d.randn(1, dtype=dtype, grad=True), negative_slope=0.2)
        x = d.randn(2, 5, 6, 7, dtype=dtype).contiguous(memory_format=torch.channels_last)
        d.run(hrops.modulated_dwconv2d, x.requires_grad_(), d.randn(2, 5, dtype=dtype),
              d.randn(5, 1, 3, 3, dtype=dtype), d.randn(3, 5, 1, 1, dtype=dtype, grad=True))


def triton(d):
    """The Triton kernels (on the CPU, the C++ kernels stand in for them)."""
    d.impl = "triton" if d.device.type == "cuda" else "cpu"
    try:
        haar(d)
        gates(d)
        modulated_dwconv(d)
    finally:
        d.impl = "cuda" if d.device.type == "cuda" else "cpu"


FAMILIES = {"haar": haar, "fused_bias_leaky_relu": fused_bias_leaky_relu, "upfirdn2d": upfirdn2d, "region": region,
            "ace": ace, "gates": gates, "modulated_idwt": modulated_idwt,
            "patchmatch": patchmatch, "triton": triton}
CUDA_FAMILIES = [f for f in FAMILIES if f != "triton"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--ops", default=",".join(CUDA_FAMILIES),
                   help=f"comma-separated kernel families of {','.join(FAMILIES)} (default: all "
                        f"but triton)")
    args = p.parse_args(argv)
    families = [f for f in args.ops.split(",") if f]
    if unknown := set(families) - set(FAMILIES):
        p.error(f"unknown families {sorted(unknown)}; choose from {','.join(FAMILIES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    d = Driver(args.device)
    for name in families:
        FAMILIES[name](d)
        if d.device.type == "cuda":
            torch.cuda.synchronize()
        print(f"{name}: done ({d.calls} calls so far)", flush=True)
    print(f"sanitize_driver: {d.calls} calls on {args.device} ({','.join(families)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
