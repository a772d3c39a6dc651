"""Recurrent-cell gating ops (SEEDS.md 5.1, 5.3, 4.4): CooGAN's LSTU, STGAN's
STU, and the ConvGRU update that the STU output and CoCosNet v2 share.

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
import importlib

import torch

from .. import _backends, ref
from ._checks import check_same_device_dtype, check_tensor

ACTIVATIONS = {"tanh": 0, "relu": 1}  # the enum of csrc/common/gates.h


def _kernel(impl, name):
    if impl in ("cpu", "cuda"):
        return getattr(torch.ops.hrops_C, name)
    return getattr(importlib.import_module("hrops.triton.gates"), name)


def _walkable(t):
    """(planes, pixels): whether t's (n, c) planes, or its pixels, are evenly
    spaced runs of contiguous elements (csrc/common/gates_ops.h)."""
    _, _, h, w = t.shape
    sn, sc, sh, sw = t.stride()
    planes = (sw == 1 or w <= 1) and (sh == w or h <= 1)
    pixels = sc == 1 and (sh == w * sw or h <= 1 or w <= 1)
    return planes, pixels


def channels_last_operands(t):
    """Whether the gating kernels take an op whose reference operand is `t`
    channels-last: t's pixels, not its planes, are walkable (a channels-last
    tensor or a channel slice of one). Then the op's outputs are
    channels-last too, but for lstu_gates_backward's grad of an NCHW enc."""
    planes, pixels = _walkable(t)
    return not planes and pixels


def planar_among_channels_last(t, like):
    """Whether `t` is an NCHW operand of an op whose reference operand `like`
    makes it channels-last (the CPU kernels read it in place, and the grad
    of such an enc comes back NCHW)."""
    planes, pixels = _walkable(t)
    return channels_last_operands(like) and planes and not pixels


def _like(t, groups=1):
    n, c, h, w = t.shape
    if channels_last_operands(t):
        return t.new_empty((n, h, w, groups * c)).permute(0, 3, 1, 2)
    return t.new_empty((n, groups * c, h, w))


def _no_double_backward(name):
    def backward(ctx, *grads):
        raise RuntimeError(f"hrops.{name} does not support double backward")
    return backward


