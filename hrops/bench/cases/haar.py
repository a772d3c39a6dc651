"""Haar DWT/IDWT cases, fp32.

Sizes from MobileStyleGAN (bes-dev/MobileStyleGAN.pytorch:
core/models/mobile_synthesis_network.py, core/loss/distiller_loss.py,
configs/mobile_stylegan_ffhq.json, generate.py): its generator's IDWTs, the
128 -> 32-channel feature upsampling to 512^2 and the final 12 -> 3-channel
image to 1024^2, and the DWTs that invert them (the distillation loss).
Peer: pytorch_wavelets, which MobileStyleGAN uses (DWTForward/DWTInverse, J=1,
'haar', mode 'zero': the same transform in (low, [high]) layout).
"""
import warnings

import torch

import hrops
from hrops import _backends, ref

from ..harness import Case, Impl, compiled, nbytes

SHAPES = {  # (op, input shape (N, C, H, W)); size labels name the input too
    "default": [("haar_dwt", (2, 32, 512, 512)), ("haar_dwt", (2, 3, 1024, 1024)),
                ("haar_idwt", (2, 128, 256, 256)), ("haar_idwt", (2, 12, 512, 512))],
    "quick": [("haar_dwt", (1, 4, 64, 64)), ("haar_idwt", (1, 16, 32, 32))],
}


def cases(quick=False):
    return [(_dwt_case if op == "haar_dwt" else _idwt_case)(shape)
            for op, shape in SHAPES["quick" if quick else "default"]]


def _label(shape):
    n, c, h, w = shape
    return f"B{n}xC{c}x{h}^2" if h == w else f"B{n}xC{c}x{h}x{w}"


def _randn(shape):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(shape, generator=gen, device=device, dtype=dtype),)
    return make_inputs


def _split(y):
    """Packed (N, 4C, h, w) -> views low (N, C, h, w), high (N, C, 3, h, w)."""
    c = y.shape[1] // 4
    return y[:, :c], y[:, c:].unflatten(1, (c, 3))


def _ref_idwt(y):
    low, high = _split(y)
    return ref.haar_idwt(low, high, 2 * low.shape[2], 2 * low.shape[3])


def _triton(op, device):
    if device.type != "cuda":
        return Impl.missing("hrops' Triton kernels are benchmarked on CUDA only")
    if not _backends.available("triton", device):
        return Impl.missing("triton is not installed")
    return Impl(lambda t: op(t, impl="triton"))


def _pytorch_wavelets(make):
    """make(pytorch_wavelets), or a missing Impl saying why it doesn't import."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pkg_resources import warns
            import pytorch_wavelets
    except ImportError as e:  # not installed, or setuptools>=81 (no pkg_resources)
        return Impl.missing(f"pytorch_wavelets does not import: {e}")
    return make(pytorch_wavelets)


def _dwt_case(shape):
    n, c, h, w = shape
    io = nbytes(shape) + nbytes((n, 4 * c, (h + 1) // 2, (w + 1) // 2))
    return Case("haar_dwt", _label(shape), _randn(shape), _dwt_impls, fwd_bytes=io, bwd_bytes=io)


def _dwt_impls(device, dtype):
    def peer(pw):
        dwt = pw.DWTForward(J=1, wave="haar", mode="zero").to(device, dtype)
        return Impl(dwt, to_ref=lambda out: torch.cat((out[0], out[1][0].flatten(1, 2)), dim=1))
    return {
        "hrops": Impl(lambda x: hrops.haar_dwt(x, impl="auto")),
        "hrops(triton)": _triton(hrops.haar_dwt, device),
        "ref": Impl(lambda x: hrops.haar_dwt(x, impl="ref")),
        "compile(ref)": compiled(ref.haar_dwt),
        "pytorch_wavelets": _pytorch_wavelets(peer),
    }


def _idwt_case(shape):
    n, c4, h, w = shape
    io = nbytes(shape) + nbytes((n, c4 // 4, 2 * h, 2 * w))
    return Case("haar_idwt", _label(shape), _randn(shape), _idwt_impls, fwd_bytes=io, bwd_bytes=io)


def _idwt_impls(device, dtype):
    def peer(pw):
        idwt = pw.DWTInverse(wave="haar", mode="zero").to(device, dtype)

        def run(y):
            low, high = _split(y)
            return idwt((low, [high]))
        return Impl(run)
    return {
        "hrops": Impl(lambda y: hrops.haar_idwt(y, impl="auto")),
        "hrops(triton)": _triton(hrops.haar_idwt, device),
        "ref": Impl(lambda y: hrops.haar_idwt(y, impl="ref")),
        "compile(ref)": compiled(_ref_idwt),
        "pytorch_wavelets": _pytorch_wavelets(peer),
    }
