"""CooGAN's LSTU and STGAN's STU cells as ops, each cell one autograd node
(csmliu/STGAN models.py, ConvGRUCell; neuralchen/CooGAN components/STU/
SRU_modify.py and SRU_modify_relu.py; hrops.nn.LSTU / STU hold their
parameters and document the layout).

  hrops::lstu_cell(enc, state, attr, w_up, b_up, w_t, b_t, w_g, b_g,
                   activation, channels_last, impl) -> (h, c, *saved)
  hrops::stu_cell(enc, state, attr, w_up, b_up, w_g, b_g, w_i, b_i,
                  channels_last, impl) -> (out, s_new, *saved)

`saved` are the tensors the backward needs besides the inputs, returned so
that the node can keep them (non-differentiable): the LSTU's upsampled state
x and gate pre-activations (3d channels; x~ is recomputed by its 1x1
convolution), the STU's [enc, s_hat] and gate pre-activations (in_dim + 4d
channels; s_new is recomputed from them), and the state in the convolution
layout when that needed a copy (the upsampling's backward reads it so; else
an empty tensor). No sigmoid/tanh output is kept. The backward is written
with PyTorch ops and the gating kernels' backward ops; second derivatives
are not supported (the gating backward ops raise).

  hrops::stu_bn_cell(enc, state, attr, w_up, w_g, gamma_g, beta_g, w_i,
                     gamma_i, beta_i, eps_g, eps_i, channels_last, impl)
      -> (out, s_new, mean_g, var_g, mean_i, var_i, *saved)

is the training STU of bluestyle97/STGAN-pytorch (models/stgan.py,
ConvGRUCell: bias-free convolutions, BatchNorm after each gate convolution)
with the BatchNorms normalizing by batch statistics; see _stu_bn_cell_body.
"""
import torch
import torch.nn.functional as F

from ._define import composite_op
from .gates import (_gru_update, _gru_update_backward, _lstu_gates, _lstu_gates_backward,
                    _stu_reset, _stu_reset_backward)

_conv_backward = torch.ops.aten.convolution_backward.default


