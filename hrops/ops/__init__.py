"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample
from .patchmatch import patchmatch_step, patchmatch_warp

__all__ = ["haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample",
           "patchmatch_step", "patchmatch_warp"]
