"""CooGAN's LSTU and STGAN's STU cells (csmliu/STGAN models.py, ConvGRUCell;
bluestyle97/STGAN-pytorch models/stgan.py; neuralchen/CooGAN
components/STU/SRU_modify.py and SRU_modify_relu.py) on hrops' gating ops.

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

Memory: with the default (no norm) the whole cell is one op
(hrops::lstu_cell, hrops::stu_cell; hrops/ops/recurrent_cells.py says what
it saves: no sigmoid/tanh output). With norm="batch" in eval (running
statistics) the BatchNorms are folded into the gate convolutions and the
cell is hrops::stu_cell too; without autograd on CPU float32 it runs on
oneDNN-prepacked weights instead (hrops.nn._onednn). norm="batch" in
training (batch statistics) is the one op hrops::stu_bn_cell, which returns
the batch statistics, and the layer updates the BatchNorms' running
statistics from them as nn.BatchNorm2d does. `impl="ref"` runs the plain
module graph (the original cells' eager computation) instead.

Layout: `conv_layout="auto"` convolves channels-last on CUDA and on CPUs with
AVX-512 and NCHW on other CPUs, whichever oneDNN runs faster there (see
conv_channels_last); "channels_last" / "contiguous" force one. Outputs come
in that layout.
"""
import torch
from torch import nn

from .. import _backends
from ..ops import gates as gate_ops
from ..ops import recurrent_cells as cells
from ..ops._checks import check_choice, check_same_device_dtype, check_tensor
from . import _onednn
from ._checks import check_counts, check_odd_kernel


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


