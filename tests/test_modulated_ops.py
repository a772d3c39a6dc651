"""MobileStyleGAN's fused ops: modulated depthwise-separable conv and
modulated IDWT upsampling, every kernel against the reference."""
import pytest
import torch

import hrops
from hrops import ref
from impls import interpreted, kernel_impls

DW_IMPLS = kernel_impls(("cpu", "triton"))
IDWT_IMPLS = kernel_impls(("cpu", "cuda"))
# (N, Cin, Cout, H, W, k, padding)
DW_SHAPES = [(2, 5, 7, 9, 11, 3, 1), (1, 20, 40, 6, 5, 5, 2), (2, 4, 3, 8, 8, 3, 0),
             (1, 3, 17, 33, 10, 1, 0), (3, 16, 16, 4, 4, 3, 1)]
TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-10),
       torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}


def _dw_inputs(shape, dtype=torch.float64, requires_grad=False):
    n, cin, cout, h, w, k, _ = shape
    gen = torch.Generator().manual_seed(sum(shape))
    make = [(n, cin, h, w), (n, cin), (cin, 1, k, k), (cout, cin, 1, 1)]
    ts = [torch.randn(s, generator=gen, dtype=torch.float64) for s in make]
    ts.append(torch.rand(cout, generator=gen, dtype=torch.float64) + 0.5)
    return [t.to(dtype).requires_grad_(requires_grad) for t in ts]


def _dw_dtypes(impl, device):
    if interpreted(impl, device):
        return [torch.float32, torch.float16]  # interpreter: no bf16; Triton kernel: no fp64
    if impl == "triton":
        return [torch.float32, torch.float16, torch.bfloat16]
    return list(TOL)


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", DW_SHAPES)
def test_dwconv_forward_matches_ref(impl, device, shape):
    pad = shape[-1]
    for dtype in _dw_dtypes(impl, device):
        x, m, wdw, wpw, d = _dw_inputs(shape, dtype)
        expected = ref.modulated_dwconv2d(*[t.double() for t in (x, m, wdw, wpw, d)], padding=pad)
        for demod in (d, None):
            exp = expected if demod is not None else expected / d.double().view(1, -1, 1, 1)
            for layout, xl in (("contiguous", x), ("channels_last", x.to(memory_format=torch.channels_last)),
                               ("strided", x.transpose(2, 3).contiguous().transpose(2, 3))):
                args = [t.to(device) for t in (xl, m, wdw, wpw)]
                y = hrops.modulated_dwconv2d(*args, demod.to(device) if demod is not None else None,
                                             padding=pad, impl=impl)
                torch.testing.assert_close(y.cpu().double(), exp, **TOL[dtype],
                                           msg=lambda msg: f"{dtype} {layout}: {msg}")


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", DW_SHAPES[:3])
def test_dwconv_gradients_match_ref(impl, device, shape):
    dtype = torch.float32 if impl == "triton" else torch.float64
    inputs = _dw_inputs(shape, dtype, requires_grad=True)
    y = hrops.modulated_dwconv2d(*[t.to(device) for t in inputs], padding=shape[-1], impl=impl)
    g = torch.randn(y.shape, dtype=dtype)
    got = torch.autograd.grad(y, inputs, g.to(device))
    y_ref = ref.modulated_dwconv2d(*inputs, padding=shape[-1])
    expected = torch.autograd.grad(y_ref, inputs, g)
    for name, a, b in zip(("x", "modulation", "weight_dw", "weight_pw", "demod"), got, expected):
        torch.testing.assert_close(a.cpu(), b, **TOL[dtype], msg=lambda msg: f"grad {name}: {msg}")


def test_dwconv_gradcheck_cpu():
    inputs = _dw_inputs((2, 3, 4, 5, 6, 3, 1), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: hrops.modulated_dwconv2d(*a, padding=1, impl="cpu"), inputs)
    no_demod = inputs[:4]
    assert torch.autograd.gradcheck(
        lambda *a: hrops.modulated_dwconv2d(*a, padding=2, impl="cpu"), no_demod)


