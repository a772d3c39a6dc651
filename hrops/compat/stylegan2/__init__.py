"""The `op` package of rosinality's stylegan2-pytorch (and of S2FGAN,
MobileStyleGAN's teacher and the many code bases copied from it), on hrops:
compiled at install time, CPU kernels, gradients of every order, no JIT.

Switch such a repository with one import line:
    from hrops.compat.stylegan2 import FusedLeakyReLU, fused_leaky_relu, upfirdn2d, conv2d_gradfix
(or `sys.modules["op"] = hrops.compat.stylegan2` before importing it).
"""
from . import conv2d_gradfix
from .fused_act import FusedLeakyReLU, fused_leaky_relu
from .upfirdn2d import upfirdn2d

__all__ = ["FusedLeakyReLU", "fused_leaky_relu", "upfirdn2d", "conv2d_gradfix"]
