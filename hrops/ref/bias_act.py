"""StyleGAN2's fused bias + leaky ReLU in plain PyTorch (SEEDS.md 6.1):
leaky_relu(x + bias, negative_slope) * scale, bias along dim 1."""
import torch
import torch.nn.functional as F


def fused_bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                          negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> torch.Tensor:
    """x (N, C, *), bias (C,) or None."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, negative_slope) * scale
