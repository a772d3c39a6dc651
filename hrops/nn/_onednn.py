"""Inference convolutions on weights prepacked once for oneDNN, with an
eval-mode BatchNorm folded in and the activation fused as a post-op.

`F.conv2d` / `F.conv_transpose2d` on CPU hand oneDNN a plain weight, and
oneDNN reorders it into its blocked layout on every call. At batch 1 and a
few pixels per output map (STGAN's 1024-channel layers at 4^2 - 16^2) that
reorder costs more than the convolution: measured on a Xeon (AVX-512), 1
thread, the transposed convolution 1536 -> 512 ch at 8^2 takes 27.5 ms
plain and 17.0 ms prepacked, the whole bluestyle97 STGAN generator's
convolutions at 128^2 207 vs 90 ms. The prepacked weight is cached per
layer and rebuilt when a source tensor (weight, BatchNorm parameters or
running statistics) changes in place or moves, or the input's shape or
strides change. The ops are the ones Inductor's CPU weight freezing uses
(torch.ops.mkldnn._convolution_pointwise, _convolution_transpose_pointwise);
`available` says when they apply: CPU float32, no autograd, not compiling.
"""
import torch

ACTIVATIONS = ("none", "relu", "leaky_relu", "tanh")


def _has_ops():
    try:
        ops = torch.ops.mkldnn
        ops._convolution_pointwise, ops._convolution_transpose_pointwise  # noqa: B018
        ops._reorder_convolution_transpose_weight  # noqa: B018
        torch._C._nn.mkldnn_reorder_conv2d_weight  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return torch.backends.mkldnn.is_available()


_HAS_OPS = _has_ops()


def available(x, tensors=()):
    """Whether a prepacked convolution can run on x: CPU float32, not
    compiling, and no autograd graph to build (grad mode off, or neither x
    nor any of tensors, e.g. the layer's parameters, requires grad)."""
    return (_HAS_OPS and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled()
                     and (x.requires_grad or any(t.requires_grad for t in tensors))))


def batch_norm_statistics_frozen(bn):
    """Whether bn normalizes with its running statistics (eval, tracked)."""
    return bn is not None and not bn.training and bn.running_mean is not None


def fold_batch_norm(weight, bn, transposed=False, bias=None):
    """(weight, bias) of a convolution followed by eval-mode BatchNorm bn:
    weight scaled by gamma / sqrt(var + eps) per output channel (dim 1 of a
    transposed convolution's weight), bias = beta + (bias - mean) * that
    scale. Differentiable in every argument."""
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean if bias is None else bias - bn.running_mean
    shift = shift * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    shape = (1, -1, 1, 1) if transposed else (-1, 1, 1, 1)
    return weight * scale.view(shape), shift


class PackedConvs:
    """A layer's cache of prepacked convolution weights, name -> entry. Not
    part of the state_dict; copies and pickles start empty."""

    def __init__(self):
        self._entries = {}

    def __deepcopy__(self, memo):
        return PackedConvs()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self._entries = {}

    def clear(self):
        self._entries.clear()

    def __call__(self, name, x, sources, fold, *, transposed=False, stride=1, padding=0,
                 activation="none", scalars=()):
        """conv(x) (conv_transpose if transposed) with (weight, bias) = fold(),
        then the activation ("none", "relu", "leaky_relu" with scalars
        [slope], "tanh"); in x's memory format. sources: the tensors fold()
        reads, which decide when the packed weight is stale."""
        key = (tuple(x.shape), x.stride(),
               tuple((t.data_ptr(), t._version, t.device) for t in sources))
        entry = self._entries.get(name)
        if entry is None or entry[0] != key:
            weight, bias = fold()
            pad, st, dil = [padding] * 2, [stride] * 2, [1, 1]
            if transposed:
                packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                    weight.detach(), pad, [0, 0], st, dil, 1, list(x.shape))
            else:
                packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                    weight.detach().to_mkldnn(), pad, st, dil, 1, list(x.shape))
            entry = (key, packed, None if bias is None else bias.detach().contiguous(),
                     pad, st, dil)
            self._entries[name] = entry
        _, packed, bias, pad, st, dil = entry
        if transposed:
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x, packed, bias, pad, [0, 0], st, dil, 1, activation, list(scalars), "")
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, bias, pad, st, dil, 1, activation, list(scalars), "")
