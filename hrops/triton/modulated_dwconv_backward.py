"""Backward of the fused modulated depthwise-separable conv in Triton.

With u = Wdw (*) x (depthwise, recomputed here, never saved), t = m * u and
y = d * Wpw t, the output gradient G gives
  g_t = Wpw^T (d * G)          g_u = m * g_t          g_m = sum_p g_t u
  g_x = Wdw^T (*) g_u          g_Wdw = sum_p g_u x    g_eff = sum_{n,p} G t^T
  g_Wpw = d * g_eff            g_d = sum_i g_eff Wpw
in three kernels, without atomics (each program writes its own partial sums,
reduced afterwards, so the result is deterministic):
  1. per (sample, run of pixel tiles, input-channel block): g_t by tl.dot
     over all output channels, the recomputed u, then g_m and g_Wdw partials
     in registers; writes g_u, the only (N, Cin, Ho, Wo) intermediate
     (transient, in the accumulation type), for the stencil of kernel 2.
  2. per (block of input pixels, block of (sample, channel) planes): g_x,
     the adjoint depthwise stencil over g_u.
  3. per (output-channel block, input-channel block, run of pixel tiles):
     g_eff partials by tl.dot of G with t, u recomputed.
Dots and accumulation as in the forward: IEEE fp32 (fp64 for fp64), half
types dot in their storage type with fp32 accumulation.
"""
import torch
import triton
import triton.language as tl

from .modulated_dwconv import acc_type, depthwise_tile

BLOCK_P = 64
BLOCK_PLANES, BLOCK_PIX = 16, 256  # the input-gradient stencil's tile


