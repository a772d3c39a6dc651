"""hrops: fast, memory-light PyTorch ops for high-resolution GANs.

Every op has a pure-PyTorch reference (hrops.ref), a C++ CPU kernel and a GPU
kernel (CUDA C++ and/or Triton), selected per call with `impl=` or the
HROPS_IMPL environment variable; see hrops._backends.
"""
from . import _backends
from ._backends import build_info
from .ops import (haar_dwt, haar_idwt, haar_idwt_bands, modulated_dwconv2d,
                  modulated_idwt_upsample)
from .ops import (ace_modulate, region_avg_pool, region_broadcast, region_conv2d, region_projection,
                  resize_seg, seg_to_labels)
from . import nn

__all__ = ["build_info", "haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample", "nn",
           "ace_modulate", "region_avg_pool", "region_broadcast", "region_conv2d",
           "region_projection", "resize_seg", "seg_to_labels"]
__version__ = "0.1.0"
