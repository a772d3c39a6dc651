"""StyleGAN2's fused bias + leaky ReLU in plain PyTorch (rosinality/stylegan2-pytorch
op/fused_act.py, as copied in Yan98/S2FGAN op/fused_act.py):
leaky_relu(x + bias, negative_slope) * scale, bias along dim 1."""
import torch
import torch.nn.functional as F

__all__ = ["fused_bias_leaky_relu"]


def fused_bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                          negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> torch.Tensor:
    """x (N, C, *), bias (C,) or None."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, negative_slope) * scale
