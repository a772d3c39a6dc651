"""rosinality's / NVIDIA's conv2d_gradfix, which exists because old PyTorch
releases lacked double backward for cuDNN convolutions. PyTorch's own conv2d
and conv_transpose2d have double backward on every device now, so these are
the ATen ops with the original signatures.

no_weight_gradients() skipped the weight gradient inside R1's
autograd.grad(..., inputs=real_img); autograd.grad with explicit inputs
already computes no weight gradients, so the context manager changes nothing
and exists for import compatibility.
"""
import contextlib

from torch.nn import functional as F

enabled = True
weight_gradients_disabled = False


@contextlib.contextmanager
def no_weight_gradients():
    global weight_gradients_disabled
    old = weight_gradients_disabled
    weight_gradients_disabled = True
    try:
        yield
    finally:
        weight_gradients_disabled = old


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
                              dilation)
