"""upfirdn2d (StyleGAN2; rosinality/stylegan2-pytorch op/upfirdn2d.py, as
copied in Yan98/S2FGAN op/upfirdn2d.py) in plain PyTorch, built literally from
its definition: zero-insertion upsampling (each sample followed by up - 1
zeros), padding (negative pads crop), 2-D FIR filtering by true convolution
(conv2d, a correlation, with the flipped kernel), keeping every down-th
sample."""
import torch
import torch.nn.functional as F

__all__ = ["upfirdn2d"]


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up_x: int, up_y: int, down_x: int,
              down_y: int, pad_x0: int, pad_x1: int, pad_y0: int, pad_y1: int) -> torch.Tensor:
    """x (N, C, H, W), kernel (kh, kw) -> (N, C, out_h, out_w) with
    out_h = (H * up_y + pad_y0 + pad_y1 - kh) // down_y + 1 (likewise out_w)."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    u = x.new_zeros(n * c, 1, h * up_y, w * up_x)
    u[:, :, ::up_y, ::up_x] = x.reshape(n * c, 1, h, w)
    u = F.pad(u, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    u = u[:, :, max(-pad_y0, 0):u.shape[2] - max(-pad_y1, 0),
          max(-pad_x0, 0):u.shape[3] - max(-pad_x1, 0)]
    y = F.conv2d(u, kernel.flip([0, 1]).to(x.dtype).view(1, 1, kh, kw))
    y = y[:, :, ::down_y, ::down_x]
    return y.reshape(n, c, y.shape[2], y.shape[3])