@torch.library.custom_op("hrops::lstu_gates", mutates_args=())
def _lstu_gates(x_up: torch.Tensor, x_tilde: torch.Tensor, pre_gates: torch.Tensor,
                enc: torch.Tensor, activation: int, impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(_kernel(impl, "lstu_gates")(x_up, x_tilde, pre_gates, enc, activation))


@_lstu_gates.register_fake
def _(x_up, x_tilde, pre_gates, enc, activation, impl):
    return _like(x_up), _like(x_up)


@torch.library.custom_op("hrops::lstu_gates_backward", mutates_args=())
def _lstu_gates_backward(grad_h: torch.Tensor, grad_c: torch.Tensor, x_up: torch.Tensor,
                         x_tilde: torch.Tensor, pre_gates: torch.Tensor, enc: torch.Tensor,
                         activation: int, impl: str
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(_kernel(impl, "lstu_gates_backward")(grad_h, grad_c, x_up, x_tilde, pre_gates,
                                                      enc, activation))


@_lstu_gates_backward.register_fake
def _(grad_h, grad_c, x_up, x_tilde, pre_gates, enc, activation, impl):
    grad_enc = enc.new_empty(enc.shape) if planar_among_channels_last(enc, x_up) else _like(x_up)
    return _like(x_up), _like(x_up), _like(x_up, 2), grad_enc


def _lstu_setup(ctx, inputs, output):
    x_up, x_tilde, pre_gates, enc, activation, impl = inputs
    ctx.save_for_backward(x_up, x_tilde, pre_gates, enc)
    ctx.activation, ctx.impl = activation, impl


def _lstu_backward(ctx, grad_h, grad_c):
    grads = _lstu_gates_backward(grad_h, grad_c, *ctx.saved_tensors, ctx.activation, ctx.impl)
    return *grads, None, None


_lstu_gates.register_autograd(_lstu_backward, setup_context=_lstu_setup)
_lstu_gates_backward.register_autograd(_no_double_backward("lstu_gates"),
                                       setup_context=lambda ctx, inputs, output: None)


@torch.library.custom_op("hrops::stu_reset", mutates_args=())
def _stu_reset(pre_r: torch.Tensor, s_hat: torch.Tensor, impl: str) -> torch.Tensor:
    return _kernel(impl, "stu_reset")(pre_r, s_hat)


@_stu_reset.register_fake
def _(pre_r, s_hat, impl):
    return _like(s_hat)


@torch.library.custom_op("hrops::stu_reset_backward", mutates_args=())
def _stu_reset_backward(grad: torch.Tensor, pre_r: torch.Tensor, s_hat: torch.Tensor,
                        impl: str) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(_kernel(impl, "stu_reset_backward")(grad, pre_r, s_hat))


@_stu_reset_backward.register_fake
def _(grad, pre_r, s_hat, impl):
    return _like(s_hat), _like(s_hat)


def _stu_reset_setup(ctx, inputs, output):
    pre_r, s_hat, impl = inputs
    ctx.save_for_backward(pre_r, s_hat)
    ctx.impl = impl


def _stu_reset_grad(ctx, grad):
    return *_stu_reset_backward(grad, *ctx.saved_tensors, ctx.impl), None


_stu_reset.register_autograd(_stu_reset_grad, setup_context=_stu_reset_setup)
_stu_reset_backward.register_autograd(_no_double_backward("stu_reset"),
                                      setup_context=lambda ctx, inputs, output: None)


@torch.library.custom_op("hrops::gru_update", mutates_args=())
def _gru_update(pre_z: torch.Tensor, h: torch.Tensor, pre_q: torch.Tensor,
                impl: str) -> torch.Tensor:
    return _kernel(impl, "gru_update")(pre_z, h, pre_q)


@_gru_update.register_fake
def _(pre_z, h, pre_q, impl):
    return _like(h)


@torch.library.custom_op("hrops::gru_update_backward", mutates_args=())
def _gru_update_backward(grad: torch.Tensor, pre_z: torch.Tensor, h: torch.Tensor,
                         pre_q: torch.Tensor, impl: str
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(_kernel(impl, "gru_update_backward")(grad, pre_z, h, pre_q))


@_gru_update_backward.register_fake
def _(grad, pre_z, h, pre_q, impl):
    return _like(h), _like(h), _like(h)


def _gru_update_setup(ctx, inputs, output):
    pre_z, h, pre_q, impl = inputs
    ctx.save_for_backward(pre_z, h, pre_q)
    ctx.impl = impl


def _gru_update_grad(ctx, grad):
    return *_gru_update_backward(grad, *ctx.saved_tensors, ctx.impl), None


_gru_update.register_autograd(_gru_update_grad, setup_context=_gru_update_setup)
_gru_update_backward.register_autograd(_no_double_backward("gru_update"),
                                       setup_context=lambda ctx, inputs, output: None)


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
    """CooGAN's LSTU gating (SEEDS.md 5.3) in one pass.

    x_up: the upsampled state x_t (N, C, H, W); x_tilde: its 1x1 projection;
    pre_gates: (N, 2C, H, W) = [pre_f | pre_r], the gate pre-activations (one
    convolution of x_t); enc: the encoder feature. activation: "tanh"
    (SRU_modify) or "relu" (SRU_modify_relu). Returns (h, c):
    c = f*enc + (1-f)*x_tilde, h = r*g(c) + (1-r)*x_up, f, r = sigmoid(pre_f, pre_r).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"lstu_gates: activation must be one of {tuple(ACTIVATIONS)}, "
                         f"got {activation!r}")
    _check_operands("lstu_gates", dict(x_up=x_up, x_tilde=x_tilde, pre_gates=pre_gates, enc=enc),
                    "x_up", groups={"pre_gates": 2})
    impl = _backends.resolve("lstu_gates", impl, x_up.device)
    if impl == "ref":
        return ref.lstu_gates(x_up, x_tilde, pre_gates, enc, activation)
    return _lstu_gates(x_up, x_tilde, pre_gates, enc, ACTIVATIONS[activation], impl)


def stu_reset(pre_r: torch.Tensor, s_hat: torch.Tensor, *, impl: str | None = None):
    """STGAN's STU reset (SEEDS.md 5.1): s_new = sigmoid(pre_r) * s_hat, all (N, C, H, W)."""
    _check_operands("stu_reset", dict(pre_r=pre_r, s_hat=s_hat), "s_hat")
    impl = _backends.resolve("stu_reset", impl, s_hat.device)
    if impl == "ref":
        return ref.stu_reset(pre_r, s_hat)
    return _stu_reset(pre_r, s_hat, impl)


def gru_update(pre_z: torch.Tensor, h: torch.Tensor, pre_q: torch.Tensor, *,
               impl: str | None = None):
    """Gated update h' = (1-z)*h + z*tanh(pre_q), z = sigmoid(pre_z), all
    (N, C, H, W): the ConvGRU step (SEEDS.md 4.4) and STGAN's STU output."""
    _check_operands("gru_update", dict(pre_z=pre_z, h=h, pre_q=pre_q), "h")
    impl = _backends.resolve("gru_update", impl, h.device)
    if impl == "ref":
        return ref.gru_update(pre_z, h, pre_q)
    return _gru_update(pre_z, h, pre_q, impl)


def stu_update(pre_u: torch.Tensor, s_hat: torch.Tensor, pre_info: torch.Tensor, *,
               impl: str | None = None):
    """STGAN's STU output (SEEDS.md 5.1): out = (1-u)*s_hat + u*tanh(pre_info),
    u = sigmoid(pre_u); the same op as gru_update."""
    _check_operands("stu_update", dict(pre_u=pre_u, s_hat=s_hat, pre_info=pre_info), "s_hat")
    return gru_update(pre_u, s_hat, pre_info, impl=impl)
