"""LSTU / STU / GRU gates in Triton: one program per BLOCK elements of the
(N, C, H, W) output, operands read plane by plane ((n, c) planes of H*W
contiguous elements, any batch/channel strides), outputs contiguous. The
per-element math is csrc/common/gates.h's, restated in Triton (which cannot
include C++); tests hold both to hrops.ref. tanh goes through exp because the
interpreter has no libdevice."""
import functools

import torch
import triton
import triton.language as tl

from ..ops._gate_layout import channels_last_operands, planar_among_channels_last

BLOCK = 1024


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    a = tl.abs(x)
    t = 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)
    return tl.where(x < 0, -t, t)


@triton.jit
def _activation(c, ACT: tl.constexpr):
    if ACT == 0:
        g = _tanh(c)
        dg = 1.0 - g * g
    else:
        g = tl.where(c <= 0, 0.0, c)  # as torch.relu: a NaN passes
        dg = tl.where(c <= 0, 0.0, 1.0)
    return g, dg


@triton.jit
def _lstu_state(x_ptr, xt_ptr, pre_ptr, e_ptr, xs_n, xs_c, ts_n, ts_c, ps_n, ps_c, es_n, es_c,
                live, p, c, n, C, ACT: tl.constexpr, ACC: tl.constexpr):
    """The LSTU's operands x, x~, enc at (n, c, p), its gates f, r, the cell
    c, g(c) and g'(c) (forward and backward)."""
    x = tl.load(x_ptr + n * xs_n + c * xs_c + p, mask=live, other=0.0).to(ACC)
    xt = tl.load(xt_ptr + n * ts_n + c * ts_c + p, mask=live, other=0.0).to(ACC)
    pf = tl.load(pre_ptr + n * ps_n + c * ps_c + p, mask=live, other=0.0).to(ACC)
    pr = tl.load(pre_ptr + n * ps_n + (c + C) * ps_c + p, mask=live, other=0.0).to(ACC)
    e = tl.load(e_ptr + n * es_n + c * es_c + p, mask=live, other=0.0).to(ACC)
    f = _sigmoid(pf)
    r = _sigmoid(pr)
    cc = f * e + (1.0 - f) * xt
    g, dg = _activation(cc, ACT)
    return x, xt, e, f, r, cc, g, dg


