"""StyleGAN2's modulated convolution (rosinality's ModulatedConv2d, as in
Yan98/S2FGAN model.py, ModulatedConv2d) built on hrops.upfirdn2d and ATen
convolutions.

Instead of materialising N per-sample weights and one grouped convolution
(the definition, hrops.ref.modulated_conv2d), the batch-shared form is used:
  conv(x * style, weight) * demod,  demod[n, o] = rsqrt(sum_i style[n, i]^2 *
  sum_{kh, kw} weight[o, i]^2 + eps),
which is the same function (per sample, scaling input channel i by s_i and
output channel o by d_o equals convolving with weight[o, i] * s_i * d_o).
One ordinary convolution over the batch is faster on CPU than N small
grouped ones plus building N weight copies. Every piece has double backward
(ATen convs; hrops.upfirdn2d), as R1 and path-length regularisers need.
"""
import torch
import torch.nn.functional as F

from .. import _backends, ref
from ..ref.modulated_conv2d import blur_kernel_2d, modconv_blur_pads
from ._checks import check_bool, check_choice, check_real, check_same_device_dtype, check_tensor
from .upfirdn2d import upfirdn2d


def modulated_conv2d(x, weight, style, demodulate=True, up=1, down=1, blur_kernel=(1, 3, 3, 1),
                     eps=1e-8, *, impl=None):
    """StyleGAN2's modulated convolution.

    x (N, Cin, H, W); weight (Cout, Cin, k, k) or rosinality's
    (1, Cout, Cin, k, k), any fixed scale (1/sqrt(Cin k^2)) already applied;
    style (N, Cin), the modulation (rosinality: EqualLinear(w), bias 1).
    demodulate (a bool): per-sample, per-output-channel rsqrt(sum W'^2 + eps),
    eps a finite real > 0.
    up = 2: stride-2 transposed conv then blur_kernel (x4), output 2H x 2W;
    down = 2: blur then stride-2 conv; otherwise 'same' padding (k // 2).
    impl picks the upfirdn2d kernel; "ref" runs the grouped definition.
    """
    check_tensor(x, "x", 4, "(N, Cin, H, W)")
    if isinstance(weight, torch.Tensor) and weight.dim() == 5 and weight.shape[0] == 1:
        weight = weight[0]
    check_tensor(weight, "weight", 4, "(Cout, Cin, k, k)")
    check_tensor(style, "style", 2, "(N, Cin)")
    check_same_device_dtype(x, "x", weight, "weight")
    check_same_device_dtype(x, "x", style, "style")
    n, cin = x.shape[:2]
    if weight.shape[1] != cin or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"weight must have shape (Cout, Cin, k, k) with Cin = {cin}, got "
                         f"{tuple(weight.shape)}")
    up, down = check_choice(up, "up", (1, 2)), check_choice(down, "down", (1, 2))
    if up == 2 and down == 2:
        raise ValueError("up and down must not both be 2")
    if cin == 0 or weight.shape[0] == 0:  # ATen convolutions cannot take or make 0 channels
        raise ValueError(f"modulated_conv2d needs Cin >= 1 and Cout >= 1, got weight of shape "
                         f"{tuple(weight.shape)}")
    if 0 in x.shape[2:]:
        raise ValueError(f"x must have H >= 1 and W >= 1, got {tuple(x.shape)}")
    if down == 2:  # the blurred map must hold the stride-2 conv's k x k kernel
        k = weight.shape[-1]
        p0, p1 = modconv_blur_pads(len(blur_kernel), k, 1, 2)
        least = k + len(blur_kernel) - 1 - p0 - p1
        if min(x.shape[2:]) < least:
            raise ValueError(f"x must have H >= {least} and W >= {least} with down=2 and a "
                             f"{k}x{k} kernel, got {tuple(x.shape)}")
    if tuple(style.shape) != (n, cin):
        raise ValueError(f"style must have shape (N, Cin) = {(n, cin)}, got {tuple(style.shape)}")
    demodulate = check_bool(demodulate, "demodulate")
    eps = check_real(eps, "eps", gt=0, finite=True)
    if _backends.resolve("modulated_conv2d", impl, x.device, ("ref", "cpu", "cuda")) == "ref":
        return ref.modulated_conv2d(x, weight, style, demodulate, up, down, blur_kernel, eps)
    k = weight.shape[-1]
    xs = x * style[:, :, None, None]
    if up == 2:
        out = F.conv_transpose2d(xs, weight.transpose(0, 1), stride=2)
    elif down == 2:
        p0, p1 = modconv_blur_pads(len(blur_kernel), k, up, down)
        kern = blur_kernel_2d(blur_kernel, 1.0, x.dtype, x.device)
        out = _conv2d_stride2(upfirdn2d(xs, kern, pad=(p0, p1), impl=impl), weight)
    else:
        out = F.conv2d(xs, weight, padding=k // 2)
    if demodulate:
        demod = torch.rsqrt(style.square() @ weight.square().sum([2, 3]).t() + eps)
        out = out * demod[:, :, None, None]
    if up == 2:
        p0, p1 = modconv_blur_pads(len(blur_kernel), k, up, down)
        out = upfirdn2d(out, blur_kernel_2d(blur_kernel, 4.0, x.dtype, x.device), pad=(p0, p1),
                        impl=impl)
    return out


def _conv2d_stride2(x, weight):
    """F.conv2d(x, weight, stride=2), in float32 for CPU bfloat16 inputs (or
    under CPU bfloat16 autocast) whose output is one pixel wide (seen) or
    high (covered too): torch 2.14.1's oneDNN path computes the former
    wrongly on an Intel Xeon with AMX (x (1, 2, 11, 3), weight (1, 2, 3, 3):
    wrong values, or values read from uninitialized memory). Such outputs
    are a single row or column, so the float32 copy is small."""
    out_h = (x.shape[-2] - weight.shape[-2]) // 2 + 1
    out_w = (x.shape[-1] - weight.shape[-1]) // 2 + 1
    bfloat16 = x.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu") and
                                             torch.get_autocast_dtype("cpu") == torch.bfloat16)
    if x.device.type == "cpu" and bfloat16 and min(out_h, out_w) == 1:
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(x.float(), weight.float(), stride=2).to(torch.bfloat16)
    return F.conv2d(x, weight, stride=2)
