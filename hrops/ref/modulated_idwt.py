"""MobileStyleGAN's IDWT upsampling in plain PyTorch
(bes-dev/MobileStyleGAN.pytorch, core/models/modules/idwt_upsample.py,
IDWTUpsaplme)."""
from .haar import haar_idwt

__all__ = ["modulated_idwt_upsample"]


def modulated_idwt_upsample(x, modulation):
    """x (N, 4C, h, w) packed [LL | LH, HL, HH per channel], modulation (N, 4C)
    -> Haar IDWT of modulation * x, (N, C, 2h, 2w)."""
    x = x * modulation[:, :, None, None]
    c = x.shape[1] // 4
    return haar_idwt(x[:, :c], x[:, c:].unflatten(1, (c, 3)), 2 * x.shape[2], 2 * x.shape[3])
