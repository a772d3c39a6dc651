"""Fused bias + leaky ReLU cases, fp32, at S2FGAN's sizes (Yan98/S2FGAN model.py
and train.py):
batch 4, the 256^2 decoder's 64 channels at 256^2 and 128 at 128^2 (the
FusedLeakyReLU after every StyledConv), and the (4, 512) EqualLinear output.

Peers: the fallback those code bases run on CPU (x + bias, leaky_relu, * scale
as three ops: hrops.ref) and torch.compile of it.
"""
import torch

import hrops
from hrops import ref

from ..harness import Case, Impl, compiled, nbytes

SHAPES = {
    "default": [(4, 64, 256, 256), (4, 128, 128, 128), (4, 512)],
    "quick": [(1, 8, 32, 32), (4, 64)],
}


def cases(quick=False):
    return [_case(shape) for shape in SHAPES["quick" if quick else "default"]]


def _label(shape):
    if len(shape) == 2:
        return f"B{shape[0]}xC{shape[1]}"
    return f"B{shape[0]}xC{shape[1]}x{shape[2]}^2"


def _case(shape):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(shape, generator=gen, device=device, dtype=dtype),
                torch.randn(shape[1], generator=gen, device=device, dtype=dtype))
    io = 2 * nbytes(shape)
    # The bias gradient sums N*H*W values: fp32 summation order differs by ~1e-5.
    return Case("fused_bias_leaky_relu", _label(shape), make_inputs, _impls, fwd_bytes=io,
                bwd_bytes=io, tolerance=dict(rtol=1e-4, atol=1e-3))


def _impls(device, dtype):
    return {
        "hrops": Impl(lambda x, b: hrops.fused_bias_leaky_relu(x, b, impl="auto")),
        "ref": Impl(lambda x, b: hrops.fused_bias_leaky_relu(x, b, impl="ref")),
        "compile(ref)": compiled(ref.fused_bias_leaky_relu),
    }
