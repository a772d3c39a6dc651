"""hrops.nn.SepConvGRU against CoCosNet v2's SepConvGRU math
(microsoft/CoCosNet-v2 models/networks/convgru.py, SepConvGRU) from the same
state_dict, and its saved-for-backward memory."""
import re

import numpy as np
import pytest
import torch

import hrops
import hrops.nn as hnn
from impls import interpreted, kernel_impls
from python_models.original_cells import OriginalSepConvGRU


def _pair(dtype=torch.float64, hidden=8, inp=12):
    torch.manual_seed(0)
    original = OriginalSepConvGRU(hidden, inp).to(dtype)
    ours = hnn.SepConvGRU(hidden, inp).to(dtype)
    ours.load_state_dict(original.state_dict())  # strict: CoCosNet v2's names
    return original, ours


@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_matches_original_forward_and_backward(impl):
    original, ours = _pair()
    ours.impl = impl
    h = torch.randn(2, 8, 9, 11, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 12, 9, 11, dtype=torch.float64, requires_grad=True)
    a, b = original(h, x), ours(h, x)
    torch.testing.assert_close(b, a)
    g = torch.randn_like(a)
    leaves = [h, x, *original.parameters()]
    ga = torch.autograd.grad(a, leaves, g)
    gb = torch.autograd.grad(b, [h, x, *ours.parameters()], g)
    for u, v in zip(gb, ga):
        torch.testing.assert_close(u, v)


def test_saves_at_most_half_of_the_eager_update():
    """Per pass eager keeps [h, x], [r * h, x], z, r, q and 1 - z; hrops keeps
    the 3 gate pre-activations and recomputes the concatenations."""
    original, ours = _pair(torch.float32, hidden=32, inp=64)  # CoCosNet v2's sizes
    h = torch.randn(1, 32, 64, 64, requires_grad=True)
    x = torch.randn(1, 64, 64, 64, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in list(original.parameters()) + list(ours.parameters())}
    inputs = {h.untyped_storage().data_ptr(), x.untyped_storage().data_ptr()}

    def activations(fn):
        total, seen = 0, set()

        def pack(t):
            nonlocal total
            k = t.untyped_storage().data_ptr()
            if k not in seen and k not in params and k not in inputs:
                seen.add(k)
                total += t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return total
    eager, fused = activations(lambda: original(h, x)), activations(lambda: ours(h, x))
    assert fused <= eager / 2, (fused, eager)