def test_dwconv_double_backward_raises_clearly():
    inputs = _dw_inputs((1, 2, 3, 4, 4, 3, 1), requires_grad=True)
    y = hrops.modulated_dwconv2d(*inputs, impl="cpu")
    (gx,) = torch.autograd.grad(y.sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        gx.sum().backward()


def _saved_bytes(fn):
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_dwconv_saves_only_inputs_and_weights():
    inputs = _dw_inputs((2, 16, 16, 32, 32, 3, 1), torch.float32, requires_grad=True)
    inputs_bytes = sum(t.untyped_storage().nbytes() for t in inputs)
    assert _saved_bytes(lambda: hrops.modulated_dwconv2d(*inputs, impl="cpu")) == inputs_bytes
    # The reference keeps the modulated input and the depthwise output as well.
    assert _saved_bytes(lambda: hrops.modulated_dwconv2d(*inputs, impl="ref")) >= 3 * inputs_bytes


@pytest.mark.parametrize("impl,device", DW_IMPLS)
def test_dwconv_empty_and_opcheck(impl, device):
    x, m, wdw, wpw, d = [t.to(device) for t in _dw_inputs((2, 3, 5, 6, 7, 3, 1), torch.float32)]
    empty = hrops.modulated_dwconv2d(x[:0], m[:0], wdw, wpw, d, impl=impl)
    assert empty.shape == (0, 5, 6, 7)
    args = [t.requires_grad_() for t in (x, m, wdw, wpw, d)]
    torch.library.opcheck(torch.ops.hrops.modulated_dwconv2d.default, (*args, 1, impl))
    torch.library.opcheck(torch.ops.hrops.modulated_dwconv2d.default, (*args[:4], None, 0, impl))


def test_dwconv_rejects_bad_input():
    x, m, wdw, wpw, d = _dw_inputs((2, 3, 5, 6, 7, 3, 1), torch.float32)
    with pytest.raises(ValueError, match=r"modulation must have shape \(N, Cin\) = \(2, 3\)"):
        hrops.modulated_dwconv2d(x, m[:, :2], wdw, wpw, d)
    with pytest.raises(ValueError, match="weight_dw must have shape .* Cin = 3"):
        hrops.modulated_dwconv2d(x, m, wdw[:2], wpw, d)
    with pytest.raises(ValueError, match="weight_pw must have shape .* Cin = 3"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw[:, :2], d)
    with pytest.raises(ValueError, match=r"demod must have shape \(Cout,\) = \(5,\)"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d[:4])
    with pytest.raises(ValueError, match="odd k"):
        hrops.modulated_dwconv2d(x, m, torch.randn(3, 1, 2, 2), wpw, d)
    with pytest.raises(ValueError, match="x and modulation must have the same dtype"):
        hrops.modulated_dwconv2d(x, m.double(), wdw, wpw, d)
    with pytest.raises(RuntimeError, match="not implemented for this op"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, impl="cuda")


# --- modulated IDWT upsampling -------------------------------------------------------------

def _up_inputs(shape, dtype=torch.float64, requires_grad=False):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    m = torch.randn(shape[:2], generator=gen, dtype=torch.float64).to(dtype)
    return x.requires_grad_(requires_grad), m.requires_grad_(requires_grad)


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
@pytest.mark.parametrize("shape", [(2, 12, 5, 7), (1, 4, 1, 1), (3, 32, 8, 8)])
def test_idwt_upsample_matches_ref(impl, device, shape):
    for dtype in TOL:
        x, m = _up_inputs(shape, dtype)
        expected = ref.modulated_idwt_upsample(x.double(), m.double())
        for xl in (x, x.to(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)):
            y = hrops.modulated_idwt_upsample(xl.to(device), m.to(device), impl=impl)
            torch.testing.assert_close(y.cpu().double(), expected, **TOL[dtype])


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
def test_idwt_upsample_autograd(impl, device):
    x, m = _up_inputs((2, 8, 3, 4), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: hrops.modulated_idwt_upsample(a, b, impl=impl), (x.to(device), m.to(device)))
    x32, m32 = (t.detach().float().to(device).requires_grad_() for t in (x, m))
    torch.library.opcheck(torch.ops.hrops.modulated_idwt_upsample.default, (x32, m32, impl))
    empty = hrops.modulated_idwt_upsample(x32[:0], m32[:0], impl=impl)
    assert empty.shape == (0, 2, 6, 8)


def test_idwt_upsample_rejects_bad_input():
    x, m = _up_inputs((2, 8, 3, 4), torch.float32)
    with pytest.raises(ValueError, match="x must have 4C channels"):
        hrops.modulated_idwt_upsample(x[:, :6], m[:, :6])
    with pytest.raises(ValueError, match=r"modulation must have shape \(N, 4C\) = \(2, 8\)"):
        hrops.modulated_idwt_upsample(x, m[:, :4])
    with pytest.raises(RuntimeError, match="modulation must have shape"):
        torch.ops.hrops_C.modulated_idwt_upsample(x, m[:1])
