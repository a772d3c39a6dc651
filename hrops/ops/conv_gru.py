"""One ConvGRU pass (RAFT / CoCosNet v2's SepConvGRU half, SEEDS.md 4.4) with
the gate convolutions inside one autograd node:

  [pre_z | pre_r] = conv([h, x], weight_zr, bias_zr)
  q_in = [sigmoid(pre_r) * h, x]            hrops.stu_reset
  pre_q = conv(q_in, weight_q, bias_q)
  h' = (1 - z) * h + z * tanh(pre_q)        hrops.gru_update

Eager PyTorch saves, per pass, both concatenated conv inputs ([h, x] and
q_in) and the gates z, r, q and 1 - z. This node saves only the gate
pre-activations (pre_z, pre_r, pre_q); backward recomputes [h, x] and q_in
from h and x (which the caller keeps anyway) and runs the gating kernels'
backward. First-order gradients only (it raises under double backward).
"""
import torch
import torch.nn.functional as F

from .. import _backends, ref
from .gates import _gru_update, _gru_update_backward, _stu_reset, _stu_reset_backward

_conv_backward = torch.ops.aten.convolution_backward


def _conv_grads(grad, inp, weight, padding, has_bias):
    return _conv_backward(grad, inp, weight, [weight.shape[0]] if has_bias else None, [1, 1],
                          list(padding), [1, 1], False, [0, 0], 1, [True, True, has_bias])


class _ConvGRUPass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, x, weight_zr, bias_zr, weight_q, bias_q, padding, impl):
        c = h.shape[1]
        pre_zr = F.conv2d(torch.cat((h, x), dim=1), weight_zr, bias_zr, padding=padding)
        q_in = torch.cat((_stu_reset(pre_zr[:, c:], h, impl), x), dim=1)
        pre_q = F.conv2d(q_in, weight_q, bias_q, padding=padding)
        ctx.save_for_backward(h, x, weight_zr, weight_q, pre_zr, pre_q)
        ctx.padding, ctx.impl = padding, impl
        ctx.has_bias = (bias_zr is not None, bias_q is not None)
        return _gru_update(pre_zr[:, :c], h, pre_q, impl)

    @staticmethod
    def backward(ctx, grad):
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


def conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, padding, *, impl=None):
    """h (N, C, H, W), x (N, Cx, H, W); weight_zr (2C, C + Cx, kh, kw) = the z
    and r convolutions stacked, weight_q (C, C + Cx, kh, kw), biases (2C,) /
    (C,) or None; stride 1, `padding` (ph, pw). Returns h'. impl "ref" runs
    the plain PyTorch pass (eager autograd)."""
    if h.dim() != 4 or x.dim() != 4 or h.shape[0] != x.shape[0] or h.shape[2:] != x.shape[2:]:
        raise ValueError(f"conv_gru_pass: h and x must be (N, C, H, W) and (N, Cx, H, W) with the "
                         f"same N, H, W, got {tuple(h.shape)} and {tuple(x.shape)}")
    c, cin = h.shape[1], h.shape[1] + x.shape[1]
    if weight_zr.shape[:2] != (2 * c, cin) or weight_q.shape[:2] != (c, cin):
        raise ValueError(f"conv_gru_pass: weight_zr must be ({2 * c}, {cin}, kh, kw) and weight_q "
                         f"({c}, {cin}, kh, kw), got {tuple(weight_zr.shape)} and "
                         f"{tuple(weight_q.shape)}")
    impl = _backends.resolve("conv_gru_pass", impl, h.device)
    if impl == "ref":
        return ref.conv_gru_pass(h, x, weight_zr, bias_zr, weight_q, bias_q, padding)
    return _ConvGRUPass.apply(h, x, weight_zr, bias_zr, weight_q, bias_q, tuple(padding), impl)
