"""Recurrent-cell gating ops (csmliu/STGAN models.py, ConvGRUCell;
neuralchen/CooGAN components/STU/SRU_modify.py and SRU_modify_relu.py;
microsoft/CoCosNet-v2 models/networks/convgru.py, SepConvGRU): CooGAN's LSTU,
STGAN's STU, and the ConvGRU update that the STU output and CoCosNet v2 share.

Custom ops with autograd and fake implementations:
  hrops::lstu_gates(x_up, x_tilde, pre_gates, enc, activation, impl) -> (h, c)
  hrops::stu_reset(pre_r, s_hat, impl) -> s_new
  hrops::gru_update(pre_z, h, pre_q, impl) -> h'
Each runs in one pass; its backward is its own op (one pass too) that saves
only the inputs and recomputes the gates, so a cell saves no sigmoid/tanh
outputs. Double backward is not supported (raises). `impl` picks the kernel
(see hrops._backends).

The two LSTU gates come from one convolution of the upsampled state, so they
arrive as one tensor pre_gates = [pre_f | pre_r] (N, 2C, H, W) and get one
gradient tensor back (slicing them apart outside the op would make autograd
zero-fill and add two full-size gradients).
"""
import torch

from .. import _backends, ref
from ._checks import check_choice, check_same_device_dtype, check_tensor
from ._define import call_ref, kernel_op, no_double_backward
from ._gate_layout import _like, planar_among_channels_last

ACTIVATIONS = {"tanh": 0, "relu": 1}  # the enum of csrc/common/gates.h


def _lstu_fake(x_up, x_tilde, pre_gates, enc, activation, impl):
    return _like(x_up), _like(x_up)


def _lstu_backward_fake(grad_h, grad_c, x_up, x_tilde, pre_gates, enc, activation, impl):
    grad_enc = enc.new_empty(enc.shape) if planar_among_channels_last(enc, x_up) else _like(x_up)
    return _like(x_up), _like(x_up), _like(x_up, 2), grad_enc


def _lstu_setup(ctx, inputs, output):
    x_up, x_tilde, pre_gates, enc, activation, impl = inputs
    ctx.save_for_backward(x_up, x_tilde, pre_gates, enc)
    ctx.activation, ctx.impl = activation, impl


def _lstu_grad(ctx, grad_h, grad_c):
    grads = _lstu_gates_backward(grad_h, grad_c, *ctx.saved_tensors, ctx.activation, ctx.impl)
    return *grads, None, None


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:-1])
    ctx.impl = inputs[-1]


def _stu_reset_grad(ctx, grad):
    return *_stu_reset_backward(grad, *ctx.saved_tensors, ctx.impl), None


def _gru_update_grad(ctx, grad):
    return *_gru_update_backward(grad, *ctx.saved_tensors, ctx.impl), None


_TRITON = "hrops.triton.gates"
_lstu_gates = kernel_op("lstu_gates", fake=_lstu_fake, backward=_lstu_grad, setup=_lstu_setup,
                        triton=_TRITON, autocast="lower_precision")
_lstu_gates_backward = kernel_op("_lstu_gates_backward", fake=_lstu_backward_fake,
                                 backward=no_double_backward("lstu_gates"), triton=_TRITON,
                                 autocast=None)
_stu_reset = kernel_op("stu_reset", fake=lambda pre_r, s_hat, impl: _like(s_hat),
                       backward=_stu_reset_grad, setup=_save_inputs, triton=_TRITON,
                       autocast="lower_precision")
_stu_reset_backward = kernel_op("_stu_reset_backward",
                                fake=lambda grad, pre_r, s_hat, impl: (_like(s_hat), _like(s_hat)),
                                backward=no_double_backward("stu_reset"), triton=_TRITON,
                                autocast=None)
_gru_update = kernel_op("gru_update", fake=lambda pre_z, h, pre_q, impl: _like(h),
                        backward=_gru_update_grad, setup=_save_inputs, triton=_TRITON,
                        autocast="lower_precision")
_gru_update_backward = kernel_op("_gru_update_backward",
                                 fake=lambda grad, pre_z, h, pre_q, impl: (_like(h),
                                                                           _like(h), _like(h)),
                                 backward=no_double_backward("gru_update"), triton=_TRITON,
                                 autocast=None)


