"""The functional ops, each in its own module: argument checks, the
implementation choice and the op (hrops.ops._define). A new op adds its
module's import here; hrops exports everything listed."""
from .ace import ace_modulate
from .conv_gru import conv_gru_pass
from .fused_bias_leaky_relu import fused_bias_leaky_relu
from .gates import gru_update, lstu_gates, stu_reset, stu_update
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .modulated_conv2d import modulated_conv2d
from .modulated_dwconv import modulated_dwconv2d
from .modulated_idwt import modulated_idwt_upsample
from .patchmatch import patchmatch_step, patchmatch_warp
from .region import (region_avg_pool, region_broadcast, region_conv2d, region_projection,
                     resize_seg, seg_to_labels)
from .region_classes import region_classes
from .upfirdn2d import upfirdn2d

__all__ = [name for name in dir() if not name.startswith("_") and callable(globals()[name])]
