"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow SEEDS.md's math directly and are never changed to match
a kernel."""
from .ace import ace_modulate
from .bias_act import fused_bias_leaky_relu
from .gates import conv_gru_pass, gru_update, lstu_gates, stu_reset
from .haar import haar_dwt, haar_idwt
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample, styled_epilogue
from .patchmatch import patchmatch_step, patchmatch_warp
from .region import (masked_avg_pool, region_avg_pool, region_broadcast, region_classes,
                     region_conv2d)
from .stylegan2_modconv import modulated_conv2d
from .upfirdn2d import upfirdn2d

__all__ = ["ace_modulate", "conv_gru_pass", "fused_bias_leaky_relu", "gru_update", "lstu_gates", "stu_reset",
           "haar_dwt", "haar_idwt", "masked_avg_pool",
           "modulated_conv2d", "modulated_dwconv2d", "modulated_idwt_upsample", "patchmatch_step",
           "patchmatch_warp", "region_avg_pool", "region_broadcast", "region_classes",
           "region_conv2d", "styled_epilogue", "upfirdn2d"]
