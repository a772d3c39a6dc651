"""MobileStyleGAN cases, fp32, batch 2 unless noted (bes-dev/MobileStyleGAN.pytorch:
core/models/mobile_synthesis_network.py, core/models/modules/, and the
training batch of configs/mobile_stylegan_ffhq.json).

- modulated_dwconv2d at the student's big blocks: 64->64 @512^2, 128->128
  @256^2, 512->512 @64^2 (3x3, demodulated). Peer baseline: the original
  module's math (scale, grouped conv2d, 1x1 conv2d, demod), i.e. hrops.ref.
- modulated_idwt_upsample: 128 -> 32 channels to 512^2, 512 -> 128 to 128^2.

The whole generator: benchmarks/model_cases/mobilestylegan.py.
"""
import torch

import hrops
from hrops import ref

from ..harness import Case, Impl, compiled, nbytes

DWCONV = {"default": [(2, 64, 64, 512), (2, 128, 128, 256), (2, 512, 512, 64)],
          "quick": [(1, 8, 16, 32)]}
IDWT_UP = {"default": [(2, 128, 256), (2, 512, 64)], "quick": [(1, 16, 16)]}


def cases(quick=False):
    key = "quick" if quick else "default"
    return [_dwconv_case(*s) for s in DWCONV[key]] + [_idwt_up_case(*s) for s in IDWT_UP[key]]


def _seeded(*shapes, positive_last=False):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        ts = [torch.randn(s, generator=gen, device=device, dtype=dtype) for s in shapes]
        if positive_last:
            ts[-1] = ts[-1].abs() + 0.5
        return tuple(ts)
    return make_inputs


def _dwconv_case(n, cin, cout, hw):
    io = nbytes((n, cin, hw, hw)) + nbytes((n, cout, hw, hw))
    make = _seeded((n, cin, hw, hw), (n, cin), (cin, 1, 3, 3), (cout, cin, 1, 1), (cout,),
                   positive_last=True)
    flops = 2 * n * hw * hw * (9 * cin + cin * cout)

    def impls(device, dtype):
        return {
            "hrops": Impl(lambda *a: hrops.modulated_dwconv2d(*a, padding=1)),
            "hrops(triton)": (Impl(lambda *a: hrops.modulated_dwconv2d(*a, padding=1, impl="triton"))
                              if device.type == "cuda"
                              else Impl.missing("hrops' Triton kernels are benchmarked on CUDA only")),
            "ref": Impl(lambda *a: ref.modulated_dwconv2d(*a, padding=1)),
            "compile(ref)": compiled(lambda *a: ref.modulated_dwconv2d(*a, padding=1)),
        }
    # The weight gradients sum over N*H*W terms; fp32 implementations that sum
    # in different orders agree to ~1e-6 of the largest value (both are that
    # close to a float64 result: tests/test_modulated_ops.py).
    return Case("modulated_dwconv2d", f"B{n}x{cin}->{cout}x{hw}^2", make, impls, fwd_bytes=io,
                bwd_bytes=io, flops=flops, tolerance=dict(scaled_atol=2e-5, rtol=1e-4))


def _idwt_up_case(n, c4, hw):
    io = nbytes((n, c4, hw, hw)) + nbytes((n, c4 // 4, 2 * hw, 2 * hw))

    def impls(device, dtype):
        return {
            "hrops": Impl(hrops.modulated_idwt_upsample),
            "ref": Impl(ref.modulated_idwt_upsample),
            "compile(ref)": compiled(ref.modulated_idwt_upsample),
        }
    return Case("modulated_idwt_upsample", f"B{n}xC{c4}x{hw}^2", _seeded((n, c4, hw, hw), (n, c4)),
                impls, fwd_bytes=io, bwd_bytes=io, tolerance=dict(scaled_atol=2e-5, rtol=1e-4))
