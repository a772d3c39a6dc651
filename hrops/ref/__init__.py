"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow SEEDS.md's math directly and are never changed to match
a kernel."""
from .haar import haar_dwt, haar_idwt
from .patchmatch import patchmatch_step, patchmatch_warp
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample, styled_epilogue
from .bias_act import fused_bias_leaky_relu
from .upfirdn2d import upfirdn2d
from .stylegan2_modconv import modulated_conv2d

__all__ = ["haar_dwt", "haar_idwt", "modulated_dwconv2d", "modulated_idwt_upsample",
           "styled_epilogue",
           "patchmatch_step", "patchmatch_warp"]
__all__ += ["fused_bias_leaky_relu"]
__all__ += ["upfirdn2d"]
__all__ += ["modulated_conv2d"]