def _layout(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def _state_in_layout(state, channels_last):
    """(state in the convolution layout, its copy or an empty tensor)."""
    if state.is_contiguous(memory_format=_layout(channels_last)):
        return state, state.new_empty(0)
    copy = state.contiguous(memory_format=_layout(channels_last))
    return copy, copy


def _is_channels_last(t):
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _grads(grad, inp, weight, padding, bias):
    """(grad_input, grad_weight, grad_bias) of a stride-1 2-D convolution."""
    g_inp, g_weight, _ = _conv_backward(grad, inp, weight, None, [1, 1], [padding, padding],
                                        [1, 1], False, [0, 0], 1, [True, True, False])
    return g_inp, g_weight, _channel_sums(grad) if bias else None


# Taps of a 4-tap, stride-2, padding-1 transposed convolution that reach
# output row Y (Y = 2y - 1 + k): row 0 gets tap 1, even interior rows 1 and
# 3, odd interior rows 0 and 2, the last row 2. Rows: classes, columns: taps.
_UPSAMPLE_TAPS = ((0., 1., 0., 0.), (0., 1., 0., 1.), (1., 0., 1., 0.), (0., 0., 1., 0.))


def _upsample_taps(like):
    return torch.tensor(_UPSAMPLE_TAPS, dtype=like.dtype, device=like.device)


def _class_slices(size):
    """Output rows (or columns) of each class of _UPSAMPLE_TAPS, as slices."""
    return [slice(0, 1), slice(2, size - 1, 2), slice(1, size - 1, 2), slice(size - 1, size)]


def _upsample(state, attr, w_up, b_up):
    """The cells' upsampling conv_transpose2d([state, attr tiled], w_up, b_up,
    stride 2, padding 1), in state's layout. The transposed convolution runs
    on the state channels only: the tiled attribute channels are constant
    over the pixels, so they add one value per output channel and (row
    class, column class) block, added in place per row class (no tiled copy
    of the attributes, 13 of STGAN's 77 input channels fewer)."""
    c_prev = state.shape[1]
    x = F.conv_transpose2d(state, w_up[:c_prev], b_up, stride=2, padding=1)
    n, d, hh, ww = x.shape
    taps = _upsample_taps(x)
    blocks = torch.einsum("na,aoij,ri,cj->norc", attr.to(x.dtype), w_up[c_prev:], taps, taps)
    # each column's block value per row class, channels innermost where x has them
    columns = (torch.empty(n, 4, ww, d, dtype=x.dtype, device=x.device).permute(0, 3, 1, 2)
               if _is_channels_last(x) else x.new_empty(n, d, 4, ww))
    for c, cols in enumerate(_class_slices(ww)):
        columns[..., cols] = blocks[..., c, None]
    for r, rows in enumerate(_class_slices(hh)):
        x[:, :, rows] += columns[:, :, r, None]
    return x


def _row_classes(size, like):
    """(4, size) indicator of each output row's class (see _class_slices)."""
    cls = torch.zeros(4, size, dtype=like.dtype, device=like.device)
    for r, rows in enumerate(_class_slices(size)):
        cls[r, rows] = 1
    return cls


def _upsample_grads(g, state, attr, w_up):
    """Gradients (state, attr, weight, bias) of the cells' upsampling
    conv_transpose2d([state, attr tiled], w_up, b_up, stride 2, padding 1),
    g its output gradient, in state's layout. The tiled attribute channels
    are constant over the pixels, so their share needs only g's sums over the
    16 (row class, column class) blocks: convolution_backward runs on the
    state channels alone (13 of STGAN's 77 fewer, about 7 ms of the LSTU's 40
    at CooGAN-256's last level on a Xeon), and the bias gradient comes with
    the sums."""
    n, d, hh, ww = g.shape
    c_prev = state.shape[1]
    g_state, gw_state, _ = _conv_backward(g, state, w_up[:c_prev], None, [2, 2],
                                          [1, 1], [1, 1], True, [0, 0], 1, [True, True, False])
    row_cls, col_cls = _row_classes(hh, g), _row_classes(ww, g)
    if _is_channels_last(g):
        rows = row_cls @ _pixels(g).view(n, hh, ww * d)  # (N, 4, W * d)
        blocks = torch.einsum("cX,nrXo->norc", col_cls, rows.view(n, 4, ww, d))
    else:  # columns first: a plain GEMM on g's rows, then a small batched one
        blocks = row_cls @ (g.reshape(-1, ww) @ col_cls.t()).view(n * d, hh, 4)
        blocks = blocks.view(n, d, 4, 4)
    taps = _upsample_taps(g)
    per_tap = torch.einsum("nork,ri,kj->noij", blocks, taps, taps)  # g summed per tap
    w_attr = w_up[c_prev:]
    g_attr = torch.einsum("aoij,noij->na", w_attr, per_tap).to(attr.dtype)
    gw_attr = torch.einsum("na,noij->aoij", attr.to(g.dtype), per_tap)
    return g_state, g_attr, torch.cat([gw_state, gw_attr]), blocks.sum((0, 2, 3))


def _column_sums(m):
    """m.sum(0) of a (pixels, C) matrix as one GEMV."""
    return torch.mv(m.t(), m.new_ones(m.shape[0]))


def _channel_sums(t):
    """t.sum((0, 2, 3)); of a channels-last map over its pixels as a GEMV
    (convolution_backward's own bias gradient of a channels-last map took
    14 ms of the LSTU's transposed convolution (B8, 32 ch, 128^2), this 1)."""
    return _column_sums(_pixels(t)) if _is_channels_last(t) else t.sum((0, 2, 3))


def _pixels(t):
    """(N, C, H, W) -> (N*H*W, C): a view of a channels-last tensor."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _from_pixels(m, like):
    """(N*H*W, C) -> a channels-last (N, C, H, W) view, like's N, H, W."""
    n, _, h, w = like.shape
    return m.view(n, h, w, -1).permute(0, 3, 1, 2)


def _transform(x, w_t, b_t):
    """The LSTU's 1x1 transform conv2d(x, w_t, b_t), in x's layout, as GEMMs
    (ATen's 1x1 convolution takes its slow path on CPU): on the pixels of a
    channels-last x, per image on the planes of an NCHW one."""
    w = w_t.flatten(1)
    if _is_channels_last(x):
        return _from_pixels(torch.addmm(b_t, _pixels(x), w.t()), x)
    n, d, h, wd = x.shape
    return torch.baddbmm(b_t.view(1, -1, 1), w.expand(n, -1, -1),
                         x.reshape(n, d, h * wd)).view(n, w.shape[0], h, wd)


def _transform_grads(gxt, x, w_t, gx):
    """(grad_weight, grad_bias) of _transform(x, w_t, b_t) for its output
    gradient gxt (x's layout); its input gradient is added into gx in place."""
    w = w_t.flatten(1)
    if _is_channels_last(x) and _is_channels_last(gx):
        gxt = _pixels(gxt)
        _pixels(gx).addmm_(gxt, w)
        return (gxt.t() @ _pixels(x)).view_as(w_t), _column_sums(gxt)
    n, d, h, wd = x.shape
    gxt_planes = gxt.reshape(n, d, h * wd)
    if gx.is_contiguous():
        gx.view(n, d, h * wd).baddbmm_(w.t().expand(n, -1, -1), gxt_planes)
    else:
        gx.add_((w.t() @ gxt_planes).view_as(gx))
    gw = torch.bmm(gxt_planes, x.reshape(n, d, h * wd).transpose(1, 2)).sum(0)
    return gw.view_as(w_t), gxt.sum((0, 2, 3))


def _lstu_cell_body(enc: torch.Tensor, state: torch.Tensor, attr: torch.Tensor,
                    w_up: torch.Tensor, b_up: torch.Tensor, w_t: torch.Tensor, b_t: torch.Tensor,
                    w_g: torch.Tensor, b_g: torch.Tensor, activation: int, channels_last: bool,
                    impl: str
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                               torch.Tensor]:
    state, state_copy = _state_in_layout(state, channels_last)
    x = _upsample(state, attr, w_up, b_up)
    pre = F.conv2d(x, w_g, b_g, padding=w_g.shape[-1] // 2)
    h, c = _lstu_gates(x, _transform(x, w_t, b_t), pre, enc, activation, impl)
    return h, c, state_copy, x, pre


def _lstu_setup(ctx, inputs, output):
    enc, state, attr, w_up, _, w_t, b_t, w_g, _, ctx.activation, _, ctx.impl = inputs
    _, _, state_copy, x, pre = output
    ctx.mark_non_differentiable(state_copy, x, pre)
    ctx.save_for_backward(enc, state if state_copy.numel() == 0 else state_copy,
                          attr, w_up, w_t, b_t, w_g, x, pre)


def _lstu_grad(ctx, grad_h, grad_c, *_):
    enc, state, attr, w_up, w_t, b_t, w_g, x, pre = ctx.saved_tensors
    gx, gxt, gpre, genc = _lstu_gates_backward(grad_h, grad_c, x, _transform(x, w_t, b_t), pre,
                                               enc, ctx.activation, ctx.impl)
    gx_g, gw_g, gb_g = _grads(gpre, x, w_g, w_g.shape[-1] // 2, True)
    # x's three gradient terms summed in the convolution's fresh output
    # (x's layout), the 1x1 transform's in place.
    gw_t, gb_t = _transform_grads(gxt, x, w_t, gx_g)
    gx = gx_g.add_(gx)
    g_state, g_attr, gw_up, gb_up = _upsample_grads(gx, state, attr, w_up)
    return genc, g_state, g_attr, gw_up, gb_up, gw_t, gb_t, gw_g, gb_g, None, None, None


def _stu_cell_body(enc: torch.Tensor, state: torch.Tensor, attr: torch.Tensor,
                   w_up: torch.Tensor, b_up: torch.Tensor, w_g: torch.Tensor, b_g: torch.Tensor,
                   w_i: torch.Tensor, b_i: torch.Tensor, channels_last: bool, impl: str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                              torch.Tensor, torch.Tensor]:
    d = w_up.shape[1]
    state, state_copy = _state_in_layout(state, channels_last)
    s_hat = _upsample(state, attr, w_up, b_up)
    enc_s_hat = torch.cat([enc.contiguous(memory_format=_layout(channels_last)), s_hat], 1)
    pre = F.conv2d(enc_s_hat, w_g, b_g, padding=w_g.shape[-1] // 2)
    s_new = _stu_reset(pre[:, :d], s_hat, impl)
    pre_info = F.conv2d(torch.cat([enc_s_hat[:, :enc.shape[1]], s_new], 1), w_i, b_i,
                        padding=w_i.shape[-1] // 2)
    out = _gru_update(pre[:, d:], s_hat, pre_info, impl)
    return out, s_new, state_copy, enc_s_hat, pre, pre_info


def _stu_setup(ctx, inputs, output):
    enc, state, attr, w_up, _, w_g, _, w_i, _, _, ctx.impl = inputs
    _, _, state_copy, enc_s_hat, pre, pre_info = output
    ctx.mark_non_differentiable(state_copy, enc_s_hat, pre, pre_info)
    ctx.save_for_backward(enc, state if state_copy.numel() == 0 else state_copy,
                          attr, w_up, w_g, w_i, enc_s_hat, pre, pre_info)


def _stu_grad(ctx, grad_out, grad_s_new, *_):
    enc, state, attr, w_up, w_g, w_i, enc_s_hat, pre, pre_info = ctx.saved_tensors
    d, e = w_up.shape[1], enc.shape[1]
    s_hat = enc_s_hat[:, e:]
    s_new = _stu_reset(pre[:, :d], s_hat, ctx.impl)
    g_pu, g_shat, g_pinfo = _gru_update_backward(grad_out, pre[:, d:], s_hat, pre_info, ctx.impl)
    g_cat, gw_i, gb_i = _grads(g_pinfo, torch.cat([enc_s_hat[:, :e], s_new], 1), w_i,
                               w_i.shape[-1] // 2, True)
    g_pr, g_shat_r = _stu_reset_backward(g_cat[:, e:] + grad_s_new, pre[:, :d], s_hat, ctx.impl)
    g_cat1, gw_g, gb_g = _grads(torch.cat([g_pr, g_pu], 1), enc_s_hat, w_g, w_g.shape[-1] // 2,
                                True)
    g_enc = g_cat[:, :e] + g_cat1[:, :e]
    g_shat += g_shat_r
    g_shat += g_cat1[:, e:]
    g_state, g_attr, gw_up, gb_up = _upsample_grads(g_shat, state, attr, w_up)
    return g_enc, g_state, g_attr, gw_up, gb_up, gw_g, gb_g, gw_i, gb_i, None, None


def _normalize(x, gamma, beta, eps):
    """BatchNorm of x by its batch statistics, in x's dtype and layout: (y,
    mean, 1 / sqrt(biased variance + eps)) per channel, the statistics in
    float32 for half-precision x (gamma and beta go in float32, as
    nn.BatchNorm2d's under autocast). Deterministic, so that the backward's
    recomputation is bit for bit the forward's."""
    opmath = torch.promote_types(x.dtype, torch.float32)
    return torch.native_batch_norm(x, gamma.to(opmath), beta.to(opmath), None, None, True, 0.0,
                                   eps)


def _normalize_grads(grad, x, gamma, mean, invstd, eps):
    """Gradients (x, gamma, beta) of _normalize."""
    gx, g_gamma, g_beta = torch.ops.aten.native_batch_norm_backward(
        grad, x, gamma.to(mean.dtype), None, None, mean, invstd, True, eps, [True, True, True])
    return gx, g_gamma.to(gamma.dtype), g_beta.to(gamma.dtype)


def _stu_bn_cell_body(enc: torch.Tensor, state: torch.Tensor, attr: torch.Tensor,
                      w_up: torch.Tensor, w_g: torch.Tensor, gamma_g: torch.Tensor,
                      beta_g: torch.Tensor, w_i: torch.Tensor, gamma_i: torch.Tensor,
                      beta_i: torch.Tensor, eps_g: float, eps_i: float, channels_last: bool,
                      impl: str
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                 torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                 torch.Tensor, torch.Tensor]:
    """bluestyle97/STGAN-pytorch's STU (models/stgan.py, ConvGRUCell; STGAN,
    Liu et al., CVPR 2019) in training: the gate convolutions' outputs
    normalized by their batch statistics (gates_norm over [r | u], info_norm).
    Those are returned, mean_g, var_g, mean_i, var_i (per channel, float32 at
    least; the biased variances from the normalization's 1 / sqrt(var + eps)),
    for the layer to update its running statistics, since an op cannot write
    the BatchNorms' buffers.

    Saved for the backward, besides the inputs: [enc, s_hat] and both
    convolutions' outputs before normalization, in_dim + 4d channels per
    pixel (640 B/px in float32 at in_dim = d = 32), and the state's layout
    copy (see the module doc). The normalization, s_new and the gating are
    recomputed. The module graph keeps 2 in_dim + 9d channels (1408 B/px)
    and the tiled state at a quarter of the pixels: both concatenated
    convolution inputs, both maps before and after normalization, and s_hat
    for the gating."""
    d, e = w_up.shape[1], enc.shape[1]
    state, state_copy = _state_in_layout(state, channels_last)
    s_hat = _upsample(state, attr, w_up, None)
    enc_s_hat = torch.cat([enc.contiguous(memory_format=_layout(channels_last)), s_hat], 1)
    pre_raw = F.conv2d(enc_s_hat, w_g, padding=w_g.shape[-1] // 2)
    pre, mean_g, invstd_g = _normalize(pre_raw, gamma_g, beta_g, eps_g)
    s_new = _stu_reset(pre[:, :d], s_hat, impl)
    info_raw = F.conv2d(torch.cat([enc_s_hat[:, :e], s_new], 1), w_i,
                        padding=w_i.shape[-1] // 2)
    info, mean_i, invstd_i = _normalize(info_raw, gamma_i, beta_i, eps_i)
    out = _gru_update(pre[:, d:], s_hat, info, impl)
    return (out, s_new, mean_g, invstd_g.pow(-2).sub_(eps_g), mean_i,
            invstd_i.pow(-2).sub_(eps_i), state_copy, enc_s_hat, pre_raw, info_raw)


def _stu_bn_setup(ctx, inputs, output):
    (enc, state, attr, w_up, w_g, gamma_g, beta_g, w_i, gamma_i, beta_i, ctx.eps_g, ctx.eps_i,
     _, ctx.impl) = inputs
    state_copy, enc_s_hat, pre_raw, info_raw = output[6:]
    ctx.mark_non_differentiable(*output[2:])
    # no zero gradients filled for the statistics and saved maps
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(enc, state if state_copy.numel() == 0 else state_copy, attr, w_up, w_g,
                          gamma_g, beta_g, w_i, gamma_i, beta_i, enc_s_hat, pre_raw, info_raw)


def _stu_bn_grad(ctx, grad_out, grad_s_new, *_):
    (enc, state, attr, w_up, w_g, gamma_g, beta_g, w_i, gamma_i, beta_i, enc_s_hat, pre_raw,
     info_raw) = ctx.saved_tensors
    d, e = w_up.shape[1], enc.shape[1]
    s_hat = enc_s_hat[:, e:]
    pre, mean_g, invstd_g = _normalize(pre_raw, gamma_g, beta_g, ctx.eps_g)
    s_new = _stu_reset(pre[:, :d], s_hat, ctx.impl)
    info, mean_i, invstd_i = _normalize(info_raw, gamma_i, beta_i, ctx.eps_i)
    if grad_out is None:
        grad_out = torch.zeros_like(s_new)
    g_pu, g_shat, g_info = _gru_update_backward(grad_out, pre[:, d:], s_hat, info, ctx.impl)
    g_info_raw, g_gamma_i, g_beta_i = _normalize_grads(g_info, info_raw, gamma_i, mean_i,
                                                       invstd_i, ctx.eps_i)
    g_cat, gw_i, _ = _grads(g_info_raw, torch.cat([enc_s_hat[:, :e], s_new], 1), w_i,
                            w_i.shape[-1] // 2, False)
    g_s_new = g_cat[:, e:] if grad_s_new is None else g_cat[:, e:] + grad_s_new
    g_pr, g_shat_r = _stu_reset_backward(g_s_new, pre[:, :d], s_hat, ctx.impl)
    g_pre_raw, g_gamma_g, g_beta_g = _normalize_grads(torch.cat([g_pr, g_pu], 1), pre_raw,
                                                      gamma_g, mean_g, invstd_g, ctx.eps_g)
    g_cat1, gw_g, _ = _grads(g_pre_raw, enc_s_hat, w_g, w_g.shape[-1] // 2, False)
    g_enc = g_cat[:, :e] + g_cat1[:, :e]
    g_shat += g_shat_r
    g_shat += g_cat1[:, e:]
    g_state, g_attr, gw_up, _ = _upsample_grads(g_shat, state, attr, w_up)
    return (g_enc, g_state, g_attr, gw_up, gw_g, g_gamma_g, g_beta_g, gw_i, g_gamma_i, g_beta_i,
            None, None, None, None)


_lstu_cell = composite_op("lstu_cell", _lstu_cell_body, backward=_lstu_grad, setup=_lstu_setup,
                          autocast="lower_precision")
_stu_cell = composite_op("stu_cell", _stu_cell_body, backward=_stu_grad, setup=_stu_setup,
                         autocast="lower_precision")
_stu_bn_cell = composite_op("stu_bn_cell", _stu_bn_cell_body, backward=_stu_bn_grad,
                            setup=_stu_bn_setup, autocast="lower_precision")
