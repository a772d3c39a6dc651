"""rosinality's op.fused_act on hrops.fused_bias_leaky_relu."""
import torch
from torch import nn

from ...ops.fused_bias_leaky_relu import fused_bias_leaky_relu


def fused_leaky_relu(input, bias=None, negative_slope=0.2, scale=2 ** 0.5):
    """leaky_relu(input + bias, negative_slope) * scale, bias along dim 1.
    (rosinality's CPU fallback ignores negative_slope; its CUDA path and this
    one honour it.)"""
    if bias is not None and bias.dtype != input.dtype:
        bias = bias.to(input.dtype)  # fp32 parameters under autocast
    return fused_bias_leaky_relu(input, bias, negative_slope, scale)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, input):
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)
