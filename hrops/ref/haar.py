"""Single-level Haar DWT/IDWT (pywt 'db1', mode 'zero') in plain PyTorch.

For each 2x2 block [[a, b], [c, d]] (odd sizes: the missing row/column is 0):
  LL = (a+b+c+d)/2, LH = (a+b-c-d)/2, HL = (a-b+c-d)/2, HH = (a-b-c+d)/2.
Packed layout: [LL (C channels) | LH, HL, HH of channel 0 | ... | of channel C-1].
"""
import torch
import torch.nn.functional as F

__all__ = ["haar_dwt", "haar_idwt"]


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, ceil(H/2), ceil(W/2)), packed."""
    n, c, height, width = x.shape
    x = F.pad(x, (0, width % 2, 0, height % 2))
    a = x[:, :, 0::2, 0::2]
    b = x[:, :, 0::2, 1::2]
    cc = x[:, :, 1::2, 0::2]
    d = x[:, :, 1::2, 1::2]
    ll = (a + b + cc + d) / 2
    lh = (a + b - cc - d) / 2
    hl = (a - b + cc - d) / 2
    hh = (a - b - cc + d) / 2
    high = torch.stack((lh, hl, hh), dim=2).reshape(n, 3 * c, *ll.shape[-2:])
    return torch.cat((ll, high), dim=1)


def haar_idwt(low: torch.Tensor, high: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """low (N, C, h, w) and high (N, C, 3, h, w) -> (N, C, out_h, out_w),
    out_h in {2h-1, 2h}: the inverse, cropped for odd original sizes."""
    n, c, h, w = low.shape
    lh, hl, hh = high.unbind(dim=2)
    a = (low + lh + hl + hh) / 2
    b = (low + lh - hl - hh) / 2
    cc = (low - lh + hl - hh) / 2
    d = (low - lh - hl + hh) / 2
    top = torch.stack((a, b), dim=-1).reshape(n, c, h, 2 * w)
    bottom = torch.stack((cc, d), dim=-1).reshape(n, c, h, 2 * w)
    full = torch.stack((top, bottom), dim=3).reshape(n, c, 2 * h, 2 * w)
    return full[:, :, :out_h, :out_w]
