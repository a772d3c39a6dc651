"""hrops: fast, memory-light PyTorch ops for high-resolution GANs.

Every op has a pure-PyTorch reference (hrops.ref), a C++ CPU kernel and a GPU
kernel (CUDA C++ and/or Triton), selected per call with `impl=` or the
HROPS_IMPL environment variable; see hrops._backends.
"""
from . import _backends
from ._backends import build_info
from .ops import gru_update, lstu_gates, stu_reset, stu_update
from .ops import (haar_dwt, haar_idwt, haar_idwt_bands, modulated_dwconv2d,
                  modulated_idwt_upsample)
from . import nn
from .convert import convert

__all__ = ["gru_update", "lstu_gates", "stu_reset", "stu_update",
           "build_info", "convert", "haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample", "nn"]
__version__ = "0.1.0"
