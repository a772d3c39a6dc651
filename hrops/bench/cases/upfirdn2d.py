"""upfirdn2d cases, fp32, StyleGAN2's blur [1, 3, 3, 1] at S2FGAN's sizes
(Yan98/S2FGAN model.py and train.py; batch 4, 256^2 output, 64 channels at
256^2):
  up2    rosinality's Upsample (kernel * 4, pad (2, 1)): 128^2 -> 256^2
  down2  rosinality's Downsample (pad (1, 1)): 256^2 -> 128^2 (encoder)
  blur   the Blur after the 3x3 stride-2 transposed conv of an upsampling
         ModulatedConv2d (kernel * 4, pad (1, 1)): 257^2 -> 256^2

Peers: the explicit zero-insert + pad + conv2d + stride construction (hrops.ref,
the same ops as rosinality's CPU fallback) and torch.compile of it.
"""
import torch

import hrops
from hrops import ref

from ..harness import Case, Impl, compiled, nbytes

SHAPES = {  # (label, input shape, up, down, pad, kernel gain)
    "default": [("up2", (4, 64, 128, 128), 2, 1, (2, 1), 4.0),
                ("down2", (4, 64, 256, 256), 1, 2, (1, 1), 1.0),
                ("blur", (4, 64, 257, 257), 1, 1, (1, 1), 4.0)],
    "quick": [("up2", (1, 8, 16, 16), 2, 1, (2, 1), 4.0),
              ("down2", (1, 8, 32, 32), 1, 2, (1, 1), 1.0)],
}


def cases(quick=False):
    return [_case(*spec) for spec in SHAPES["quick" if quick else "default"]]


def blur_kernel(gain):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


def _case(label, shape, up, down, pad, gain):
    n, c, h, w = shape
    out_h = (h * up + pad[0] + pad[1] - 4) // down + 1
    out_w = (w * up + pad[0] + pad[1] - 4) // down + 1

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(shape, generator=gen, device=device, dtype=dtype),)

    def impls(device, dtype):
        k = blur_kernel(gain).to(device, dtype)
        args = (up, up, down, down, pad[0], pad[1], pad[0], pad[1])
        return {
            "hrops": Impl(lambda x: hrops.upfirdn2d(x, k, up, down, pad, impl="auto")),
            "ref": Impl(lambda x: hrops.upfirdn2d(x, k, up, down, pad, impl="ref")),
            "compile(ref)": compiled(lambda x: ref.upfirdn2d(x, k, *args)),
        }
    io = nbytes(shape) + nbytes((n, c, out_h, out_w))
    size = f"{label}:B{n}xC{c}x{h}^2"
    return Case("upfirdn2d", size, make_inputs, impls, fwd_bytes=io, bwd_bytes=io,
                flops=2 * 16 * n * c * out_h * out_w // (up * up))
