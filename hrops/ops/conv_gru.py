"""One ConvGRU pass (RAFT / CoCosNet v2's SepConvGRU half, microsoft/CoCosNet-v2
models/networks/convgru.py, SepConvGRU) as one
op, hrops::conv_gru_pass, the gate convolutions inside its autograd node:

  [pre_z | pre_r] = conv([h, x], weight_zr, bias_zr)
  q_in = [sigmoid(pre_r) * h, x]            hrops.stu_reset
  pre_q = conv(q_in, weight_q, bias_q)
  h' = (1 - z) * h + z * tanh(pre_q)        hrops.gru_update

Eager PyTorch saves, per pass, both concatenated conv inputs ([h, x] and
q_in) and the gates z, r, q and 1 - z. The op saves only the gate
pre-activations (pre_z, pre_r, pre_q, which it returns besides h' for
that); backward recomputes [h, x] and q_in
from h and x (which the caller keeps anyway) and runs the gating kernels'
backward. First-order gradients only (it raises under double backward).
"""
import torch
import torch.nn.functional as F

from .. import _backends, ref
from ._checks import check_integers, check_same_device_dtype, check_tensor
from ._define import call_ref, composite_op
from .gates import _gru_update, _gru_update_backward, _stu_reset, _stu_reset_backward

_conv_backward = torch.ops.aten.convolution_backward


def _conv_grads(grad, inp, weight, padding, has_bias):
    return _conv_backward(grad, inp, weight, [weight.shape[0]] if has_bias else None, [1, 1],
                          list(padding), [1, 1], False, [0, 0], 1, [True, True, has_bias])


