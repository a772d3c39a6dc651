"""hrops: fast, memory-light PyTorch ops for high-resolution GANs.

Every op has a pure-PyTorch reference (hrops.ref), a C++ CPU kernel and a GPU
kernel (CUDA C++ and/or Triton), selected per call with `impl=` or the
HROPS_IMPL environment variable; see hrops._backends.
"""
from . import _backends
from ._backends import build_info
from .cpu_cache import cached_bytes, empty_cache
from .ops import (ace_modulate, conv_gru_pass, fused_bias_leaky_relu, gru_update, haar_dwt, haar_idwt,
                  haar_idwt_bands, lstu_gates, modulated_conv2d, modulated_dwconv2d, modulated_idwt_upsample, patchmatch_step,
                  patchmatch_warp, region_avg_pool, region_broadcast, region_classes, region_conv2d,
                  region_projection, resize_seg, seg_to_labels, stu_reset, stu_update,
                  upfirdn2d)
from . import nn
from .convert import convert

__all__ = ["ace_modulate", "build_info", "cached_bytes", "conv_gru_pass", "convert", "empty_cache", "fused_bias_leaky_relu", "gru_update",
           "haar_dwt", "lstu_gates", "stu_reset", "stu_update",
           "haar_idwt", "haar_idwt_bands", "modulated_conv2d", "modulated_dwconv2d",
           "modulated_idwt_upsample", "nn", "patchmatch_step", "patchmatch_warp",
           "region_avg_pool", "region_broadcast", "region_classes", "region_conv2d",
           "region_projection",
           "resize_seg", "seg_to_labels", "upfirdn2d"]
__version__ = "0.1.0"
