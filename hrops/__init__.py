"""hrops: fast, memory-light PyTorch ops for high-resolution GANs.

Every op has a pure-PyTorch reference (hrops.ref), a C++ CPU kernel and a GPU
kernel (CUDA C++ and/or Triton), selected per call with `impl=` or the
HROPS_IMPL environment variable; see hrops._backends.
"""
from . import _backends
from ._backends import build_info
from .ops import (haar_dwt, haar_idwt, haar_idwt_bands, modulated_dwconv2d,
                  modulated_idwt_upsample, patchmatch_step, patchmatch_warp)
from .ops import fused_bias_leaky_relu
from .ops import upfirdn2d
from .ops import modulated_conv2d
from . import nn
from .convert import convert

__all__ = ["build_info", "convert", "haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample", "nn", "patchmatch_step", "patchmatch_warp"]
__all__ += ["fused_bias_leaky_relu"]
__all__ += ["upfirdn2d"]
__all__ += ["modulated_conv2d"]
__version__ = "0.1.0"
