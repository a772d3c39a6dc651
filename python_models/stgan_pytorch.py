"""bluestyle97/STGAN-pytorch's generator (models/stgan.py, `Generator` and
`ConvGRUCell`; STGAN, Liu et al. CVPR 2019, Sec. 3.1-3.2) on
hrops.nn.STU(norm="batch") cells, with the original's parameter names, so
its checkpoints load strictly (`load_bluestyle97_generator`).

The network differs from the TF layout of python_models.stgan: every
convolution is bias-free and followed by BatchNorm (the STU gates too), the
attributes are tiled onto the bottleneck once (decoder.0's input) and onto
each cell's state, not after every decoder layer, decoder.0 keeps the
bottleneck's width, and with one_more_conv the last layer is ConvT4x4/s2 ->
dim/4 + BN + ReLU, then ConvT3x3/s1 -> 3 + tanh. Defaults: the project's
configs/train_stgan.yaml (10 attributes, dim 64, 5 layers, 3 STU levels).

Inference (eval, no autograd, CPU float32): every BatchNorm is folded into
its convolution, the activation fused into it, on weights prepacked for
oneDNN once (hrops.nn._onednn), channels-last where oneDNN runs faster
(hrops.nn.recurrent.conv_channels_last). Otherwise the original module
graph runs, with hrops' fused STU cell ops.
"""
import torch
from torch import nn

import hrops
from hrops.nn import _onednn
from hrops.nn.recurrent import (CONV_LAYOUTS, conv_channels_last, stu_state_from_bluestyle97,
                                stu_state_to_bluestyle97)


class ConvGRUCell(hrops.nn.STU):
    """hrops.nn.STU(norm="batch") whose state_dict has `ConvGRUCell`'s names
    (upsample, reset_gate.{0,1}, update_gate.{0,1}, hidden.{0,1}). in_dim:
    the encoder feature's channels, out_dim the cell's width; the state has
    2 * in_dim channels plus n_attrs, as in the original."""

    def __init__(self, n_attrs, in_dim, out_dim, kernel_size=3, impl=None, conv_layout="auto"):
        super().__init__(in_dim, 2 * in_dim + n_attrs, out_dim, kernel_size, norm="batch",
                         impl=impl, conv_layout=conv_layout)
        self.n_attrs = n_attrs
        self._register_state_dict_hook(_cell_state_to_original)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # The original layout is checked in its own names (a missing or
        # wrongly shaped reset_gate.1.running_var, say), then converted.
        current = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        expected = stu_state_to_bluestyle97(current)
        own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if any(k in expected for k in own):
            for k in own:
                del state_dict[prefix + k]
            optional = {k for k in expected if k.endswith("num_batches_tracked")}
            missing = [k for k in expected if k not in own and k not in optional]
            wrong = [k for k in expected if k in own and own[k].shape != expected[k].shape]
            unexpected_keys.extend(prefix + k for k in own if k not in expected)
            missing_keys.extend(prefix + k for k in missing)
            error_msgs.extend(f"size mismatch for {prefix}{k}: copying a param with shape "
                              f"{own[k].shape} from checkpoint, the shape in current model is "
                              f"{expected[k].shape}." for k in wrong)
            # What is missing or misshapen keeps the cell's value (as load_state_dict
            # keeps a module's), so the fused tensors load the rest and report nothing.
            given = {k: own[k] for k in expected if k in own and k not in wrong}
            converted = stu_state_from_bluestyle97({**expected, **given})
            state_dict.update({prefix + k: v for k, v in converted.items()})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def _cell_state_to_original(module, state_dict, prefix, local_metadata):
    """The cell's entries renamed in place, where they were in the order."""
    items = list(state_dict.items())
    own = {k[len(prefix):]: v for k, v in items if k.startswith(prefix)}
    first = next(i for i, (k, _) in enumerate(items) if k.startswith(prefix))
    state_dict.clear()
    state_dict.update(items[:first])
    state_dict.update({prefix + k: v for k, v in stu_state_to_bluestyle97(own).items()})
    state_dict.update((k, v) for k, v in items[first:] if not k.startswith(prefix))
    return state_dict


def _deconv_bn_relu(c_in, c_out):
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


_ACTIVATIONS = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh"}


def _stages(block):
    """A Sequential of (conv, [BatchNorm], [activation])* as stages
    [conv, bn or None, activation name, scalars]."""
    stages = []
    for m in block:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            stages.append([m, None, "none", ()])
        elif isinstance(m, nn.BatchNorm2d):
            stages[-1][1] = m
        else:
            stages[-1][2] = _ACTIVATIONS[type(m)]
            stages[-1][3] = (m.negative_slope,) if isinstance(m, nn.LeakyReLU) else ()
    return stages