def _pass_inputs(dtype=torch.float64, c=3, cx=4):
    gen = torch.Generator().manual_seed(0)
    shapes = [(2, c, 5, 6), (2, cx, 5, 6), (2 * c, c + cx, 1, 3), (2 * c,), (c, c + cx, 1, 3), (c,)]
    return [torch.randn(s, generator=gen, dtype=dtype, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("impl,device", kernel_impls())
def test_conv_gru_pass_matches_ref_and_gradcheck(impl, device):
    args = [t.detach().to(device).requires_grad_() for t in _pass_inputs()]
    fn = lambda *a: hrops.conv_gru_pass(*a, (0, 1), impl=impl)
    expected_args = _pass_inputs()
    want = hrops.conv_gru_pass(*expected_args, (0, 1), impl="ref")
    got = fn(*args)
    torch.testing.assert_close(got.cpu(), want)
    g = torch.randn_like(want)
    for u, v in zip(torch.autograd.grad(got, args, g.to(device)),
                    torch.autograd.grad(want, expected_args, g)):
        torch.testing.assert_close(u.cpu(), v)
    if interpreted(impl, device):
        return  # gradcheck's thousand interpreted calls take a minute
    assert torch.autograd.gradcheck(fn, args)
    without_bias = [args[0], args[1], args[2], None, args[4], None]
    torch.testing.assert_close(fn(*without_bias).cpu(),
                               hrops.conv_gru_pass(*without_bias, (0, 1), impl="ref").cpu())
    assert torch.autograd.gradcheck(fn, without_bias)


def test_conv_gru_pass_refuses_double_backward_and_bad_input():
    args = _pass_inputs()
    out = hrops.conv_gru_pass(*args, (0, 1), impl="cpu")
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(out.sum(), args[0], create_graph=True)
    with pytest.raises(ValueError, match="weight_zr must be"):
        hrops.conv_gru_pass(args[0], args[1], args[4], args[3], args[4], args[5], (0, 1))
    with pytest.raises(ValueError, match="same N, H, W"):
        hrops.conv_gru_pass(args[0], args[1][:, :, :4], *args[2:], (0, 1))


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_conv_gru_pass_takes_an_int_or_a_pair_of_paddings(impl):
    h, x, weight_zr, bias_zr, weight_q, bias_q = _pass_inputs()
    square = [torch.randn(6, 7, 3, 3, dtype=torch.float64), bias_zr,
              torch.randn(3, 7, 3, 3, dtype=torch.float64), bias_q]
    want = hrops.conv_gru_pass(h, x, *square, (1, 1), impl="ref")
    for padding in (1, (1, 1), [1, 1], np.int64(1), (np.int32(1), torch.tensor(1))):
        torch.testing.assert_close(hrops.conv_gru_pass(h, x, *square, padding, impl=impl), want)
    for bad in (-1, (0, -1), (0, 1, 2), (0,), (0, 1.0), 1.5, True, (0, True), "same", None):
        with pytest.raises(ValueError, match=r"padding must be an integer or a pair \(ph, pw\) of "
                                             r"integers >= 0, got " + re.escape(repr(bad))):
            hrops.conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, bad, impl=impl)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_conv_gru_pass_errors_name_the_callers_arguments(impl):
    """Not the internal pre_q / s_hat / pre_r a kernel would blame."""
    h, x, weight_zr, bias_zr, weight_q, bias_q = args = _pass_inputs()
    cases = [
        ((h, x, weight_zr, bias_zr, weight_q, bias_q, (1, 1)),
         r"padding \(1, 1\) with 1x3 kernels does not keep h's"),
        ((h, x, weight_zr, bias_zr, torch.randn(3, 7, 3, 3, dtype=torch.float64), bias_q, (0, 1)),
         "weight_zr must be .* and weight_q .* the same kernel size"),
        ((*args[:3], bias_zr[:3], *args[4:], (0, 1)), r"bias_zr must be None or of shape \(6,\)"),
        ((*args[:5], bias_q[:, None], (0, 1)), "bias_q must be a 1-D tensor"),
        ((h, x.float(), *args[2:], (0, 1)), "h and x must have the same dtype"),
        ((*args[:4], weight_q.float(), bias_q, (0, 1)), "h and weight_q must have the same dtype"),
        ((*args[:2], weight_zr.to("meta"), *args[3:], (0, 1)),
         "h and weight_zr must be on the same device"),
        ((h[0], *args[1:], (0, 1)), r"h must be a 4-D tensor"),
        ((h.long(), *args[1:], (0, 1)), "h must be float32, float64"),
    ]
    for call, msg in cases:
        with pytest.raises(ValueError, match=msg):
            hrops.conv_gru_pass(*call, impl=impl)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        hrops.conv_gru_pass(h, x.tolist(), *args[2:], (0, 1), impl=impl)
    for i, name in ((1, "x"), (2, "weight_zr"), (4, "weight_q")):  # required; the biases are not
        with pytest.raises(TypeError, match=f"{name} must be a torch.Tensor, got NoneType"):
            hrops.conv_gru_pass(*args[:i], None, *args[i + 1:], (0, 1), impl=impl)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_conv_gru_pass_refuses_empty_channels_and_maps(impl):
    """ATen's convolutions take no empty map and make no empty channel; an
    empty batch works."""
    h, x, weight_zr, bias_zr, weight_q, bias_q = _pass_inputs()
    assert hrops.conv_gru_pass(h[:0], x[:0], weight_zr, bias_zr, weight_q, bias_q, (0, 1),
                               impl=impl).shape == (0, 3, 5, 6)
    empty_c = (h[:, :0], x, weight_zr[:0, 3:], None, weight_q[:0, 3:], None)
    for args in ((h[:, :, :0], x[:, :, :0], *_pass_inputs()[2:]),
                 (h[..., :0], x[..., :0], *_pass_inputs()[2:]), empty_c):
        with pytest.raises(ValueError, match="h must have C >= 1, H >= 1 and W >= 1"):
            hrops.conv_gru_pass(*args, (0, 1), impl=impl)


def test_layer_errors_name_h_and_x():
    """Not conv_gru_pass's weight_zr, whose shape is the layer's."""
    gru = hnn.SepConvGRU(8, 6)
    h, x = torch.randn(2, 8, 5, 5), torch.randn(2, 6, 5, 5)
    assert gru(h, x).shape == h.shape
    for args, msg in (((h[:, :5], x), r"SepConvGRU: h must have shape \(N, 8, H, W\)"),
                      ((h, x[:, :5]), r"SepConvGRU: x must have shape \(N, 6, H, W\)"),
                      ((h[0], x), "h must be a 4-D tensor"),
                      ((h, x.long()), "x must be float32")):
        with pytest.raises(ValueError, match=msg):
            gru(*args)
    for kwargs, name in (({"input_dim": -1}, "input_dim"), ({"hidden_dim": 0}, "hidden_dim")):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
            hnn.SepConvGRU(**kwargs)


@pytest.mark.compile
def test_compile_fullgraph():
    torch._dynamo.reset()
    _, ours = _pair()
    h = torch.randn(2, 8, 5, 7, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager", dynamic=False)
    out = compiled(h, x)
    torch.testing.assert_close(out, ours(h, x))
    torch.testing.assert_close(torch.autograd.grad(out.sum(), (h, x)),
                               torch.autograd.grad(ours(h, x).sum(), (h, x)))
