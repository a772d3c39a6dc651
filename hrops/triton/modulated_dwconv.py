"""Fused modulated depthwise-separable conv forward in Triton.

One program computes a (BLOCK_CO x BLOCK_P) tile of the output of one sample:
for each block of BLOCK_CI input channels it builds the modulated depthwise
output tile in registers (k*k masked loads, zero padding) and feeds it to
tl.dot with the pointwise weights; demodulation is the epilogue. The
(N, Cin, H, W) intermediate never exists. StyledConv2d's epilogue (noise,
bias, LeakyReLU) is optional. fp32 and fp64 use IEEE-precision dots (no
TF32), half types their own tensor-core dots with fp32 accumulation. The
backward is in modulated_dwconv_backward.py.
"""
import torch
import triton
import triton.language as tl


def acc_type(dtype):
    """Accumulation type: float64 for float64, float32 for everything else."""
    return tl.float64 if dtype == torch.float64 else tl.float32


@triton.jit
def depthwise_tile(x_ptr, wdw_ptr, ci, ci_ok, oy, ox, pix_ok, sxc, sxh, sxw, H, W, pad,
                   K: tl.constexpr, ACC: tl.constexpr, BLOCK_CI: tl.constexpr,
                   BLOCK_P: tl.constexpr):
    """Unmodulated depthwise output (BLOCK_CI x BLOCK_P) of one sample; x_ptr
    points at the sample, out-of-image taps read the zero padding."""
    u = tl.zeros((BLOCK_CI, BLOCK_P), dtype=ACC)
    planes = x_ptr + ci.to(tl.int64)[:, None] * sxc  # one sample may pass 2**31 elements
    weights = wdw_ptr + ci * (K * K)
    for kh in tl.static_range(K):
        iy = oy + (kh - pad)
        row_ok = pix_ok & (iy >= 0) & (iy < H)
        row = iy.to(tl.int64) * sxh  # a channels-last row offset may pass 2**31 too
        for kw in tl.static_range(K):
            ix = ox + (kw - pad)
            ok = row_ok & (ix >= 0) & (ix < W)
            xv = tl.load(planes + (row + ix.to(tl.int64) * sxw)[None, :],
                         mask=ci_ok[:, None] & ok[None, :], other=0.0).to(ACC)
            wv = tl.load(weights + (kh * K + kw), mask=ci_ok, other=0.0).to(ACC)
            u += wv[:, None] * xv
    return u


@triton.jit
def _fwd_kernel(x_ptr, m_ptr, wdw_ptr, wpw_ptr, d_ptr, b_ptr, noise_ptr, nw_ptr, out_ptr,
                sxn, sxc, sxh, sxw, Cin, Cout, H, W, Ho, Wo, pad, noise_sn, slope,
                K: tl.constexpr, HAS_DEMOD: tl.constexpr, HAS_BIAS: tl.constexpr,
                HAS_NOISE: tl.constexpr, ACTIVATE: tl.constexpr, HALF_DOT: tl.constexpr,
                ACC: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
                BLOCK_P: tl.constexpr):
    # Axis 0 (up to 2**31 - 1 programs) walks (sample, pixel tile): axis 1 is
    # capped at 65535, which the pixel tiles of a 2048^2 map would pass.
    tiles = tl.cdiv(Ho * Wo, BLOCK_P)
    n = (tl.program_id(0) // tiles).to(tl.int64)
    pix = (tl.program_id(0) % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    pix_ok = pix < Ho * Wo
    co_ok = co < Cout
    oy = pix // Wo
    ox = pix % Wo
    acc = tl.zeros((BLOCK_CO, BLOCK_P), dtype=ACC)
    for ci0 in range(0, Cin, BLOCK_CI):
        ci = ci0 + tl.arange(0, BLOCK_CI)
        ci_ok = ci < Cin
        t = depthwise_tile(x_ptr + n * sxn, wdw_ptr, ci, ci_ok, oy, ox, pix_ok, sxc, sxh, sxw,
                           H, W, pad, K, ACC, BLOCK_CI, BLOCK_P)
        mv = tl.load(m_ptr + n * Cin + ci, mask=ci_ok, other=0.0).to(ACC)
        t = t * mv[:, None]
        w = tl.load(wpw_ptr + co[:, None] * Cin + ci[None, :], mask=co_ok[:, None] & ci_ok[None, :],
                    other=0.0).to(ACC)
        if HALF_DOT:  # tensor-core dot in the storage type, fp32 accumulation
            ty = out_ptr.dtype.element_ty
            acc += tl.dot(w.to(ty), t.to(ty))
        else:
            acc += tl.dot(w, t, input_precision="ieee")
    if HAS_DEMOD:
        dv = tl.load(d_ptr + co, mask=co_ok, other=0.0).to(ACC)
        acc = acc * dv[:, None]
    if HAS_NOISE:
        nz = tl.load(noise_ptr + n * noise_sn + pix, mask=pix_ok, other=0.0).to(ACC)
        acc += tl.load(nw_ptr).to(ACC) * nz[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(ACC)[:, None]
    if ACTIVATE:
        acc = tl.where(acc < 0, acc * slope, acc)
    dst = out_ptr + (n * Cout + co[:, None]) * (Ho * Wo) + pix[None, :]
    tl.store(dst, acc.to(out_ptr.dtype.element_ty), mask=co_ok[:, None] & pix_ok[None, :])


def modulated_dwconv2d(x, modulation, weight_dw, weight_pw, demod, padding, bias=None, noise=None,
                       noise_weight=None, negative_slope=None):
    n, cin, height, width = x.shape
    cout, k = weight_pw.shape[0], weight_dw.shape[-1]
    ho, wo = height + 2 * padding - k + 1, width + 2 * padding - k + 1
    out = torch.empty((n, cout, ho, wo), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    m = modulation.contiguous()
    wdw = weight_dw.reshape(cin, k * k).contiguous()
    wpw = weight_pw.reshape(cout, cin).contiguous()
    unused = m  # a valid pointer for arguments the kernel does not read
    d = demod.contiguous() if demod is not None else unused
    b = bias.contiguous() if bias is not None else unused
    nz = noise.contiguous() if noise is not None else unused
    nw = noise_weight.reshape(1) if noise is not None else unused
    noise_sn = ho * wo if noise is not None and noise.shape[0] > 1 else 0
    block_co = min(64, max(16, triton.next_power_of_2(cout)))
    block_ci = min(32, max(16, triton.next_power_of_2(cin)))
    block_p = 64
    grid = (n * triton.cdiv(ho * wo, block_p), triton.cdiv(cout, block_co))
    _fwd_kernel[grid](x, m, wdw, wpw, d, b, nz, nw, out, *x.stride(), cin, cout, height, width, ho,
                      wo, padding, noise_sn,
                      negative_slope if negative_slope is not None else 0.0,
                      K=k, HAS_DEMOD=demod is not None, HAS_BIAS=bias is not None,
                      HAS_NOISE=noise is not None, ACTIVATE=negative_slope is not None,
                      HALF_DOT=x.dtype in (torch.float16, torch.bfloat16), ACC=acc_type(x.dtype),
                      BLOCK_CO=block_co, BLOCK_CI=block_ci, BLOCK_P=block_p)
    return out
