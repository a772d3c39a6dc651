"""CooGAN's LSTU and STGAN's STU cells (SEEDS.md 5.1-5.3) on hrops' gating ops.

Both cells take the encoder feature `enc` (N, d, H, W), the coarser state
(N, C_prev, H/2, W/2) and the attribute difference (N, A), which is tiled
onto the state before the transposed convolution (STGAN's `_concat`), so the
upsampling sees state_dim = C_prev + A channels.

Parameter layout (names as in the modules below):
  LSTU  upsample  ConvTranspose2d(state_dim, d, 4, stride 2, padding 1)  [TF 'SAME']
        transform Conv2d(d, d, 1)                   x~ = transform(x_t)
        gates     Conv2d(d, 2d, k, padding k//2)    output channels [f | r]
        parameters: 16*state_dim*d + d + (d*d + d) + 2*(9*d*d + d) for k = 3
  STU   upsample  ConvTranspose2d(state_dim, d, 4, 2, 1)
        gates     Conv2d(in_dim + d, 2d, k)         output channels [r | u], input [enc, s_hat]
        info      Conv2d(in_dim + d, d, k)          input [enc, s_new]
        parameters: 16*state_dim*d + d + 3*(9*2d*d + d) for in_dim = d, k = 3
The two gate convolutions of a cell share their input, so they run as one
convolution with concatenated weights. `norm="batch"` (STU only) gives
bluestyle97/STGAN-pytorch's variant: bias-free convolutions and transposed
convolution, each gate conv followed by BatchNorm (gates_norm over [r | u],
info_norm); `load_bluestyle97_stu` maps its state_dict names onto this layout.

Memory: with the default (no norm) the whole cell is one autograd node that
saves, besides its inputs and weights, the LSTU's upsampled state and gate
pre-activations (3d channels; x~ is recomputed by its 1x1 convolution) or
the STU's [enc, s_hat] and gate pre-activations (in_dim + 4d channels;
s_new is recomputed from them), and the state in the convolution layout (a
copy when it is in the other one: the upsampling's backward reads it so); no
sigmoid/tanh output is kept. `impl="ref"` runs the plain module graph (the
original cells' eager computation) instead.

Layout: `conv_layout="auto"` convolves channels-last on CUDA and on CPUs with
AVX-512 and NCHW on other CPUs, whichever oneDNN runs faster there (see
conv_channels_last); "channels_last" / "contiguous" force one. Outputs come
in that layout.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .. import _backends
from ..ops import gates as gate_ops

_conv_backward = torch.ops.aten.convolution_backward.default


def tile_attributes(state, attr):
    """[state, attr tiled to state's H x W] on the channel axis."""
    n, _, h, w = state.shape
    return torch.cat([state, attr[:, :, None, None].to(state.dtype).expand(n, -1, h, w)], 1)


CONV_LAYOUTS = ("auto", "channels_last", "contiguous")
# Read once: torch.compile cannot trace the query.
_CPU_HAS_AVX512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def conv_channels_last(conv_layout, device):
    """Whether a fused cell convolves channels-last. "auto": yes on CUDA and
    on CPUs where oneDNN has AVX-512, no (NCHW) on other CPUs. Measured, 1
    thread, the LSTU gate conv (B8, 32->64 ch, 128^2) fwd+bwd: on a Xeon with
    AVX-512 NHWC 151 vs NCHW 267 ms; on an AMD EPYC (Zen 1, AVX2) NHWC 668 vs
    NCHW 476 ms, its weight gradient alone 360 vs 182 ms. The gating kernels
    read either layout in place."""
    if conv_layout != "auto":
        return conv_layout == "channels_last"
    return device.type != "cpu" or _CPU_HAS_AVX512


def _in_layout(t, channels_last):
    return t.contiguous(memory_format=torch.channels_last if channels_last else
                        torch.contiguous_format)


def _is_channels_last(t):
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _check_conv_layout(conv_layout):
    if conv_layout not in CONV_LAYOUTS:
        raise ValueError(f"conv_layout must be one of {CONV_LAYOUTS}, got {conv_layout!r}")
    return conv_layout


def _check_cell_inputs(cell, enc, state, attr, in_dim, state_dim):
    if enc.dim() != 4 or enc.shape[1] != in_dim:
        raise ValueError(f"{cell}: enc must have shape (N, {in_dim}, H, W), got {tuple(enc.shape)}")
    n, _, h, w = enc.shape
    if attr.dim() != 2 or attr.shape[0] != n:
        raise ValueError(f"{cell}: attr must have shape (N, A) = ({n}, A), got {tuple(attr.shape)}")
    want = state_dim - attr.shape[1]
    if state.dim() != 4 or tuple(state.shape) != (n, want, h // 2, w // 2) or h % 2 or w % 2:
        raise ValueError(f"{cell}: state must have shape (N, state_dim - A, H/2, W/2) = "
                         f"{(n, want, h // 2, w // 2)} for enc {tuple(enc.shape)} and "
                         f"{attr.shape[1]} attributes (H, W even), got {tuple(state.shape)}")


def _grads(grad, inp, weight, padding, bias):
    """(grad_input, grad_weight, grad_bias) of a stride-1 2-D convolution."""
    g_inp, g_weight, _ = _conv_backward(grad, inp, weight, None, [1, 1], [padding, padding],
                                        [1, 1], False, [0, 0], 1, [True, True, False])
    return g_inp, g_weight, _channel_sums(grad) if bias else None


# Taps of a 4-tap, stride-2, padding-1 transposed convolution that reach
# output row Y (Y = 2y - 1 + k): row 0 gets tap 1, even interior rows 1 and
# 3, odd interior rows 0 and 2, the last row 2. Rows: classes, columns: taps.
_UPSAMPLE_TAPS = torch.tensor([[0., 1., 0., 0.], [0., 1., 0., 1.], [1., 0., 1., 0.],
                               [0., 0., 1., 0.]])


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
    taps = _UPSAMPLE_TAPS.to(x)
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
    taps = _UPSAMPLE_TAPS.to(g)
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
                         x.reshape(n, d, h * wd)).view(n, -1, h, wd)


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


class _LSTUCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, enc, state, attr, w_up, b_up, w_t, b_t, w_g, b_g, activation, impl,
                channels_last):
        state = _in_layout(state, channels_last)  # saved so: the backward reads it so too
        x = _upsample(state, attr, w_up, b_up)
        pre = F.conv2d(x, w_g, b_g, padding=w_g.shape[-1] // 2)
        h, c = gate_ops._lstu_gates(x, _transform(x, w_t, b_t), pre, enc, activation, impl)
        ctx.save_for_backward(enc, state, attr, w_up, w_t, b_t, w_g, x, pre)
        ctx.activation, ctx.impl = activation, impl
        return h, c

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        enc, state, attr, w_up, w_t, b_t, w_g, x, pre = ctx.saved_tensors
        gx, gxt, gpre, genc = gate_ops._lstu_gates_backward(
            grad_h, grad_c, x, _transform(x, w_t, b_t), pre, enc, ctx.activation, ctx.impl)
        gx_g, gw_g, gb_g = _grads(gpre, x, w_g, w_g.shape[-1] // 2, True)
        # x's three gradient terms summed in the convolution's fresh output
        # (x's layout), the 1x1 transform's in place.
        gw_t, gb_t = _transform_grads(gxt, x, w_t, gx_g)
        gx = gx_g.add_(gx)
        g_state, g_attr, gw_up, gb_up = _upsample_grads(gx, state, attr, w_up)
        return (genc, g_state, g_attr, gw_up, gb_up, gw_t, gb_t, gw_g, gb_g, None, None, None)


class LSTU(nn.Module):
    """CooGAN's Light Selective Transfer Unit (SEEDS.md 5.3): SRU_modify
    (activation "tanh", CooGAN-128) or SRU_modify_relu ("relu", CooGAN-256).

    forward(enc, state, attr) -> (h, c): h goes to the decoder skip, c is the
    next level's state. in_dim = d (the encoder feature's channels, also the
    cell's width), state_dim = the state's channels plus the attributes.
    """

    def __init__(self, in_dim, state_dim, activation="tanh", kernel_size=3, impl=None,
                 conv_layout="auto"):
        super().__init__()
        self.conv_layout = _check_conv_layout(conv_layout)
        if activation not in gate_ops.ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(gate_ops.ACTIVATIONS)}, "
                             f"got {activation!r}")
        d = in_dim
        self.in_dim, self.state_dim, self.activation, self.impl = d, state_dim, activation, impl
        self.upsample = nn.ConvTranspose2d(state_dim, d, 4, 2, 1)
        self.transform = nn.Conv2d(d, d, 1)
        self.gates = nn.Conv2d(d, 2 * d, kernel_size, padding=kernel_size // 2)

    def extra_repr(self):
        return f"in_dim={self.in_dim}, state_dim={self.state_dim}, activation={self.activation!r}"

    def forward(self, enc, state, attr):
        _check_cell_inputs("LSTU", enc, state, attr, self.in_dim, self.state_dim)
        impl = _backends.resolve("lstu_gates", self.impl, enc.device)
        if impl == "ref":
            x = self.upsample(tile_attributes(state, attr))
            return gate_ops.lstu_gates(x, self.transform(x), self.gates(x), enc, self.activation,
                                       impl="ref")
        return _LSTUCell.apply(enc, state, attr, self.upsample.weight, self.upsample.bias,
                               self.transform.weight, self.transform.bias, self.gates.weight,
                               self.gates.bias, gate_ops.ACTIVATIONS[self.activation], impl,
                               conv_channels_last(self.conv_layout, enc.device))


class _STUCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, enc, state, attr, w_up, b_up, w_g, b_g, w_i, b_i, impl, channels_last):
        d = w_up.shape[1]
        state = _in_layout(state, channels_last)  # saved so: the backward reads it so too
        s_hat = _upsample(state, attr, w_up, b_up)
        enc_s_hat = torch.cat([_in_layout(enc, channels_last), s_hat], 1)
        pre = F.conv2d(enc_s_hat, w_g, b_g, padding=w_g.shape[-1] // 2)
        s_new = gate_ops._stu_reset(pre[:, :d], s_hat, impl)
        pre_info = F.conv2d(torch.cat([enc_s_hat[:, :enc.shape[1]], s_new], 1), w_i, b_i,
                            padding=w_i.shape[-1] // 2)
        out = gate_ops._gru_update(pre[:, d:], s_hat, pre_info, impl)
        ctx.save_for_backward(enc, state, attr, w_up, w_g, w_i, enc_s_hat, pre, pre_info)
        ctx.impl = impl
        return out, s_new

    @staticmethod
    def backward(ctx, grad_out, grad_s_new):
        enc, state, attr, w_up, w_g, w_i, enc_s_hat, pre, pre_info = ctx.saved_tensors
        d, e = w_up.shape[1], enc.shape[1]
        s_hat = enc_s_hat[:, e:]
        s_new = gate_ops._stu_reset(pre[:, :d], s_hat, ctx.impl)
        g_pu, g_shat, g_pinfo = gate_ops._gru_update_backward(grad_out, pre[:, d:], s_hat, pre_info,
                                                             ctx.impl)
        g_cat, gw_i, gb_i = _grads(g_pinfo, torch.cat([enc_s_hat[:, :e], s_new], 1), w_i,
                                   w_i.shape[-1] // 2, True)
        g_pr, g_shat_r = gate_ops._stu_reset_backward(g_cat[:, e:] + grad_s_new, pre[:, :d], s_hat,
                                                      ctx.impl)
        g_cat1, gw_g, gb_g = _grads(torch.cat([g_pr, g_pu], 1), enc_s_hat, w_g, w_g.shape[-1] // 2,
                                    True)
        g_enc = g_cat[:, :e] + g_cat1[:, :e]
        g_shat += g_shat_r
        g_shat += g_cat1[:, e:]
        g_state, g_attr, gw_up, gb_up = _upsample_grads(g_shat, state, attr, w_up)
        return (g_enc, g_state, g_attr, gw_up, gb_up, gw_g, gb_g, gw_i, gb_i, None, None)


class STU(nn.Module):
    """STGAN's Selective Transfer Unit (SEEDS.md 5.1, `ConvGRUCell` with
    pass_state 'stu').

    forward(enc, state, attr) -> (out, s_new): out goes to the decoder skip,
    s_new is the next level's state. in_dim: the encoder feature's channels;
    out_dim = d: the cell's width (default in_dim); state_dim: the state's
    channels plus the attributes. norm: None (official STGAN: convolutions
    with bias) or "batch" (bluestyle97/STGAN-pytorch: no biases, BatchNorm
    after each gate conv).
    """

    def __init__(self, in_dim, state_dim, out_dim=None, kernel_size=3, norm=None, impl=None,
                 conv_layout="auto"):
        super().__init__()
        self.conv_layout = _check_conv_layout(conv_layout)
        if norm not in (None, "batch"):
            raise ValueError(f"norm must be None or 'batch', got {norm!r}")
        d = in_dim if out_dim is None else out_dim
        self.in_dim, self.out_dim, self.state_dim, self.norm, self.impl = (in_dim, d, state_dim,
                                                                          norm, impl)
        bias = norm is None
        self.upsample = nn.ConvTranspose2d(state_dim, d, 4, 2, 1, bias=bias)
        self.gates = nn.Conv2d(in_dim + d, 2 * d, kernel_size, padding=kernel_size // 2, bias=bias)
        self.info = nn.Conv2d(in_dim + d, d, kernel_size, padding=kernel_size // 2, bias=bias)
        if norm == "batch":
            self.gates_norm = nn.BatchNorm2d(2 * d)
            self.info_norm = nn.BatchNorm2d(d)

    def extra_repr(self):
        return (f"in_dim={self.in_dim}, out_dim={self.out_dim}, state_dim={self.state_dim}, "
                f"norm={self.norm!r}")

    def forward(self, enc, state, attr):
        _check_cell_inputs("STU", enc, state, attr, self.in_dim, self.state_dim)
        impl = _backends.resolve("stu_gates", self.impl, enc.device)
        if impl != "ref" and self.norm is None:
            return _STUCell.apply(enc, state, attr, self.upsample.weight, self.upsample.bias,
                                  self.gates.weight, self.gates.bias, self.info.weight,
                                  self.info.bias, impl,
                                  conv_channels_last(self.conv_layout, enc.device))
        d = self.out_dim
        s_hat = self.upsample(tile_attributes(state, attr))
        pre = self.gates(torch.cat([enc, s_hat], 1))
        if self.norm == "batch":
            pre = self.gates_norm(pre)
        s_new = gate_ops.stu_reset(pre[:, :d], s_hat, impl=impl)
        pre_info = self.info(torch.cat([enc, s_new], 1))
        if self.norm == "batch":
            pre_info = self.info_norm(pre_info)
        return gate_ops.stu_update(pre[:, d:], s_hat, pre_info, impl=impl), s_new


_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def load_bluestyle97_stu(cell, state_dict, prefix=""):
    """Loads one bluestyle97/STGAN-pytorch `ConvGRUCell` (keys `prefix` +
    upsample.weight, reset_gate.{0,1}.*, update_gate.{0,1}.*, hidden.{0,1}.*)
    into an STU(norm="batch"); the reset and update convolutions and norms
    are concatenated in that order ([r | u])."""
    if cell.norm != "batch":
        raise ValueError("bluestyle97 STU cells use BatchNorm: build the STU with norm='batch'")
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    new = {"upsample.weight": sd["upsample.weight"],
           "gates.weight": torch.cat([sd["reset_gate.0.weight"], sd["update_gate.0.weight"]]),
           "info.weight": sd["hidden.0.weight"]}
    for key in _BN_KEYS:
        new[f"gates_norm.{key}"] = torch.cat([sd[f"reset_gate.1.{key}"],
                                              sd[f"update_gate.1.{key}"]])
        new[f"info_norm.{key}"] = sd[f"hidden.1.{key}"]
    for name in ("gates_norm", "info_norm"):
        src = "reset_gate" if name == "gates_norm" else "hidden"
        if f"{src}.1.num_batches_tracked" in sd:
            new[f"{name}.num_batches_tracked"] = sd[f"{src}.1.num_batches_tracked"]
    cell.load_state_dict(new, strict=True)
    return cell