@triton.jit
def _index(total, C, HW, BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    p = k % HW
    q = k // HW
    return k < total, p, q % C, q // C


@triton.jit
def _lstu_fwd_kernel(x_ptr, xt_ptr, pre_ptr, e_ptr, h_ptr, c_ptr, xs_n, xs_c, ts_n, ts_c, ps_n, ps_c,
                     es_n, es_c, C, HW, total, ACT: tl.constexpr, ACC: tl.constexpr,
                     BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    x, xt, e, f, r, cc, g, dg = _lstu_state(x_ptr, xt_ptr, pre_ptr, e_ptr, xs_n, xs_c, ts_n, ts_c,
                                            ps_n, ps_c, es_n, es_c, live, p, c, n, C, ACT, ACC)
    h = r * g + (1.0 - r) * x
    ty = h_ptr.dtype.element_ty
    dst = (n * C + c) * HW + p
    tl.store(h_ptr + dst, h.to(ty), mask=live)
    tl.store(c_ptr + dst, cc.to(ty), mask=live)


@triton.jit
def _lstu_bwd_kernel(gh_ptr, gc_ptr, x_ptr, xt_ptr, pre_ptr, e_ptr, gx_ptr, gxt_ptr, gpre_ptr, ge_ptr,
                     hs_n, hs_c, cs_n, cs_c, xs_n, xs_c, ts_n, ts_c, ps_n, ps_c, es_n, es_c,
                     C, HW, total, ACT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    gh = tl.load(gh_ptr + n * hs_n + c * hs_c + p, mask=live, other=0.0).to(ACC)
    gc = tl.load(gc_ptr + n * cs_n + c * cs_c + p, mask=live, other=0.0).to(ACC)
    x, xt, e, f, r, cc, g, dg = _lstu_state(x_ptr, xt_ptr, pre_ptr, e_ptr, xs_n, xs_c, ts_n, ts_c,
                                            ps_n, ps_c, es_n, es_c, live, p, c, n, C, ACT, ACC)
    if ACT == 0:
        dc = gc + gh * r * dg
    else:  # relu's gradient is selected (torch's threshold_backward), not multiplied
        dc = gc + tl.where(dg == 0, 0.0, gh * r)
    ty = gx_ptr.dtype.element_ty
    dst = (n * C + c) * HW + p
    # Products from int64 n only: C * HW (two int32 arguments) wraps past 2^31.
    gdst_f = (n * 2 * C + c) * HW + p
    gdst_r = (n * 2 * C + C + c) * HW + p
    tl.store(gx_ptr + dst, (gh * (1.0 - r)).to(ty), mask=live)
    tl.store(gxt_ptr + dst, (dc * (1.0 - f)).to(ty), mask=live)
    tl.store(gpre_ptr + gdst_f, (dc * (e - xt) * f * (1.0 - f)).to(ty), mask=live)
    tl.store(gpre_ptr + gdst_r, (gh * (g - x) * r * (1.0 - r)).to(ty), mask=live)
    tl.store(ge_ptr + dst, (dc * f).to(ty), mask=live)


@triton.jit
def _stu_reset_fwd_kernel(r_ptr, s_ptr, out_ptr, rs_n, rs_c, ss_n, ss_c, C, HW, total,
                          ACC: tl.constexpr, BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    pr = tl.load(r_ptr + n * rs_n + c * rs_c + p, mask=live, other=0.0).to(ACC)
    s = tl.load(s_ptr + n * ss_n + c * ss_c + p, mask=live, other=0.0).to(ACC)
    tl.store(out_ptr + (n * C + c) * HW + p, (_sigmoid(pr) * s).to(out_ptr.dtype.element_ty),
             mask=live)


@triton.jit
def _stu_reset_bwd_kernel(g_ptr, r_ptr, s_ptr, gr_ptr, gs_ptr, gs_n, gs_c, rs_n, rs_c, ss_n, ss_c,
                          C, HW, total, ACC: tl.constexpr, BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    g = tl.load(g_ptr + n * gs_n + c * gs_c + p, mask=live, other=0.0).to(ACC)
    pr = tl.load(r_ptr + n * rs_n + c * rs_c + p, mask=live, other=0.0).to(ACC)
    s = tl.load(s_ptr + n * ss_n + c * ss_c + p, mask=live, other=0.0).to(ACC)
    r = _sigmoid(pr)
    ty = gr_ptr.dtype.element_ty
    dst = (n * C + c) * HW + p
    tl.store(gr_ptr + dst, (g * s * r * (1.0 - r)).to(ty), mask=live)
    tl.store(gs_ptr + dst, (g * r).to(ty), mask=live)


@triton.jit
def _gru_update_fwd_kernel(z_ptr, h_ptr, q_ptr, out_ptr, zs_n, zs_c, hs_n, hs_c, qs_n, qs_c,
                           C, HW, total, ACC: tl.constexpr, BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    z = _sigmoid(tl.load(z_ptr + n * zs_n + c * zs_c + p, mask=live, other=0.0).to(ACC))
    h = tl.load(h_ptr + n * hs_n + c * hs_c + p, mask=live, other=0.0).to(ACC)
    q = _tanh(tl.load(q_ptr + n * qs_n + c * qs_c + p, mask=live, other=0.0).to(ACC))
    tl.store(out_ptr + (n * C + c) * HW + p, ((1.0 - z) * h + z * q).to(out_ptr.dtype.element_ty),
             mask=live)


@triton.jit
def _gru_update_bwd_kernel(g_ptr, z_ptr, h_ptr, q_ptr, gz_ptr, gh_ptr, gq_ptr, gs_n, gs_c, zs_n, zs_c,
                           hs_n, hs_c, qs_n, qs_c, C, HW, total, ACC: tl.constexpr,
                           BLOCK: tl.constexpr):
    live, p, c, n = _index(total, C, HW, BLOCK)
    g = tl.load(g_ptr + n * gs_n + c * gs_c + p, mask=live, other=0.0).to(ACC)
    z = _sigmoid(tl.load(z_ptr + n * zs_n + c * zs_c + p, mask=live, other=0.0).to(ACC))
    h = tl.load(h_ptr + n * hs_n + c * hs_c + p, mask=live, other=0.0).to(ACC)
    q = _tanh(tl.load(q_ptr + n * qs_n + c * qs_c + p, mask=live, other=0.0).to(ACC))
    ty = gz_ptr.dtype.element_ty
    dst = (n * C + c) * HW + p
    tl.store(gz_ptr + dst, (g * (q - h) * z * (1.0 - z)).to(ty), mask=live)
    tl.store(gh_ptr + dst, (g * (1.0 - z)).to(ty), mask=live)
    tl.store(gq_ptr + dst, (g * z * (1.0 - q * q)).to(ty), mask=live)


def _planar(t):
    """t with contiguous (H, W) planes, and its batch and channel strides."""
    h, w = t.shape[2], t.shape[3]
    if not ((t.stride(3) == 1 or w <= 1) and (t.stride(2) == w or h <= 1)):
        t = t.contiguous()
    return t, t.stride(0), t.stride(1)


def _launch(kernel, ins, outs, like, **meta):
    n, c, h, w = like.shape
    total = n * c * h * w
    if total == 0:
        return
    args = []
    strides = []
    for t in ins:
        t, sn, sc = _planar(t)
        args.append(t)
        strides += [sn, sc]
    acc = tl.float64 if like.dtype == torch.float64 else tl.float32
    kernel[(triton.cdiv(total, BLOCK),)](*args, *outs, *strides, c, h * w, total, ACC=acc,
                                         BLOCK=BLOCK, **meta)


def _empty(like, groups=1):
    n, c, h, w = like.shape
    return torch.empty((n, groups * c, h, w), dtype=like.dtype, device=like.device)


def _planes_only(like_arg, grad_of=None):
    """The kernels walk NCHW planes: an op whose operand `like_arg` is
    channels-last (hrops.ops._gate_layout.channels_last_operands) runs on NCHW
    copies and returns channels-last outputs, as the C++ kernels do in place;
    grad_of = (output, arg): that output stays NCHW where that argument is an
    NCHW operand among channels-last ones (as the C++ kernels return it)."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            like = args[like_arg]
            if not channels_last_operands(like):
                return fn(*args)
            outs = fn(*(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args))
            if isinstance(outs, torch.Tensor):
                return outs.contiguous(memory_format=torch.channels_last)
            keep = (grad_of[0] if grad_of and planar_among_channels_last(args[grad_of[1]], like)
                    else None)
            return tuple(o if i == keep else o.contiguous(memory_format=torch.channels_last)
                         for i, o in enumerate(outs))
        return run
    return wrap


@_planes_only(0)
def lstu_gates(x_up, x_tilde, pre_gates, enc, activation):
    h, c = _empty(x_up), _empty(x_up)
    _launch(_lstu_fwd_kernel, (x_up, x_tilde, pre_gates, enc), (h, c), x_up, ACT=activation)
    return h, c


@_planes_only(2, grad_of=(3, 5))
def _lstu_gates_backward(grad_h, grad_c, x_up, x_tilde, pre_gates, enc, activation):
    outs = (_empty(x_up), _empty(x_up), _empty(x_up, 2), _empty(x_up))
    _launch(_lstu_bwd_kernel, (grad_h, grad_c, x_up, x_tilde, pre_gates, enc), outs, x_up,
            ACT=activation)
    return outs


@_planes_only(1)
def stu_reset(pre_r, s_hat):
    out = _empty(s_hat)
    _launch(_stu_reset_fwd_kernel, (pre_r, s_hat), (out,), s_hat)
    return out


@_planes_only(2)
def _stu_reset_backward(grad, pre_r, s_hat):
    outs = (_empty(s_hat), _empty(s_hat))
    _launch(_stu_reset_bwd_kernel, (grad, pre_r, s_hat), outs, s_hat)
    return outs


@_planes_only(1)
def gru_update(pre_z, h, pre_q):
    out = _empty(h)
    _launch(_gru_update_fwd_kernel, (pre_z, h, pre_q), (out,), h)
    return out


@_planes_only(2)
def _gru_update_backward(grad, pre_z, h, pre_q):
    outs = (_empty(h), _empty(h), _empty(h))
    _launch(_gru_update_bwd_kernel, (grad, pre_z, h, pre_q), outs, h)
    return outs
