"""Haar DWT/IDWT in Triton: one program per BLOCK of 2x2 blocks, strided
loads (any input layout), contiguous packed output. Math as hrops.ref.haar.

Indices are int64 throughout: the block index k is, and every other index
derives from it by division or from n (int64) by products. Integer arguments
are int32 when they fit, so a product of two arguments (h * w, C * h * w)
would wrap past 2^31."""
import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _butterfly(p, q, r, s):
    s0 = p + q
    d0 = p - q
    s1 = r + s
    d1 = r - s
    return 0.5 * (s0 + s1), 0.5 * (s0 - s1), 0.5 * (d0 + d1), 0.5 * (d0 - d1)


@triton.jit
def _unravel(k, w, h, C):
    """(j, i, c, n) of flat index k over (N, C, h, w), by successive divisions."""
    q = k // w
    r = q // h
    return k % w, q % h, r % C, r // C


@triton.jit
def _dwt_kernel(x_ptr, out_ptr, sn, sc, sh, sw, C, H, W, h, w, total,
                ACC: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = k < total
    j, i, c, n = _unravel(k, w, h, C)
    bottom = live & (2 * i + 1 < H)
    right = live & (2 * j + 1 < W)
    src = x_ptr + n * sn + c * sc + 2 * i * sh + 2 * j * sw
    a = tl.load(src, mask=live, other=0.0).to(ACC)
    b = tl.load(src + sw, mask=right, other=0.0).to(ACC)
    cc = tl.load(src + sh, mask=bottom, other=0.0).to(ACC)
    d = tl.load(src + sh + sw, mask=bottom & right, other=0.0).to(ACC)
    ll, lh, hl, hh = _butterfly(a, b, cc, d)
    hi = n * 4 * C + C + 3 * c  # LH's channel; HL and HH follow
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + ((n * 4 * C + c) * h + i) * w + j, ll.to(ty), mask=live)
    tl.store(out_ptr + (hi * h + i) * w + j, lh.to(ty), mask=live)
    tl.store(out_ptr + ((hi + 1) * h + i) * w + j, hl.to(ty), mask=live)
    tl.store(out_ptr + ((hi + 2) * h + i) * w + j, hh.to(ty), mask=live)


@triton.jit
def _idwt_kernel(low_ptr, high_ptr, out_ptr, ln, lc, lh_, lw, hn, hc, hb, hh_, hw,
                 C, H, W, h, w, total, ACC: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = k < total
    j, i, c, n = _unravel(k, w, h, C)
    ll = tl.load(low_ptr + n * ln + c * lc + i * lh_ + j * lw, mask=live, other=0.0).to(ACC)
    hi = high_ptr + n * hn + c * hc + i * hh_ + j * hw
    lh = tl.load(hi, mask=live, other=0.0).to(ACC)
    hl = tl.load(hi + hb, mask=live, other=0.0).to(ACC)
    hh = tl.load(hi + hb + hb, mask=live, other=0.0).to(ACC)  # (2 * hb: int32)
    a, b, cc, d = _butterfly(ll, lh, hl, hh)
    bottom = live & (2 * i + 1 < H)
    right = live & (2 * j + 1 < W)
    dst = out_ptr + ((n * C + c) * H + 2 * i) * W + 2 * j
    ty = out_ptr.dtype.element_ty
    tl.store(dst, a.to(ty), mask=live)
    tl.store(dst + 1, b.to(ty), mask=right)
    tl.store(dst + W, cc.to(ty), mask=bottom)
    tl.store(dst + W + 1, d.to(ty), mask=bottom & right)


def _acc(dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    n, c, height, width = x.shape
    h, w = (height + 1) // 2, (width + 1) // 2
    out = torch.empty((n, 4 * c, h, w), dtype=x.dtype, device=x.device)
    total = n * c * h * w
    if total:
        _dwt_kernel[(triton.cdiv(total, BLOCK),)](
            x, out, *x.stride(), c, height, width, h, w, total, ACC=_acc(x.dtype), BLOCK=BLOCK)
    return out


def haar_idwt(low: torch.Tensor, high: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    n, c, h, w = low.shape
    out = torch.empty((n, c, out_h, out_w), dtype=low.dtype, device=low.device)
    total = n * c * h * w
    if total:
        _idwt_kernel[(triton.cdiv(total, BLOCK),)](
            low, high, out, *low.stride(), *high.stride(), c, out_h, out_w, h, w, total,
            ACC=_acc(low.dtype), BLOCK=BLOCK)
    return out


def haar_idwt_packed(y: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    c = y.shape[1] // 4
    return haar_idwt(y[:, :c], y[:, c:].unflatten(1, (c, 3)), out_h, out_w)