def _check_cell_inputs(cell, enc, state, attr):
    name, in_dim, state_dim = type(cell).__name__, cell.in_dim, cell.state_dim
    for t, what in ((enc, "enc"), (state, "state"), (attr, "attr")):
        check_tensor(t, what)
    params = f"the {name}'s parameters"
    for t, what in ((state, "state"), (attr, "attr"), (cell.upsample.weight, params)):
        check_same_device_dtype(enc, "enc", t, what)
    if enc.dim() != 4 or enc.shape[1] != in_dim:
        raise ValueError(f"{name}: enc must have shape (N, {in_dim}, H, W), got {tuple(enc.shape)}")
    n, _, h, w = enc.shape
    if h < 2 or w < 2:  # (a state of H/2 x W/2 pixels; ATen cannot upsample an empty one)
        raise ValueError(f"{name}: enc must have H >= 2 and W >= 2, got {tuple(enc.shape)}")
    if attr.dim() != 2 or attr.shape[0] != n:
        raise ValueError(f"{name}: attr must have shape (N, A) = ({n}, A), got {tuple(attr.shape)}")
    want = state_dim - attr.shape[1]
    if state.dim() != 4 or tuple(state.shape) != (n, want, h // 2, w // 2) or h % 2 or w % 2:
        raise ValueError(f"{name}: state must have shape (N, state_dim - A, H/2, W/2) = "
                         f"{(n, want, h // 2, w // 2)} for enc {tuple(enc.shape)} and "
                         f"{attr.shape[1]} attributes (H, W even), got {tuple(state.shape)}")


class LSTU(nn.Module):
    """CooGAN's Light Selective Transfer Unit (neuralchen/CooGAN,
    components/STU/SRU_modify.py and SRU_modify_relu.py): SRU_modify
    (activation "tanh", CooGAN-128) or SRU_modify_relu ("relu", CooGAN-256).

    forward(enc, state, attr) -> (h, c): h goes to the decoder skip, c is the
    next level's state. in_dim = d (the encoder feature's channels, also the
    cell's width), state_dim = the state's channels plus the attributes.
    """

    def __init__(self, in_dim, state_dim, activation="tanh", kernel_size=3, impl=None,
                 conv_layout="auto"):
        super().__init__()
        self.conv_layout = check_choice(conv_layout, "conv_layout", CONV_LAYOUTS)
        activation = check_choice(activation, "activation", tuple(gate_ops.ACTIVATIONS))
        check_counts(in_dim=in_dim, state_dim=state_dim)
        check_odd_kernel(kernel_size)
        d = in_dim
        self.in_dim, self.state_dim, self.activation, self.impl = d, state_dim, activation, impl
        self.upsample = nn.ConvTranspose2d(state_dim, d, 4, 2, 1)
        self.transform = nn.Conv2d(d, d, 1)
        self.gates = nn.Conv2d(d, 2 * d, kernel_size, padding=kernel_size // 2)

    def extra_repr(self):
        return f"in_dim={self.in_dim}, state_dim={self.state_dim}, activation={self.activation!r}"

    def forward(self, enc, state, attr):
        _check_cell_inputs(self, enc, state, attr)
        impl = _backends.resolve("lstu_gates", self.impl, enc.device)
        if impl == "ref":
            x = self.upsample(tile_attributes(state, attr))
            return gate_ops.lstu_gates(x, self.transform(x), self.gates(x), enc, self.activation,
                                       impl="ref")
        return cells._lstu_cell(enc, state, attr, self.upsample.weight, self.upsample.bias,
                               self.transform.weight, self.transform.bias, self.gates.weight,
                               self.gates.bias, gate_ops.ACTIVATIONS[self.activation],
                               conv_channels_last(self.conv_layout, enc.device), impl)[:2]


class STU(nn.Module):
    """STGAN's Selective Transfer Unit (csmliu/STGAN models.py, `ConvGRUCell`
    with pass_state 'stu').

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
        self.conv_layout = check_choice(conv_layout, "conv_layout", CONV_LAYOUTS)
        norm = check_choice(norm, "norm", (None, "batch"))
        d = in_dim if out_dim is None else out_dim
        check_counts(in_dim=in_dim, state_dim=state_dim, out_dim=d)
        check_odd_kernel(kernel_size)
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
        _check_cell_inputs(self, enc, state, attr)
        impl = _backends.resolve("stu_gates", self.impl, enc.device)
        if impl != "ref" and self.norm is None:
            return cells._stu_cell(enc, state, attr, self.upsample.weight, self.upsample.bias,
                                  self.gates.weight, self.gates.bias, self.info.weight,
                                  self.info.bias, conv_channels_last(self.conv_layout, enc.device),
                                  impl)[:2]
        # an empty batch has no statistics: the module graph leaves the running ones
        if impl != "ref" and _batch_norms_batch_statistics(self) and enc.numel() > 0:
            return self._batch_statistics_forward(enc, state, attr, impl)
        if impl != "ref" and _batch_norms_frozen(self):
            if _onednn.available(enc, (state, attr, *self.parameters())):
                return self._packed_forward(enc, state, attr, impl)
            w_g, b_g = _onednn.fold_batch_norm(self.gates.weight, self.gates_norm)
            w_i, b_i = _onednn.fold_batch_norm(self.info.weight, self.info_norm)
            b_up = self.upsample.weight.new_zeros(self.out_dim)
            return cells._stu_cell(enc, state, attr, self.upsample.weight, b_up, w_g, b_g, w_i,
                                  b_i, conv_channels_last(self.conv_layout, enc.device), impl)[:2]
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

    def _batch_statistics_forward(self, enc, state, attr, impl):
        """The cell as hrops::stu_bn_cell, then the BatchNorms' running
        statistics updated from the batch statistics it returns."""
        g, i = self.gates_norm, self.info_norm
        count = enc.shape[0] * enc.shape[2] * enc.shape[3]
        out, s_new, *stats = cells._stu_bn_cell(
            enc, state, attr, self.upsample.weight, self.gates.weight, g.weight, g.bias,
            self.info.weight, i.weight, i.bias, g.eps, i.eps,
            conv_channels_last(self.conv_layout, enc.device), impl)[:6]
        _update_running_statistics(g, *stats[:2], count)
        _update_running_statistics(i, *stats[2:], count)
        return out, s_new

    def _packed_forward(self, enc, state, attr, impl):
        """The eval cell without autograd on oneDNN-prepacked convolutions
        (hrops.nn._onednn), BatchNorms folded in, and the gating kernels."""
        d, packed, p = self.out_dim, self._packed_convs(), self.gates.padding[0]
        channels_last = conv_channels_last(self.conv_layout, enc.device)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        enc, state = enc.contiguous(memory_format=layout), state.contiguous(memory_format=layout)
        s_hat = packed("upsample", tile_attributes(state, attr), (self.upsample.weight,),
                       lambda: (self.upsample.weight, None), transposed=True, stride=2, padding=1)
        pre = packed("gates", torch.cat([enc, s_hat], 1), _bn_sources(self.gates, self.gates_norm),
                     lambda: _onednn.fold_batch_norm(self.gates.weight, self.gates_norm),
                     padding=p)
        s_new = gate_ops.stu_reset(pre[:, :d], s_hat, impl=impl)
        pre_info = packed("info", torch.cat([enc, s_new], 1),
                          _bn_sources(self.info, self.info_norm),
                          lambda: _onednn.fold_batch_norm(self.info.weight, self.info_norm),
                          padding=p)
        return gate_ops.stu_update(pre[:, d:], s_hat, pre_info, impl=impl), s_new

    def _packed_convs(self):
        if "_packed" not in self.__dict__:
            self.__dict__["_packed"] = _onednn.PackedConvs()
        return self.__dict__["_packed"]


def _bn_sources(conv, bn):
    return conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var


def _batch_norms_frozen(cell):
    """Whether an STU(norm="batch") normalizes with running statistics."""
    return (cell.norm == "batch" and _onednn.batch_norm_statistics_frozen(cell.gates_norm)
            and _onednn.batch_norm_statistics_frozen(cell.info_norm))


def _batch_norms_batch_statistics(cell):
    """Whether both BatchNorms of an STU(norm="batch") normalize with batch
    statistics (training, or no running statistics; F.batch_norm's rule),
    with affine parameters (as STU builds them)."""
    return cell.norm == "batch" and all(
        (bn.training or bn.running_mean is None) and bn.affine
        for bn in (cell.gates_norm, cell.info_norm))


@torch.no_grad()
def _update_running_statistics(bn, mean, var, count):
    """bn's counter and running statistics after a batch of `count` values per
    channel with this mean and biased variance, as nn.BatchNorm2d's forward
    updates them: momentum, or the cumulative average when it is None; the
    running variance unbiased."""
    if not (bn.training and bn.track_running_stats):
        return
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    if bn.running_mean is not None:
        bn.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        bn.running_var.mul_(1 - factor).add_(var, alpha=factor * count / (count - 1))


_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_BLUESTYLE97_GATES = ("reset_gate", "update_gate")


def stu_state_from_bluestyle97(sd):
    """One bluestyle97/STGAN-pytorch `ConvGRUCell`'s state_dict (models/
    stgan.py: upsample.weight, {reset_gate,update_gate,hidden}.{0,1}.*) in
    STU(norm="batch")'s names; the reset and update convolutions and norms
    are concatenated in that order ([r | u]). The two gate norms count the
    same batches; the reset gate's counter is kept. A missing key raises
    KeyError naming it."""
    new = {"upsample.weight": sd["upsample.weight"],
           "gates.weight": torch.cat([sd[f"{g}.0.weight"] for g in _BLUESTYLE97_GATES]),
           "info.weight": sd["hidden.0.weight"]}
    for key in _BN_KEYS:
        new[f"gates_norm.{key}"] = torch.cat([sd[f"{g}.1.{key}"] for g in _BLUESTYLE97_GATES])
        new[f"info_norm.{key}"] = sd[f"hidden.1.{key}"]
    for name, src in (("gates_norm", "reset_gate"), ("info_norm", "hidden")):
        if f"{src}.1.num_batches_tracked" in sd:
            new[f"{name}.num_batches_tracked"] = sd[f"{src}.1.num_batches_tracked"]
    return new


def stu_state_to_bluestyle97(sd):
    """The inverse of stu_state_from_bluestyle97: an STU(norm="batch")'s
    state_dict in `ConvGRUCell`'s names."""
    d = sd["info.weight"].shape[0]
    new = {"upsample.weight": sd["upsample.weight"]}
    parts = [(g, "gates", slice(i * d, (i + 1) * d)) for i, g in enumerate(_BLUESTYLE97_GATES)]
    for g, src, rows in parts + [("hidden", "info", slice(None))]:
        new[f"{g}.0.weight"] = sd[f"{src}.weight"][rows]
        for key in _BN_KEYS:
            new[f"{g}.1.{key}"] = sd[f"{src}_norm.{key}"][rows]
        if f"{src}_norm.num_batches_tracked" in sd:
            new[f"{g}.1.num_batches_tracked"] = sd[f"{src}_norm.num_batches_tracked"]
    return new


def load_bluestyle97_stu(cell, state_dict, prefix=""):
    """Loads one bluestyle97/STGAN-pytorch `ConvGRUCell` (keys `prefix` +
    its names, see stu_state_from_bluestyle97) into an STU(norm="batch"),
    strictly."""
    if cell.norm != "batch":
        raise ValueError("bluestyle97 STU cells use BatchNorm: build the STU with norm='batch'")
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    cell.load_state_dict(stu_state_from_bluestyle97(sd), strict=True)
    return cell
