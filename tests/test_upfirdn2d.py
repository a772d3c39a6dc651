"""upfirdn2d: the reference against a per-sample loop written from the
definition, every kernel against the reference (separable fast path and
general path, up/down in {1, 2, 4}, odd kernels, asymmetric and negative pads,
dtypes, layouts), gradients of first and second order, opcheck, compile, errors."""
import itertools

import numpy as np
import pytest
import torch

import hrops
from hrops import ref
from impls import kernel_impls

IMPLS = [p for p in kernel_impls() if p.values[0] != "triton"]
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=4e-3, rtol=4e-3), torch.bfloat16: dict(atol=3e-2, rtol=3e-2)}


def _blur(k=(1, 3, 3, 1)):
    k = torch.tensor(k, dtype=torch.float64)
    k = k[None, :] * k[:, None]
    return k / k.sum()


KERNELS = {
    "blur4": _blur(),                                    # separable, even (StyleGAN2's)
    "sep3x5": torch.outer(torch.tensor([1., 2., 0.5], dtype=torch.float64),
                          torch.tensor([0.3, -1., 2., 0.7, 0.1], dtype=torch.float64)),
    "rand3": torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
    "rand5x2": torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64),
    "one": torch.ones(1, 1, dtype=torch.float64),
}

# (up, down, pad) with pad as (x0, x1, y0, y1); includes rosinality's
# Upsample/Downsample/Blur pads for the 4-tap blur and crops.
CONFIGS = [
    ((1, 1), (1, 1), (1, 2, 1, 2)), ((2, 2), (1, 1), (2, 1, 2, 1)), ((1, 1), (2, 2), (1, 1, 1, 1)),
    ((4, 4), (1, 1), (3, 2, 0, 4)), ((1, 1), (4, 4), (0, 3, 2, 1)), ((2, 2), (2, 2), (1, 2, 3, 0)),
    ((4, 4), (2, 2), (-1, 3, 2, -2)), ((2, 2), (4, 4), (3, 3, -1, 0)), ((1, 2), (2, 1), (1, 0, 2, 2)),
    ((1, 1), (1, 1), (-1, -2, 0, 1)),
]


