"""Functional ops: argument checks, implementation choice, custom ops with
autograd and fake implementations."""
from .bias_act import fused_bias_leaky_relu
from .haar import haar_dwt, haar_idwt, haar_idwt_bands
from .upfirdn2d import upfirdn2d
from .stylegan2_modconv import modulated_conv2d
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample
from .patchmatch import patchmatch_step, patchmatch_warp

__all__ = ["haar_dwt", "haar_idwt", "haar_idwt_bands", "modulated_dwconv2d",
           "modulated_idwt_upsample",
           "patchmatch_step", "patchmatch_warp"]
__all__ += ["fused_bias_leaky_relu"]
__all__ += ["upfirdn2d"]
__all__ += ["modulated_conv2d"]