def _check_operands(op, named, like_name, groups=None):
    """All 4-D, same device and dtype, same (N, C, H, W) except the tensors
    in `groups` (name -> channel multiple)."""
    groups = groups or {}
    like = named[like_name]
    for name, t in named.items():
        check_tensor(t, name, 4, "(N, C, H, W)")
    n, c, h, w = like.shape
    for name, t in named.items():
        check_same_device_dtype(like, like_name, t, name)
        k = groups.get(name, 1)
        if tuple(t.shape) != (n, k * c, h, w):
            what = "(N, 2C, H, W)" if k == 2 else "(N, C, H, W)"
            raise ValueError(f"{op}: {name} must have shape {what} = {(n, k * c, h, w)} to match "
                             f"{like_name}, got {tuple(t.shape)}")


def lstu_gates(x_up: torch.Tensor, x_tilde: torch.Tensor, pre_gates: torch.Tensor,
               enc: torch.Tensor, activation: str = "tanh", *, impl: str | None = None):
    """CooGAN's LSTU gating (neuralchen/CooGAN, components/STU/SRU_modify.py and
    SRU_modify_relu.py) in one pass.

    x_up: the upsampled state x_t (N, C, H, W); x_tilde: its 1x1 projection;
    pre_gates: (N, 2C, H, W) = [pre_f | pre_r], the gate pre-activations (one
    convolution of x_t); enc: the encoder feature. activation: "tanh"
    (SRU_modify) or "relu" (SRU_modify_relu). Returns (h, c):
    c = f*enc + (1-f)*x_tilde, h = r*g(c) + (1-r)*x_up, f, r = sigmoid(pre_f, pre_r).
    """
    activation = check_choice(activation, "activation", tuple(ACTIVATIONS))
    _check_operands("lstu_gates", dict(x_up=x_up, x_tilde=x_tilde, pre_gates=pre_gates, enc=enc),
                    "x_up", groups={"pre_gates": 2})
    impl = _backends.resolve("lstu_gates", impl, x_up.device)
    if impl == "ref":
        return call_ref("lstu_gates", ref.lstu_gates, x_up, x_tilde, pre_gates, enc, activation)
    return _lstu_gates(x_up, x_tilde, pre_gates, enc, ACTIVATIONS[activation], impl)


def stu_reset(pre_r: torch.Tensor, s_hat: torch.Tensor, *, impl: str | None = None):
    """STGAN's STU reset (csmliu/STGAN models.py, ConvGRUCell):
    s_new = sigmoid(pre_r) * s_hat, all (N, C, H, W)."""
    _check_operands("stu_reset", dict(pre_r=pre_r, s_hat=s_hat), "s_hat")
    impl = _backends.resolve("stu_reset", impl, s_hat.device)
    if impl == "ref":
        return call_ref("stu_reset", ref.stu_reset, pre_r, s_hat)
    return _stu_reset(pre_r, s_hat, impl)


def gru_update(pre_z: torch.Tensor, h: torch.Tensor, pre_q: torch.Tensor, *,
               impl: str | None = None):
    """Gated update h' = (1-z)*h + z*tanh(pre_q), z = sigmoid(pre_z), all
    (N, C, H, W): the ConvGRU step (microsoft/CoCosNet-v2
    models/networks/convgru.py, SepConvGRU) and STGAN's STU output."""
    _check_operands("gru_update", dict(pre_z=pre_z, h=h, pre_q=pre_q), "h")
    impl = _backends.resolve("gru_update", impl, h.device)
    if impl == "ref":
        return call_ref("gru_update", ref.gru_update, pre_z, h, pre_q)
    return _gru_update(pre_z, h, pre_q, impl)


def stu_update(pre_u: torch.Tensor, s_hat: torch.Tensor, pre_info: torch.Tensor, *,
               impl: str | None = None):
    """STGAN's STU output (csmliu/STGAN models.py, ConvGRUCell):
    out = (1-u)*s_hat + u*tanh(pre_info), u = sigmoid(pre_u); the same op as
    gru_update."""
    _check_operands("stu_update", dict(pre_u=pre_u, s_hat=s_hat, pre_info=pre_info), "s_hat")
    return gru_update(pre_u, s_hat, pre_info, impl=impl)