def _naive(x, kernel, up, down, pad):
    """out[o] = sum_t u[o*down + t] * kernel[k-1-t] per dimension, one sample at a time."""
    (up_x, up_y), (down_x, down_y), (x0, x1, y0, y1) = up, down, pad
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    out_h = (h * up_y + y0 + y1 - kh) // down_y + 1
    out_w = (w * up_x + x0 + x1 - kw) // down_x + 1
    out = x.new_zeros(n, c, out_h, out_w)
    for oy, ox, ty, tx in itertools.product(range(out_h), range(out_w), range(kh), range(kw)):
        py, px = oy * down_y + ty - y0, ox * down_x + tx - x0
        if 0 <= py < h * up_y and 0 <= px < w * up_x and py % up_y == 0 and px % up_x == 0:
            out[:, :, oy, ox] += x[:, :, py // up_y, px // up_x] * kernel[kh - 1 - ty, kw - 1 - tx]
    return out


def _fits(x, kernel, up, down, pad):
    return (x.shape[2] * up[1] + pad[2] + pad[3] >= kernel.shape[0]
            and x.shape[3] * up[0] + pad[0] + pad[1] >= kernel.shape[1])


def _call_ref(x, kernel, up, down, pad):
    return ref.upfirdn2d(x, kernel, up[0], up[1], down[0], down[1], *pad)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", ["sep3x5", "rand5x2"])
def test_ref_matches_per_sample_definition(config, name):
    x = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    if not _fits(x, KERNELS[name], *config):
        pytest.skip("padded input smaller than the kernel")
    torch.testing.assert_close(_call_ref(x, KERNELS[name], *config),
                               _naive(x, KERNELS[name], *config))


def test_convolves_rather_than_correlates():
    # A unit impulse comes out as the kernel itself, not its mirror image.
    k = KERNELS["rand3"]
    x = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    x[0, 0, 0, 0] = 1
    for impl in ("ref", "cpu"):
        y = hrops.upfirdn2d(x, k, pad=(2, 2), impl=impl)
        torch.testing.assert_close(y[0, 0], k)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", list(KERNELS))
def test_matches_ref(impl, device, config, name):
    up, down, pad = config
    kernel = KERNELS[name]
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    if not _fits(x, kernel, up, down, pad):
        pytest.skip("padded input smaller than the kernel")
    expected = _call_ref(x, kernel, up, down, pad)
    for dtype, tol in TOL.items():
        y = hrops.upfirdn2d(x.to(dtype).to(device), kernel.to(dtype).to(device), up, down, pad,
                            impl=impl)
        want = _call_ref(x.to(dtype).double(), kernel.to(dtype).double(), up, down, pad)
        assert y.shape == expected.shape and y.dtype == dtype
        torch.testing.assert_close(y.cpu(), want.to(dtype), **tol)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("config", [((2, 2), (1, 1), (2, 1, 2, 1)), ((1, 1), (2, 2), (1, 1, 1, 1)),
                                    ((1, 1), (1, 1), (1, 2, 1, 1)), ((2, 2), (1, 1), (-3, 4, 1, 2)),
                                    ((1, 1), (2, 2), (4, -2, 0, 1)), ((4, 4), (1, 1), (3, 2, 1, 0))])
@pytest.mark.parametrize("name", ["blur4", "sep3x5"])
def test_matches_ref_wide_rows(impl, device, config, name):
    # Rows long enough for the vector loops of the separable path, with tails.
    up, down, pad = config
    x = torch.randn(1, 2, 5, 45, dtype=torch.float64)
    kernel = KERNELS[name]
    for dtype, tol in TOL.items():
        y = hrops.upfirdn2d(x.to(dtype).to(device), kernel.to(dtype).to(device), up, down, pad,
                            impl=impl)
        want = _call_ref(x.to(dtype).double(), kernel.to(dtype).double(), up, down, pad)
        torch.testing.assert_close(y.cpu(), want.to(dtype), **tol)


def test_streamed_output_matches_small_calls():
    # An output of tens of MiB takes the CPU kernel's streaming stores (odd
    # width: rows start unaligned); per-channel calls with small outputs don't.
    if not hrops.build_info()["cpu_kernels"]:
        pytest.skip("no CPU kernels")
    x, k = torch.randn(1, 64, 128, 320), _blur().float() * 4
    y = hrops.upfirdn2d(x, k, 2, 1, (2, 2), impl="cpu")
    assert y.nbytes > 40 << 20 and y.shape[3] % 2 == 1
    for c in range(0, 64, 8):
        assert torch.equal(y[:, c:c + 8], hrops.upfirdn2d(x[:, c:c + 8], k, 2, 1, (2, 2), impl="cpu"))


@pytest.mark.parametrize("impl,device", IMPLS)
def test_layouts_and_kernel_dtype(impl, device):
    x = torch.randn(2, 3, 8, 10, device=device)
    k = _blur().float().to(device)
    expected = hrops.upfirdn2d(x, k, 2, 1, (2, 1), impl="ref")
    wide = torch.zeros(2, 6, 8, 20, device=device)
    wide[:, ::2, :, ::2] = x
    for xl in (x.contiguous(memory_format=torch.channels_last),
               x.transpose(2, 3).contiguous().transpose(2, 3), wide[:, ::2, :, ::2]):
        torch.testing.assert_close(hrops.upfirdn2d(xl, k, 2, 1, (2, 1), impl=impl), expected)
    # A float64 filter on float32 data (a buffer kept in another precision).
    torch.testing.assert_close(hrops.upfirdn2d(x, k.double(), 2, 1, (2, 1), impl=impl), expected)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("name", ["blur4", "rand3"])
def test_crop_past_the_input(impl, device, name):
    # The left crop removes every input column, the right pad keeps a window.
    x, k = torch.randn(1, 2, 5, 3, dtype=torch.float64), KERNELS[name]
    pad = (-5, 2 + k.shape[1], 1, 1)
    y = hrops.upfirdn2d(x.to(device), k.to(device), 1, 1, pad, impl=impl)
    torch.testing.assert_close(y.cpu(), _call_ref(x, k, (1, 1), (1, 1), pad))
    assert not y.any()


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("name", ["blur4", "sep3x5"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("down", [1, 2])
def test_non_finite_kernel_tap(impl, device, name, value, down):
    """A separable kernel with a NaN or inf tap is no longer rank-1: without
    padding every output sees that tap over data, as in the reference."""
    x, k = torch.randn(2, 3, 9, 11, dtype=torch.float64), KERNELS[name].clone()
    k[k.shape[0] - 1, 0] = value
    y = hrops.upfirdn2d(x.float().to(device), k.float().to(device), 1, down, (0, 0), impl=impl)
    expected = _call_ref(x, k, (1, 1), (down, down), (0, 0, 0, 0)).float()
    assert not y.isfinite().any()
    assert torch.equal(y.isnan().cpu(), expected.isnan())
    assert torch.equal(y.isinf().cpu(), expected.isinf())


@pytest.mark.parametrize("impl,device", IMPLS)
def test_empty(impl, device):
    k = _blur().float().to(device)
    y = hrops.upfirdn2d(torch.randn(0, 3, 8, 8, device=device), k, 2, 1, (2, 1), impl=impl)
    assert y.shape == (0, 3, 16, 16)
    y = hrops.upfirdn2d(torch.randn(2, 0, 8, 8, device=device), k, 1, 2, (1, 1), impl=impl)
    assert y.shape == (2, 0, 4, 4)


GRAD_CONFIGS = [((2, 2), (1, 1), (2, 1, 2, 1)), ((1, 1), (2, 2), (1, 1, 1, 1)),
                ((4, 4), (2, 2), (-1, 3, 2, -2)), ((1, 2), (4, 1), (0, 2, 1, 3))]


@pytest.mark.parametrize("impl,device", IMPLS + [pytest.param("ref", "cpu", id="ref-cpu")])
@pytest.mark.parametrize("config", GRAD_CONFIGS)
@pytest.mark.parametrize("name", ["blur4", "rand5x2"])
def test_gradcheck_and_gradgradcheck(impl, device, config, name):
    up, down, pad = config
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, device=device, requires_grad=True)
    k = KERNELS[name].to(device)

    def fn(t):
        return hrops.upfirdn2d(t, k, up, down, pad, impl=impl)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("impl,device", IMPLS)
def test_gradients_match_ref(impl, device):
    x = torch.randn(2, 3, 16, 12, device=device, requires_grad=True)
    k = _blur().float().to(device)
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (2, 1))]:
        y = hrops.upfirdn2d(x, k, up, down, pad, impl=impl)
        g = torch.randn_like(y)
        (got,) = torch.autograd.grad(y, x, g)
        (want,) = torch.autograd.grad(hrops.upfirdn2d(x, k, up, down, pad, impl="ref"), x, g)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("impl,device", [("ref", "cpu")] + IMPLS)
