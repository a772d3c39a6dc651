"""StyleGAN2 modulated convolution: the batch-shared form against the
grouped definition, up/down sampling, gradients of first and second order."""
import numpy as np
import pytest
import torch

import hrops
from hrops import ref

CASES = [(1, 1, 3, True), (1, 1, 1, False), (2, 1, 3, True), (1, 2, 3, True), (2, 1, 3, False)]


def _inputs(k, dtype=torch.float64, n=2, cin=5, cout=4, size=8):
    x = torch.randn(n, cin, size, size, dtype=dtype)
    weight = torch.randn(cout, cin, k, k, dtype=dtype) / (cin * k * k) ** 0.5
    style = torch.randn(n, cin, dtype=dtype) + 1
    return x, weight, style


def _definition(x, weight, style, demodulate):
    """Per sample: plain conv2d with the modulated (and demodulated) weight."""
    outs = []
    for n in range(x.shape[0]):
        w = weight * style[n].view(1, -1, 1, 1)
        if demodulate:
            w = w * torch.rsqrt(w.square().sum([1, 2, 3]) + 1e-8).view(-1, 1, 1, 1)
        outs.append(torch.nn.functional.conv2d(x[n:n + 1], w, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
def test_ref_matches_per_sample_definition(demodulate):
    x, w, s = _inputs(3)
    torch.testing.assert_close(ref.modulated_conv2d(x, w, s, demodulate), _definition(x, w, s, demodulate))


@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("up,down,k,demodulate", CASES)
def test_matches_ref(impl, up, down, k, demodulate):
    x, w, s = _inputs(k)
    got = hrops.modulated_conv2d(x, w, s, demodulate, up, down, impl=impl)
    want = ref.modulated_conv2d(x, w, s, demodulate, up, down)
    assert got.shape == (2, 4, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(got, want)
    # rosinality's (1, Cout, Cin, k, k) weight layout
    torch.testing.assert_close(hrops.modulated_conv2d(x, w[None], s, demodulate, up, down,
                                                      impl=impl), want)


@pytest.mark.parametrize("up,down,k,demodulate", CASES)
def test_float32_matches_ref(up, down, k, demodulate):
    x, w, s = _inputs(k, torch.float32, cin=16, cout=8, size=12)
    torch.testing.assert_close(hrops.modulated_conv2d(x, w, s, demodulate, up, down),
                               ref.modulated_conv2d(x, w, s, demodulate, up, down),
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_gradcheck_and_gradgradcheck(up, down):
    x, w, s = _inputs(3, n=2, cin=2, cout=2, size=4)
    args = tuple(t.requires_grad_() for t in (x, w, s))
    fn = lambda x, w, s: hrops.modulated_conv2d(x, w, s, True, up, down)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("kwargs,expected", [
    (dict(up=np.int64(2), demodulate=np.bool_(True), eps=np.float32(0.5)),
     dict(up=2, demodulate=True, eps=0.5)),
    (dict(down=torch.tensor(2), eps=torch.tensor(0.5)), dict(down=2, eps=0.5)),
    (dict(up="2"), "up must be 1 or 2, got '2'"),
    (dict(up=2.0), "up must be 1 or 2, got 2.0"),
    (dict(down=True), "down must be 1 or 2, got True"),
    (dict(demodulate="no"), r"demodulate must be a bool \(True or False\), got 'no'"),
    (dict(demodulate=0), r"demodulate must be a bool .*, got 0"),
    (dict(eps=float("nan")), "eps must be a finite real number > 0, got nan"),
    (dict(eps=float("inf")), "eps must be a finite real number > 0, got inf"),
    (dict(eps=0.0), "eps must be a finite real number > 0, got 0.0"),
    (dict(eps=torch.tensor(1e-8, requires_grad=True)),
     "eps must be a real number; got a tensor that requires grad"),
])
def test_scalar_arguments(impl, kwargs, expected):
    """NumPy numbers and 0-d tensors count as Python ones; 2.0, True or '2'
    is no factor 2, and eps must be a finite real > 0: ValueErrors naming
    the argument."""
    x, w, s = _inputs(3)
    if isinstance(expected, dict):
        torch.testing.assert_close(hrops.modulated_conv2d(x, w, s, **kwargs, impl=impl),
                                   hrops.modulated_conv2d(x, w, s, **expected, impl=impl),
                                   atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            hrops.modulated_conv2d(x, w, s, **kwargs, impl=impl)


def test_errors():
    x, w, s = _inputs(3, torch.float32)
    with pytest.raises(ValueError, match=r"style must have shape \(N, Cin\)"):
        hrops.modulated_conv2d(x, w, s[:, :3])
    with pytest.raises(ValueError, match=r"weight must have shape \(Cout, Cin, k, k\) with Cin = 5"):
        hrops.modulated_conv2d(x, w[:, :3], s)
    with pytest.raises(ValueError, match="up must be 1 or 2, got 4"):
        hrops.modulated_conv2d(x, w, s, up=4)
    with pytest.raises(ValueError, match="up and down must not both be 2"):
        hrops.modulated_conv2d(x, w, s, up=2, down=2)
    for impl in ("ref", "cpu"):  # ATen convolutions take and make no empty channel or map
        with pytest.raises(ValueError, match="needs Cin >= 1 and Cout >= 1"):
            hrops.modulated_conv2d(x[:, :0], w[:, :0], s[:, :0], impl=impl)
        with pytest.raises(ValueError, match="needs Cin >= 1 and Cout >= 1"):
            hrops.modulated_conv2d(x, w[:0], s, impl=impl)
        with pytest.raises(ValueError, match="x must have H >= 1 and W >= 1"):
            hrops.modulated_conv2d(x[:, :, :0], w, s, impl=impl)
        # down=2: the blurred map must hold the stride-2 conv's kernel (ATen's error otherwise)
        msg = "x must have H >= 2 and W >= 2 with down=2 and a {0}x{0} kernel"
        with pytest.raises(ValueError, match=msg.format(3)):
            hrops.modulated_conv2d(x[:, :, :1, :1], w, s, down=2, impl=impl)
        with pytest.raises(ValueError, match=msg.format(1)):
            hrops.modulated_conv2d(x[:, :, :, :1], w[:, :, :1, :1], s, down=2, impl=impl)
        out = hrops.modulated_conv2d(x[:, :, :2, :2], w, s, down=2, impl=impl)
        assert out.shape == (2, 4, 1, 1)


@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("up,down", [(1, 1), (1, 2), (2, 1)])
def test_empty_batch(impl, up, down):
    """N = 0: the grouped definition has no groups to fold the batch into."""
    x, w, s = (t.requires_grad_() for t in _inputs(3, n=0))
    out = hrops.modulated_conv2d(x, w, s, True, up, down, impl=impl)
    assert out.shape == (0, 4, 8 * up // down, 8 * up // down)
    grads = torch.autograd.grad(out.sum(), (x, w, s))
    assert [g.shape for g in grads] == [x.shape, w.shape, s.shape]
    assert not grads[1].any()


@pytest.mark.parametrize("autocast", [False, True])
def test_bfloat16_stride2_with_one_pixel_wide_output(autocast):
    """down=2 onto a one-pixel-wide output in bfloat16: oneDNN's bfloat16
    convolution gets this wrong on some CPUs (an AMX Xeon, torch 2.14.1), so
    the op convolves it in float32. Against the float64 reference."""
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(1, 2, 10, 2, generator=g), torch.randn(1, 2, 3, 3, generator=g) / 4
    style = torch.rand(1, 2, generator=g) + 0.5
    want = ref.modulated_conv2d(x.double(), weight.double(), style.double(), False, 1, 2)
    if autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = hrops.modulated_conv2d(x, weight, style, False, 1, 2, impl="cpu")
    else:
        got = hrops.modulated_conv2d(x.bfloat16(), weight.bfloat16(), style.bfloat16(), False,
                                     1, 2, impl="cpu")
    assert got.dtype == torch.bfloat16 and got.shape == want.shape == (1, 1, 5, 1)
    torch.testing.assert_close(got.double(), want, atol=0.03, rtol=0.03)
