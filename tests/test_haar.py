"""Haar DWT/IDWT: every kernel against the reference, the reference against
PyWavelets and pytorch_wavelets, autograd, layouts, dtypes, errors."""
import numpy as np
import pytest
import torch

import hrops
from hrops import ref
from impls import interpreted, kernel_impls

SHAPES = [(2, 3, 8, 10), (1, 2, 7, 5), (1, 1, 1, 1), (2, 4, 2, 3), (1, 3, 33, 64)]
TOL = {torch.float32: dict(atol=1e-6, rtol=1e-6), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=1.6e-2, rtol=1.6e-2)}


def _layouts(x):
    """The same values as contiguous, channels_last and a strided view."""
    n, c, h, w = x.shape
    wide = torch.zeros(n, c + 1, h, 2 * w, dtype=x.dtype)
    wide[:, 1:, :, ::2] = x
    return {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last),
            "strided": wide[:, 1:, :, ::2]}


# --- the reference against outside oracles -------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 2, 6, 8), (2, 1, 5, 7), (1, 1, 1, 4)])
def test_ref_matches_pywavelets(shape):
    pywt = pytest.importorskip("pywt")
    x = torch.randn(shape, dtype=torch.float64)
    y = ref.haar_dwt(x)
    c = shape[1]
    for n in range(shape[0]):
        for ch in range(c):
            ll, (ch_h, ch_v, ch_d) = pywt.dwt2(x[n, ch].numpy(), "haar", mode="zero")
            np.testing.assert_allclose(y[n, ch].numpy(), ll, atol=1e-12)
            # fbcotter/pytorch_wavelets DWTForward (db1) bands:
            # LH = pywt cH, HL = pywt cV, HH = pywt cD.
            for band, expected in enumerate((ch_h, ch_v, ch_d)):
                np.testing.assert_allclose(y[n, c + 3 * ch + band].numpy(), expected, atol=1e-12)
            back = pywt.idwt2((ll, (ch_h, ch_v, ch_d)), "haar", mode="zero")
            np.testing.assert_allclose(ref.haar_idwt(y[n:n + 1, :c], y[n:n + 1, c:].unflatten(
                1, (c, 3)), *back.shape)[0, ch].numpy(), back, atol=1e-12)


def _pytorch_wavelets():
    pytest.importorskip("pkg_resources", reason="pytorch_wavelets needs setuptools<81")
    return pytest.importorskip("pytorch_wavelets")


@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 2, 7, 5)])
def test_ref_matches_pytorch_wavelets(shape):
    pw = _pytorch_wavelets()
    x = torch.randn(shape, dtype=torch.float64)
    yl, yh = pw.DWTForward(J=1, wave="haar", mode="zero").double()(x)
    y = ref.haar_dwt(x)
    c = shape[1]
    torch.testing.assert_close(y[:, :c], yl)
    torch.testing.assert_close(y[:, c:].unflatten(1, (c, 3)), yh[0])
    back = pw.DWTInverse(wave="haar", mode="zero").double()((yl, yh))
    torch.testing.assert_close(ref.haar_idwt(yl, yh[0], *back.shape[-2:]), back)


# --- every kernel against the reference -------------------------------------------------------

def _dtypes(impl, device):
    # The Triton interpreter mishandles bf16 (triton-lang/triton#4972).
    if interpreted(impl, device):
        return [torch.float32, torch.float64, torch.float16]
    return list(TOL)


@pytest.mark.parametrize("impl,device", kernel_impls())
@pytest.mark.parametrize("shape", SHAPES)
def test_dwt_matches_ref(impl, device, shape):
    for dtype in _dtypes(impl, device):
        x = torch.randn(shape, dtype=torch.float64).to(dtype)
        # Half types accumulate in fp32 and round once.
        expected = ref.haar_dwt(x.double()).to(dtype)
        for layout, xl in _layouts(x).items():
            y = hrops.haar_dwt(xl.to(device), impl=impl)
            assert y.dtype == dtype and y.is_contiguous()
            torch.testing.assert_close(y.cpu(), expected, **TOL[dtype],
                                       msg=lambda m: f"{dtype} {layout}: {m}")


@pytest.mark.parametrize("impl,device", kernel_impls())
@pytest.mark.parametrize("shape", SHAPES)
def test_idwt_matches_ref(impl, device, shape):
    n, c, height, width = shape
    h, w = (height + 1) // 2, (width + 1) // 2
    for dtype in _dtypes(impl, device):
        y = torch.randn(n, 4 * c, h, w, dtype=torch.float64).to(dtype)
        low, high = y[:, :c], y[:, c:].unflatten(1, (c, 3))
        for out in ((2 * h, 2 * w), (height, width)):
            expected = ref.haar_idwt(low.double(), high.double(), *out).to(dtype)
            for layout, yl in _layouts(y).items():
                got = hrops.haar_idwt(yl.to(device), out, impl=impl)
                torch.testing.assert_close(got.cpu(), expected, **TOL[dtype],
                                           msg=lambda m: f"{dtype} {layout} {out}: {m}")
            # pytorch_wavelets' layout: separate low and high with their own strides.
            got = hrops.haar_idwt_bands(low.to(device), high.transpose(0, 1).contiguous()
                                        .transpose(0, 1).to(device), out, impl=impl)
            torch.testing.assert_close(got.cpu(), expected, **TOL[dtype])


@pytest.mark.parametrize("impl,device", kernel_impls())
def test_round_trip_is_identity(impl, device):
    x = torch.randn(2, 3, 9, 14, dtype=torch.float64, device=device)
    y = hrops.haar_dwt(x, impl=impl)
    torch.testing.assert_close(hrops.haar_idwt(y, x.shape[-2:], impl=impl), x)
    torch.testing.assert_close(hrops.haar_dwt(hrops.haar_idwt(y, impl=impl), impl=impl), y)


@pytest.mark.parametrize("impl,device", kernel_impls())
@pytest.mark.parametrize("shape", [(0, 3, 8, 8), (2, 0, 8, 8), (1, 2, 0, 0)])
def test_empty(impl, device, shape):
    x = torch.randn(shape, device=device)
    y = hrops.haar_dwt(x, impl=impl)
    assert y.shape == (shape[0], 4 * shape[1], (shape[2] + 1) // 2, (shape[3] + 1) // 2)
    assert hrops.haar_idwt(y, shape[-2:], impl=impl).shape == shape


def test_cpu_kernel_parallel_paths():
    x = torch.randn(3, 5, 130, 67)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        y = hrops.haar_dwt(x, impl="cpu")
        back = hrops.haar_idwt(y, x.shape[-2:], impl="cpu")
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(y, ref.haar_dwt(x), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(back, x, atol=1e-6, rtol=1e-6)


def test_cpu_output_cache_reuses_blocks_safely():
    x = torch.randn(2, 8, 256, 256)  # 4 MiB output: uses the huge-page block cache
    expected = ref.haar_dwt(x)
    outs = [hrops.haar_dwt(x + i, impl="cpu") for i in range(3)]  # live at once: distinct blocks
    ptrs = {o.data_ptr() for o in outs}
    assert len(ptrs) == 3
    for i, o in enumerate(outs):
        torch.testing.assert_close(o, ref.haar_dwt(x + i), atol=1e-5, rtol=1e-5)
    del outs, o
    again = hrops.haar_dwt(x, impl="cpu")
    assert again.data_ptr() in ptrs  # a freed block of the same size is reused
    torch.testing.assert_close(again, expected, atol=1e-6, rtol=1e-6)
    del again
    assert hrops.empty_cache() > 0
