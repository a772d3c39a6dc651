"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow SEEDS.md's math directly and are never changed to match
a kernel."""
from .haar import haar_dwt, haar_idwt
from .patchmatch import patchmatch_step, patchmatch_warp
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample, styled_epilogue

__all__ = ["haar_dwt", "haar_idwt", "modulated_dwconv2d", "modulated_idwt_upsample",
           "styled_epilogue",
           "patchmatch_step", "patchmatch_warp"]