class STGANPyTorchGenerator(nn.Module):
    """bluestyle97/STGAN-pytorch's `Generator(attr_dim, conv_dim, n_layers,
    shortcut_layers, stu_kernel_size, use_stu, one_more_conv)`.

    forward(x, a): x (N, 3, H, W) with H, W multiples of 2^n_layers, a
    (N, attr_dim) the attribute difference -> (N, 3, H, W) in [-1, 1].
    """

    def __init__(self, attr_dim=10, conv_dim=64, n_layers=5, shortcut_layers=3,
                 stu_kernel_size=3, use_stu=True, one_more_conv=True, impl=None,
                 conv_layout="auto"):
        super().__init__()
        self.n_attrs, self.n_layers, self.use_stu = attr_dim, n_layers, use_stu
        self.shortcut_layers = min(shortcut_layers, n_layers - 1)
        if conv_layout not in CONV_LAYOUTS:
            raise ValueError(f"conv_layout must be one of {CONV_LAYOUTS}, got {conv_layout!r}")
        self.conv_layout = conv_layout
        dims = [conv_dim * 2 ** i for i in range(n_layers)]
        self.encoder = nn.ModuleList()
        c = 3
        for d in dims:
            self.encoder.append(nn.Sequential(nn.Conv2d(c, d, 4, 2, 1, bias=False),
                                              nn.BatchNorm2d(d),
                                              nn.LeakyReLU(negative_slope=0.2, inplace=True)))
            c = d
        if use_stu:
            self.stu = nn.ModuleList(
                ConvGRUCell(attr_dim, dims[i], dims[i], stu_kernel_size, impl, conv_layout)
                for i in reversed(range(n_layers - 1 - self.shortcut_layers, n_layers - 1)))
        self.decoder = nn.ModuleList([_deconv_bn_relu(dims[-1] + attr_dim, dims[-1])])
        for i in range(1, n_layers - 1):
            out = dims[-1 - i]
            self.decoder.append(_deconv_bn_relu((3 if i <= self.shortcut_layers else 2) * out,
                                                out))
        c = conv_dim * (3 if self.shortcut_layers == n_layers - 1 else 2)
        if one_more_conv:
            self.decoder.append(nn.Sequential(
                nn.ConvTranspose2d(c, conv_dim // 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(conv_dim // 4), nn.ReLU(inplace=True),
                nn.ConvTranspose2d(conv_dim // 4, 3, 3, 1, 1, bias=False), nn.Tanh()))
        else:
            self.decoder.append(nn.Sequential(nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False),
                                              nn.Tanh()))
        self._packed = _onednn.PackedConvs()

    def check_inputs(self, x, a):
        side = 2 ** self.n_layers
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        if x.shape[2] % side or x.shape[3] % side or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"x's H and W must be positive multiples of {side}, "
                             f"got {tuple(x.shape[2:])}")
        if a.dim() != 2 or tuple(a.shape) != (x.shape[0], self.n_attrs):
            raise ValueError(f"a must have shape (N, attr_dim) = {(x.shape[0], self.n_attrs)}, "
                             f"got {tuple(a.shape)}")

    def forward(self, x, a):
        self.check_inputs(x, a)
        a = a.to(x.dtype)
        packed = _onednn.available(x, (a, *self.parameters())) and self._batch_norms_frozen()
        if packed and conv_channels_last(self.conv_layout, x.device):
            x = x.contiguous(memory_format=torch.channels_last)
        run = self._block if packed else (lambda name, block, x: block(x))
        y = []
        for i, layer in enumerate(self.encoder):
            x = run(f"encoder.{i}", layer, x)
            y.append(x)
        out = run("decoder.0", self.decoder[0], _tile(y[-1], a))
        state = y[-1]
        for i in range(1, self.shortcut_layers + 1):
            if self.use_stu:
                skip, state = self.stu[i - 1](y[-(i + 1)], state, a)
            else:
                skip = y[-(i + 1)]
            out = run(f"decoder.{i}", self.decoder[i], torch.cat([out, skip], 1))
        for i in range(self.shortcut_layers + 1, self.n_layers):
            out = run(f"decoder.{i}", self.decoder[i], out)
        return out.contiguous() if packed else out

    def _batch_norms_frozen(self):
        return all(_onednn.batch_norm_statistics_frozen(m) for m in self.modules()
                   if isinstance(m, nn.BatchNorm2d))

    def _block(self, name, block, x):
        for j, (conv, bn, act, scalars) in enumerate(_stages(block)):
            transposed = isinstance(conv, nn.ConvTranspose2d)
            sources = (conv.weight,) if bn is None else (
                conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)
            fold = ((lambda c=conv: (c.weight, None)) if bn is None else
                    (lambda c=conv, b=bn, t=transposed: _onednn.fold_batch_norm(c.weight, b, t)))
            x = self._packed(f"{name}.{j}", x, sources, fold, transposed=transposed,
                             stride=conv.stride[0], padding=conv.padding[0], activation=act,
                             scalars=scalars)
        return x


def _tile(x, a):
    n, _, h, w = x.shape
    return torch.cat([x, a[:, :, None, None].expand(n, -1, h, w)], 1)


def load_bluestyle97_generator(model, checkpoint):
    """Loads a bluestyle97/STGAN-pytorch generator checkpoint into model
    (STGANPyTorchGenerator), strictly. checkpoint: a path or what torch.load
    returns: the agent's G_<iteration>.pth.tar ({"state_dict": ...,
    "optimizer": ...}, agents/stgan.py, STGANAgent.save_checkpoint) or a bare
    state_dict; nn.DataParallel's "module." prefixes are dropped as the
    agent's load_checkpoint does. Returns which layout it found."""
    if not isinstance(model, STGANPyTorchGenerator):
        raise ValueError(f"model must be an STGANPyTorchGenerator, got {type(model).__name__}")
    if not isinstance(checkpoint, dict):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(checkpoint.get("state_dict"), dict):
        sd, layout = checkpoint["state_dict"], "agent checkpoint ['state_dict']"
    elif all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        sd, layout = checkpoint, "state_dict"
    else:
        raise ValueError("checkpoint must be a generator state_dict or a dict with its "
                         f"'state_dict', got keys {sorted(checkpoint)[:8]}")
    if any(k.startswith("module.") for k in sd):
        sd, layout = {k.replace("module.", "", 1): v for k, v in sd.items()}, layout + ", DataParallel"
    model.load_state_dict(sd, strict=True)
    return layout