def test_the_kernel_gets_no_gradient(impl, device):
    """As documented and as rosinality's op: whichever impl runs."""
    k = _blur().float().to(device).requires_grad_()
    x = torch.randn(1, 2, 6, 6, device=device)
    assert not hrops.upfirdn2d(x, k, 2, 1, (2, 1), impl=impl).requires_grad


@pytest.mark.parametrize("impl,device", IMPLS)
def test_opcheck(impl, device):
    op = torch.ops.hrops.upfirdn2d.default
    k = _blur().float().to(device)
    x = torch.randn(2, 3, 8, 7, device=device, requires_grad=True)
    torch.library.opcheck(op, (x, k, 2, 2, 1, 1, 2, 1, 2, 1, impl))
    torch.library.opcheck(op, (x, k, 1, 1, 2, 2, 1, 1, 1, 1, impl))
    torch.library.opcheck(op, (x, torch.randn(3, 2, device=device), 4, 1, 2, 1, -1, 2, 0, 3, impl))
    torch.library.opcheck(op, (x.detach()[:0], k, 1, 1, 1, 1, 0, 0, 0, 0, impl))


@pytest.mark.compile
def test_compile_fullgraph():
    torch._dynamo.reset()
    k = _blur().float()

    def fn(x):
        y = hrops.upfirdn2d(x * 2, k, up=2, pad=(2, 1))
        return hrops.upfirdn2d(y.relu(), k, down=2, pad=(1, 1)).sum()

    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=False)
    out = compiled(x)
    (g,) = torch.autograd.grad(out, x)
    (g_ref,) = torch.autograd.grad(fn(x), x)
    torch.testing.assert_close(out, fn(x))
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("kwargs,expected", [
    (dict(up=np.int64(2), down=(np.int32(1), torch.tensor(2)), pad=[np.int64(2), 1]),
     dict(up=2, down=(1, 2), pad=(2, 1))),
    (dict(up=True), r"up must be an integer or a pair \(x, y\) of integers in \[1, 1048576\], "
                    r"got True"),
    (dict(down=2.0), "down must be an integer or a pair .*, got 2.0"),
    (dict(up=(1, 2, 3)), r"up must be .*, got \(1, 2, 3\)"),
    (dict(down=(2, 0)), r"down must be .* in \[1, 1048576\], got \(2, 0\)"),
    (dict(pad=(1, 2, 3)), r"pad must be \(p0, p1\) or \(x0, x1, y0, y1\) of integers in "
                          r"\[-1048576, 1048576\], got"),
    (dict(pad=(1, 1.0)), r"pad must be .*, got \(1, 1.0\)"),
    (dict(pad=(False, 1)), r"pad must be .*, got \(False, 1\)"),
    (dict(pad=1), "pad must be .*, got 1"),
])
def test_integer_arguments(kwargs, expected):
    """NumPy and 0-d tensor integers count as ints; bools, floats and
    sequences of the wrong length are ValueErrors naming the argument."""
    x, k = torch.randn(1, 2, 5, 6, dtype=torch.float64), _blur().double()
    if isinstance(expected, dict):
        torch.testing.assert_close(hrops.upfirdn2d(x, k, **kwargs), hrops.upfirdn2d(x, k, **expected),
                                   atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            hrops.upfirdn2d(x, k, **kwargs)


def test_errors():
    x, k = torch.randn(1, 2, 4, 4), _blur().float()
    with pytest.raises(ValueError, match=r"x must be a 4-D"):
        hrops.upfirdn2d(x[0], k)
    with pytest.raises(ValueError, match=r"kernel must be a 2-D"):
        hrops.upfirdn2d(x, k[0])
    with pytest.raises(ValueError, match=r"up must be an integer or a pair .* in \[1, 1048576\], got 0"):
        hrops.upfirdn2d(x, k, up=0)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        hrops.upfirdn2d(torch.randn(1, 1, 2, 2), k, pad=(0, 0))
    # Bounded: the CPU kernel's row buffers grow with factors and pads.
    assert hrops.upfirdn2d(x, k, down=2 ** 20).shape == (1, 2, 1, 1)
    with pytest.raises(ValueError, match=r"down must be .* in \[1, 1048576\], got 1048577"):
        hrops.upfirdn2d(x, k, down=2 ** 20 + 1)
    with pytest.raises(ValueError, match=r"pad must be .* in \[-1048576, 1048576\]"):
        hrops.upfirdn2d(x, k, pad=(2 ** 31, -2 ** 31))
    if hrops.build_info()["cpu_kernels"]:
        with pytest.raises(RuntimeError, match=r"up, down and \|pad\| must be at most 2\*\*20"):
            torch.ops.hrops_C.upfirdn2d(x, k, 1, 1, 1, 1, 2 ** 31, -2 ** 31, 0, 0)
        with pytest.raises(RuntimeError, match="up and down factors must be >= 1"):
            torch.ops.hrops_C.upfirdn2d(x, k, 0, 1, 1, 1, 0, 0, 0, 0)
        with pytest.raises(RuntimeError, match=r"kernel must be a 2-D"):
            torch.ops.hrops_C.upfirdn2d(x, k[0], 1, 1, 1, 1, 0, 0, 0, 0)
