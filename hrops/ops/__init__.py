"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .ace import ace_modulate
from .bias_act import fused_bias_leaky_relu
from .conv_gru import conv_gru_pass
from .gates import gru_update, lstu_gates, stu_reset, stu_update
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample
from .patchmatch import patchmatch_step, patchmatch_warp
from .region import (region_avg_pool, region_broadcast, region_conv2d, region_projection,
                     resize_seg, seg_to_labels)
from .region_classes import region_classes
from .stylegan2_modconv import modulated_conv2d
from .upfirdn2d import upfirdn2d

__all__ = ["ace_modulate", "conv_gru_pass", "fused_bias_leaky_relu", "gru_update", "lstu_gates", "stu_reset",
           "stu_update", "haar_dwt", "haar_idwt", "haar_idwt_bands",
           "modulated_conv2d", "modulated_dwconv2d", "modulated_idwt_upsample", "patchmatch_step",
           "patchmatch_warp", "region_avg_pool", "region_broadcast", "region_classes",
           "region_conv2d", "region_projection", "resize_seg", "seg_to_labels", "upfirdn2d"]