@triton.jit
def _grad_dw_out_kernel(x_ptr, m_ptr, wdw_ptr, wpw_ptr, d_ptr, g_ptr, gu_ptr, pmod_ptr, pwdw_ptr,
                        sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw, Cin, Cout, H, W, Ho, Wo, pad,
                        tiles, tiles_per_split, splits,
                        K: tl.constexpr, HAS_DEMOD: tl.constexpr, HALF_DOT: tl.constexpr,
                        ACC: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_KK: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    ci = tl.program_id(2) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    ci_ok = ci < Cin
    mv = tl.load(m_ptr + n * Cin + ci, mask=ci_ok, other=0.0).to(ACC)
    taps = tl.arange(0, BLOCK_KK)
    g_mod = tl.zeros((BLOCK_CI,), dtype=ACC)
    g_wdw = tl.zeros((BLOCK_CI, BLOCK_KK), dtype=ACC)
    planes = x_ptr + n * sxn + ci.to(tl.int64)[:, None] * sxc  # a sample may pass 2**31 elements
    weights = wdw_ptr + ci * (K * K)
    first = split * tiles_per_split
    for tile in range(first, tl.minimum(first + tiles_per_split, tiles)):
        pix = tile * BLOCK_P + tl.arange(0, BLOCK_P)
        pix_ok = pix < Ho * Wo
        oy = pix // Wo
        ox = pix % Wo
        pix_off = oy.to(tl.int64) * sgh + ox.to(tl.int64) * sgw  # grad's, in 64 bits
        g_t = tl.zeros((BLOCK_CI, BLOCK_P), dtype=ACC)
        for co0 in range(0, Cout, BLOCK_CO):
            co = co0 + tl.arange(0, BLOCK_CO)
            co_ok = co < Cout
            src = g_ptr + n * sgn + co.to(tl.int64)[:, None] * sgc + pix_off[None, :]
            gy = tl.load(src, mask=co_ok[:, None] & pix_ok[None, :], other=0.0).to(ACC)
            if HAS_DEMOD:
                gy = gy * tl.load(d_ptr + co, mask=co_ok, other=0.0).to(ACC)[:, None]
            w_t = tl.load(wpw_ptr + co[None, :] * Cin + ci[:, None],
                          mask=ci_ok[:, None] & co_ok[None, :], other=0.0).to(ACC)
            if HALF_DOT:
                ty = x_ptr.dtype.element_ty
                g_t += tl.dot(w_t.to(ty), gy.to(ty))
            else:
                g_t += tl.dot(w_t, gy, input_precision="ieee")
        g_u = g_t * mv[:, None]
        # One pass over the taps recomputes u and reduces g_Wdw from the same loads.
        u = tl.zeros((BLOCK_CI, BLOCK_P), dtype=ACC)
        for kh in tl.static_range(K):
            iy = oy + (kh - pad)
            row_ok = pix_ok & (iy >= 0) & (iy < H)
            row = iy.to(tl.int64) * sxh
            for kw in tl.static_range(K):
                ix = ox + (kw - pad)
                ok = row_ok & (ix >= 0) & (ix < W)
                xv = tl.load(planes + (row + ix.to(tl.int64) * sxw)[None, :],
                             mask=ci_ok[:, None] & ok[None, :], other=0.0).to(ACC)
                wv = tl.load(weights + (kh * K + kw), mask=ci_ok, other=0.0).to(ACC)
                u += wv[:, None] * xv
                g_tap = tl.sum(g_u * xv, 1)
                g_wdw += tl.where(taps[None, :] == kh * K + kw, g_tap[:, None], 0.0)
        g_mod += tl.sum(g_t * u, 1)
        dst = gu_ptr + (n * Cin + ci[:, None]) * (Ho * Wo) + pix[None, :]
        tl.store(dst, g_u, mask=ci_ok[:, None] & pix_ok[None, :])
    part = n * splits + split
    tl.store(pmod_ptr + part * Cin + ci, g_mod, mask=ci_ok)
    dst = pwdw_ptr + (part * Cin + ci[:, None]) * (K * K) + taps[None, :]
    tl.store(dst, g_wdw, mask=ci_ok[:, None] & (taps < K * K)[None, :])


@triton.jit
def _grad_x_kernel(gu_ptr, wdw_ptr, gx_ptr, sn, sc, sh, sw, planes, Cin, H, W, Ho, Wo, pad,
                   K: tl.constexpr, ACC: tl.constexpr, BLOCK_PLANES: tl.constexpr,
                   BLOCK_PIX: tl.constexpr):
    # One grid axis walks (plane block, pixel block): axes 1 and 2 are capped
    # at 65535, which either count alone can pass.
    pix_blocks = tl.cdiv(H * W, BLOCK_PIX)
    block = tl.program_id(0).to(tl.int64)
    plane = (block // pix_blocks) * BLOCK_PLANES + tl.arange(0, BLOCK_PLANES)
    plane_ok = plane < planes  # plane = n * Cin + c
    n = plane // Cin
    c = plane % Cin
    pix = (block % pix_blocks).to(tl.int32) * BLOCK_PIX + tl.arange(0, BLOCK_PIX)
    pix_ok = pix < H * W
    y = pix // W
    x = pix % W
    src = gu_ptr + plane[:, None] * (Ho * Wo)
    weights = wdw_ptr + c * (K * K)
    acc = tl.zeros((BLOCK_PLANES, BLOCK_PIX), dtype=ACC)
    for kh in tl.static_range(K):
        oy = y + (pad - kh)
        row_ok = pix_ok & (oy >= 0) & (oy < Ho)
        for kw in tl.static_range(K):
            ox = x + (pad - kw)
            ok = row_ok & (ox >= 0) & (ox < Wo)
            g = tl.load(src + (oy * Wo + ox)[None, :], mask=plane_ok[:, None] & ok[None, :],
                        other=0.0)
            wv = tl.load(weights + (kh * K + kw), mask=plane_ok, other=0.0).to(ACC)
            acc += wv[:, None] * g
    dst = gx_ptr + (n * sn + c * sc)[:, None] + (y.to(tl.int64) * sh + x.to(tl.int64) * sw)[None, :]
    tl.store(dst, acc.to(gx_ptr.dtype.element_ty), mask=plane_ok[:, None] & pix_ok[None, :])


@triton.jit
def _grad_pw_kernel(x_ptr, m_ptr, wdw_ptr, g_ptr, ppw_ptr,
                    sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw, Cin, Cout, H, W, Ho, Wo, pad,
                    tiles, total_tiles, tiles_per_split,
                    K: tl.constexpr, HALF_DOT: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_P: tl.constexpr):
    co = tl.program_id(0) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = tl.program_id(1) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    split = tl.program_id(2)
    co_ok = co < Cout
    ci_ok = ci < Cin
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=ACC)
    first = split * tiles_per_split
    for t in range(first, tl.minimum(first + tiles_per_split, total_tiles)):
        n = (t // tiles).to(tl.int64)
        pix = (t % tiles) * BLOCK_P + tl.arange(0, BLOCK_P)
        pix_ok = pix < Ho * Wo
        oy = pix // Wo
        ox = pix % Wo
        u = depthwise_tile(x_ptr + n * sxn, wdw_ptr, ci, ci_ok, oy, ox, pix_ok, sxc, sxh, sxw,
                           H, W, pad, K, ACC, BLOCK_CI, BLOCK_P)
        mv = tl.load(m_ptr + n * Cin + ci, mask=ci_ok, other=0.0).to(ACC)
        tt = tl.trans(u * mv[:, None])
        src = (g_ptr + n * sgn + co.to(tl.int64)[:, None] * sgc
               + (oy.to(tl.int64) * sgh + ox.to(tl.int64) * sgw)[None, :])
        g = tl.load(src, mask=co_ok[:, None] & pix_ok[None, :], other=0.0).to(ACC)
        if HALF_DOT:
            ty = x_ptr.dtype.element_ty
            acc += tl.dot(g.to(ty), tt.to(ty))
        else:
            acc += tl.dot(g, tt, input_precision="ieee")
    dst = ppw_ptr + (split * Cout + co[:, None]) * Cin + ci[None, :]
    tl.store(dst, acc, mask=co_ok[:, None] & ci_ok[None, :])


def _target_programs(device):
    # A few waves of the GPU; under the interpreter, which runs programs one
    # after another, a handful (so the tests cover runs of several tiles).
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _split(tiles, other_programs, target):
    """(tiles per split, splits): runs of whole pixel tiles, none empty."""
    per = triton.cdiv(tiles, max(1, min(tiles, triton.cdiv(target, other_programs))))
    return per, triton.cdiv(tiles, per)


def _block(channels, largest):
    return min(largest, max(16, triton.next_power_of_2(channels)))


def _modulated_dwconv2d_backward(grad, x, modulation, weight_dw, weight_pw, demod, padding):
    n, cin, height, width = x.shape
    cout, k = weight_pw.shape[0], weight_dw.shape[-1]
    ho, wo = grad.shape[2:]
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    g_x = torch.empty_like(x, memory_format=torch.contiguous_format)  # as the CPU kernel's
    if x.numel() == 0 or grad.numel() == 0:
        g_x.zero_()
        g_mod = torch.zeros_like(modulation)
        g_wdw = torch.zeros_like(weight_dw)
        g_eff = torch.zeros((cout, cin), dtype=acc, device=x.device)
    else:
        m = modulation.contiguous()
        wdw = weight_dw.reshape(cin, k * k).contiguous()
        wpw = weight_pw.reshape(cout, cin).contiguous()
        d = demod.contiguous() if demod is not None else m  # unread without demod
        meta = dict(K=k, HALF_DOT=x.dtype in (torch.float16, torch.bfloat16),
                    ACC=acc_type(x.dtype))
        tiles = triton.cdiv(ho * wo, BLOCK_P)
        target = _target_programs(x.device)

        block_ci, block_co = _block(cin, 32), _block(cout, 64)
        ci_blocks = triton.cdiv(cin, block_ci)
        per, splits = _split(tiles, n * ci_blocks, target)
        g_u = torch.empty((n, cin, ho, wo), dtype=acc, device=x.device)
        p_mod = torch.empty((n, splits, cin), dtype=acc, device=x.device)
        p_wdw = torch.empty((n * splits, cin, k * k), dtype=acc, device=x.device)
        _grad_dw_out_kernel[(n, splits, ci_blocks)](
            x, m, wdw, wpw, d, grad, g_u, p_mod, p_wdw, *x.stride(), *grad.stride(), cin, cout,
            height, width, ho, wo, padding, tiles, per, splits, HAS_DEMOD=demod is not None,
            BLOCK_CO=block_co, BLOCK_CI=block_ci, BLOCK_P=BLOCK_P,
            BLOCK_KK=triton.next_power_of_2(k * k), **meta)
        g_mod = p_mod.sum(1).to(x.dtype)
        g_wdw = p_wdw.sum(0).to(x.dtype).view_as(weight_dw)

        grid = (triton.cdiv(height * width, BLOCK_PIX) * triton.cdiv(n * cin, BLOCK_PLANES),)
        _grad_x_kernel[grid](g_u, wdw, g_x, *g_x.stride(), n * cin, cin, height, width, ho, wo,
                             padding, K=k, ACC=meta["ACC"], BLOCK_PLANES=BLOCK_PLANES,
                             BLOCK_PIX=BLOCK_PIX)

        block_ci, block_co = _block(cin, 64), _block(cout, 64)
        co_blocks, ci_blocks = triton.cdiv(cout, block_co), triton.cdiv(cin, block_ci)
        per, splits = _split(n * tiles, co_blocks * ci_blocks, target)
        p_pw = torch.empty((splits, cout, cin), dtype=acc, device=x.device)
        _grad_pw_kernel[(co_blocks, ci_blocks, splits)](
            x, m, wdw, grad, p_pw, *x.stride(), *grad.stride(), cin, cout, height, width, ho, wo,
            padding, tiles, n * tiles, per, BLOCK_CO=block_co, BLOCK_CI=block_ci,
            BLOCK_P=BLOCK_P, **meta)
        g_eff = p_pw.sum(0)
    if demod is None:
        return g_x, g_mod, g_wdw, g_eff.to(x.dtype).view_as(weight_pw), x.new_empty(0)
    g_wpw = (g_eff * demod.to(acc)[:, None]).to(x.dtype).view_as(weight_pw)
    g_demod = (g_eff * weight_pw.reshape(cout, cin).to(acc)).sum(1).to(x.dtype)
    return g_x, g_mod, g_wdw, g_wpw, g_demod