def _conv_gru_pass_body(h: torch.Tensor, x: torch.Tensor, weight_zr: torch.Tensor,
                        bias_zr: torch.Tensor | None, weight_q: torch.Tensor,
                        bias_q: torch.Tensor | None, padding: list[int], impl: str
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h', pre_zr, pre_q): the gate pre-activations are what the backward
    keeps."""
    c = h.shape[1]
    pre_zr = F.conv2d(torch.cat((h, x), dim=1), weight_zr, bias_zr, padding=padding)
    q_in = torch.cat((_stu_reset(pre_zr[:, c:], h, impl), x), dim=1)
    pre_q = F.conv2d(q_in, weight_q, bias_q, padding=padding)
    return _gru_update(pre_zr[:, :c], h, pre_q, impl), pre_zr, pre_q


def _setup(ctx, inputs, output):
    h, x, weight_zr, bias_zr, weight_q, bias_q, ctx.padding, ctx.impl = inputs
    _, pre_zr, pre_q = output
    ctx.mark_non_differentiable(pre_zr, pre_q)
    ctx.save_for_backward(h, x, weight_zr, weight_q, pre_zr, pre_q)
    ctx.has_bias = (bias_zr is not None, bias_q is not None)


def _grad(ctx, grad, *_):
    if torch.is_grad_enabled():  # create_graph=True: a silent zero would be wrong
        raise RuntimeError("hrops.conv_gru_pass does not support double backward; "
                           "use impl='ref'")
    h, x, weight_zr, weight_q, pre_zr, pre_q = ctx.saved_tensors
    c, impl, padding = h.shape[1], ctx.impl, ctx.padding
    pre_z, pre_r = pre_zr[:, :c], pre_zr[:, c:]
    g_pre_z, g_h, g_pre_q = _gru_update_backward(grad, pre_z, h, pre_q, impl)
    q_in = torch.cat((_stu_reset(pre_r, h, impl), x), dim=1)
    g_q_in, g_weight_q, g_bias_q = _conv_grads(g_pre_q, q_in, weight_q, padding, ctx.has_bias[1])
    g_pre_r, g_h_reset = _stu_reset_backward(g_q_in[:, :c], pre_r, h, impl)
    g_hx, g_weight_zr, g_bias_zr = _conv_grads(torch.cat((g_pre_z, g_pre_r), dim=1),
                                               torch.cat((h, x), dim=1), weight_zr, padding,
                                               ctx.has_bias[0])
    g_h = g_h + g_h_reset + g_hx[:, :c]
    g_x = g_q_in[:, c:] + g_hx[:, c:]
    return g_h, g_x, g_weight_zr, g_bias_zr, g_weight_q, g_bias_q, None, None


_conv_gru_pass = composite_op("conv_gru_pass", _conv_gru_pass_body, backward=_grad,
                              setup=_setup, autocast="lower_precision")


def _check_args(h, x, weight_zr, bias_zr, weight_q, bias_q, padding):
    """Raises a ValueError (TypeError for a non-tensor) naming the user's
    argument, before the internal tensors (pre_z, pre_r, pre_q) that a
    kernel would blame exist."""
    check_tensor(h, "h", 4, "(N, C, H, W)")
    others = {"x": (x, 4, "(N, Cx, H, W)"), "weight_zr": (weight_zr, 4, "(2C, C + Cx, kh, kw)"),
              "bias_zr": (bias_zr, 1, "(2C,)"), "weight_q": (weight_q, 4, "(C, C + Cx, kh, kw)"),
              "bias_q": (bias_q, 1, "(C,)")}
    for name, (t, ndim, doc) in others.items():
        if t is not None or name not in ("bias_zr", "bias_q"):  # the biases are optional
            check_tensor(t, name, ndim, doc)
            check_same_device_dtype(h, "h", t, name)
    if h.shape[0] != x.shape[0] or h.shape[2:] != x.shape[2:]:
        raise ValueError(f"conv_gru_pass: h and x must be (N, C, H, W) and (N, Cx, H, W) with the "
                         f"same N, H, W, got {tuple(h.shape)} and {tuple(x.shape)}")
    if 0 in h.shape[1:]:  # ATen convolutions take and make no empty channel or map
        raise ValueError(f"conv_gru_pass: h must have C >= 1, H >= 1 and W >= 1, got "
                         f"{tuple(h.shape)}")
    c, cin = h.shape[1], h.shape[1] + x.shape[1]
    kh, kw = weight_zr.shape[2:]
    if weight_zr.shape[:2] != (2 * c, cin) or weight_q.shape != (c, cin, kh, kw):
        raise ValueError(f"conv_gru_pass: weight_zr must be ({2 * c}, {cin}, kh, kw) and weight_q "
                         f"({c}, {cin}, kh, kw), the same kernel size, got "
                         f"{tuple(weight_zr.shape)} and {tuple(weight_q.shape)}")
    for name, bias, size in (("bias_zr", bias_zr, 2 * c), ("bias_q", bias_q, c)):
        if bias is not None and bias.shape[0] != size:
            raise ValueError(f"conv_gru_pass: {name} must be None or of shape ({size},), got "
                             f"{tuple(bias.shape)}")
    if (kh, kw) != (2 * padding[0] + 1, 2 * padding[1] + 1):  # else h' is not h's size
        raise ValueError(f"conv_gru_pass: padding {padding} with {kh}x{kw} kernels does not keep "
                         f"h's (H, W): the gates need odd kernel sizes and padding "
                         f"((kh - 1) / 2, (kw - 1) / 2)")


def conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, padding, *, impl=None):
    """h (N, C, H, W), x (N, Cx, H, W); weight_zr (2C, C + Cx, kh, kw) = the z
    and r convolutions stacked, weight_q (C, C + Cx, kh, kw), biases (2C,) /
    (C,) or None, all on h's device and of h's dtype (inside autocast, see
    hrops.ops._define.AUTOCAST_RULES);
    stride 1, `padding` an int or (ph, pw) that keeps the (H, W) size (odd
    kernels, ph = (kh - 1) / 2). Returns h'. impl "ref" runs the plain
    PyTorch pass (eager autograd)."""
    padding = check_integers(padding, "padding", "a pair (ph, pw)", scalar=True, ge=0)
    _check_args(h, x, weight_zr, bias_zr, weight_q, bias_q, padding)
    impl = _backends.resolve("conv_gru_pass", impl, h.device)
    if impl == "ref":
        return call_ref("conv_gru_pass", ref.conv_gru_pass, h, x, weight_zr, bias_zr, weight_q,
                        bias_q, padding)
    return _conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, list(padding), impl)[0]
