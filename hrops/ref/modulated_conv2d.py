"""StyleGAN2's modulated convolution (rosinality's ModulatedConv2d, as in
Yan98/S2FGAN model.py, ModulatedConv2d) in plain PyTorch, in its defining
form: per-sample weights
W'[n] = weight * style[n] (over input channels), demodulated per sample by
rsqrt(sum W'^2 + eps), applied as one grouped convolution with the batch
folded into the groups. up = 2: transposed conv (stride 2) then the blur;
down = 2: the blur then a stride-2 conv."""
import torch
import torch.nn.functional as F

from .upfirdn2d import upfirdn2d

__all__ = ["modulated_conv2d"]


def blur_kernel_2d(blur_kernel, gain=1.0, dtype=torch.float32, device=None):
    """rosinality's make_kernel: the outer product of a 1-D kernel with
    itself (or a 2-D kernel as given), normalised to sum 1, times gain."""
    k = torch.as_tensor(blur_kernel, dtype=torch.float32, device=device)
    if k.dim() == 1:
        k = k[None, :] * k[:, None]
    k = k / k.sum()
    return (k * gain).to(dtype)


def modconv_blur_pads(kernel_taps, kernel_size, up, down):
    """rosinality's Blur pads inside an up/down-sampling ModulatedConv2d."""
    factor = 2
    if up > 1:
        p = (kernel_taps - factor) - (kernel_size - 1)
        return (p + 1) // 2 + factor - 1, p // 2 + 1
    p = (kernel_taps - factor) + (kernel_size - 1)
    return (p + 1) // 2, p // 2


def modulated_conv2d(x, weight, style, demodulate=True, up=1, down=1, blur_kernel=(1, 3, 3, 1),
                     eps=1e-8):
    """x (N, Cin, H, W), weight (Cout, Cin, k, k) (any fixed scale already
    applied), style (N, Cin)."""
    n, cin = x.shape[:2]
    cout, _, k, _ = weight.shape
    wt = weight[None] * style.view(n, 1, cin, 1, 1)
    if demodulate:
        demod = torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + eps)
        wt = wt * demod.view(n, cout, 1, 1, 1)
    taps = len(blur_kernel)
    if up > 1:
        out = _per_sample_conv(F.conv_transpose2d, x, wt.transpose(1, 2), stride=2)
        p0, p1 = modconv_blur_pads(taps, k, up, down)
        kern = blur_kernel_2d(blur_kernel, 4.0, x.dtype, x.device)
        return upfirdn2d(out, kern, 1, 1, 1, 1, p0, p1, p0, p1)
    if down > 1:
        p0, p1 = modconv_blur_pads(taps, k, up, down)
        x = upfirdn2d(x, blur_kernel_2d(blur_kernel, 1.0, x.dtype, x.device), 1, 1, 1, 1,
                      p0, p1, p0, p1)
        return _per_sample_conv(F.conv2d, x, wt, stride=2)
    return _per_sample_conv(F.conv2d, x, wt, padding=k // 2)


def _per_sample_conv(conv, x, weights, **kwargs):
    """conv(x[n:n+1], weights[n]) for every sample n, as one grouped conv with
    the batch folded into the groups; weights (N, A, B, k, k) in conv's
    weight layout."""
    n = x.shape[0]
    if n == 0:  # ATen needs groups >= 1. The output is empty whatever the weights; their
        # sum gives its shape and keeps weight and style in the graph (zero gradients).
        return conv(x, weights.sum(0), **kwargs)
    out = conv(x.reshape(1, -1, *x.shape[2:]), weights.flatten(0, 1), groups=n, **kwargs)
    return out.view(n, -1, *out.shape[2:])
