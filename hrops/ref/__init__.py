"""Pure-PyTorch reference implementations: the oracle every kernel is tested
against. They follow SEEDS.md's math directly and are never changed to match
a kernel."""
from .haar import haar_dwt, haar_idwt
from .modulated_conv import modulated_dwconv2d, modulated_idwt_upsample
from .ace import ace_modulate
from .region import masked_avg_pool, region_avg_pool, region_broadcast, region_conv2d

__all__ = ["haar_dwt", "haar_idwt", "modulated_dwconv2d", "modulated_idwt_upsample",
           "ace_modulate", "masked_avg_pool", "region_avg_pool", "region_broadcast", "region_conv2d"]
