"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample
from .ace import ace_modulate
from .region import (region_avg_pool, region_broadcast, region_conv2d, region_projection,
                     resize_seg, seg_to_labels)

__all__ = ["haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample",
           "ace_modulate", "region_avg_pool", "region_broadcast", "region_conv2d", "region_projection", "resize_seg",
           "seg_to_labels"]
