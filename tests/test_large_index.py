"""Index safety past 2**31 elements (marker `large`).

Each kernel runs on a batch of N items whose last item lies entirely past
element 2**31 of its largest tensors, and that item's results must equal
those of the same kernel run on the item alone (a tensor 17 times smaller,
safely indexed in 32 bits). A kernel that computes an offset in 32 bits
writes the tail wrongly or not at all, reads the wrong data, or faults.
Inputs are float16 (the CUDA kernels index every dtype alike) so that a
test holds at most ~40 GiB at once.

Where they run: on a CUDA device with enough free memory (cuda and Triton
kernels); the cpu variants only with HROPS_LARGE_CPU=1 and enough available
RAM (set HROPS_TEST_THREADS too: a single thread takes minutes per test).
    pytest tests/test_large_index.py -m large
"""
import gc
import os

import pytest
import torch

import hrops
from hrops import _backends
from hrops.ops import region as region_ops

pytestmark = pytest.mark.large

GIB = 2 ** 30
# 17 items of C x H x W: 16 of them hold more than 2**31 elements, so the
# last one starts past it.
N, C, H, W = 17, 32, 2048, 2050
DTYPE = torch.float16


def _targets(supported):
    """(impl, device) params; unavailable ones are reported as skips."""
    params = []
    for impl, device in (("cpu", "cpu"), ("cuda", "cuda"), ("triton", "cuda")):
        if impl not in supported:
            continue
        reason = None
        if device == "cpu" and os.environ.get("HROPS_LARGE_CPU") != "1":
            reason = "the cpu variants run with HROPS_LARGE_CPU=1 (they need ~40 GiB of RAM)"
        elif device == "cuda" and not torch.cuda.is_available():
            reason = "needs a CUDA device"
        elif not _backends.available(impl, torch.device(device)):
            reason = f"{impl} kernels not available: {hrops.build_info()}"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(impl, device, marks=marks, id=f"{impl}-{device}"))
    return params


def _available_bytes(device):
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _need(device, gib):
    free = _available_bytes(device)
    if free < gib * GIB:
        pytest.skip(f"needs {gib:.0f} GiB free on {device}, {free / GIB:.1f} GiB available")


@pytest.fixture(autouse=True)
def _release_memory():
    yield
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Inputs:
    """Seeded random tensors on one device."""

    def __init__(self, device):
        self.device = device
        self.gen = torch.Generator(device).manual_seed(0)

    def randn(self, *shape, dtype=DTYPE, grad=False):
        t = torch.randn(shape, generator=self.gen, device=self.device, dtype=dtype)
        return t.requires_grad_(grad)

    def offsets(self, k, spread):
        """(N, 2, k, H, W) integer offsets in [-spread, spread)."""
        t = torch.randint(-spread, spread, (N, 2, k, H, W), generator=self.gen,
                          device=self.device)
        return t.to(DTYPE)

    def labels(self, regions):
        """(N, H, W) blocky label maps with ids in [-1, regions): long runs, like
        a segmentation (the cpu region_conv2d groups pixels by runs)."""
        y = torch.arange(H, device=self.device)[None, :, None] // 97
        x = torch.arange(W, device=self.device)[None, None, :] // 89
        n = torch.arange(N, device=self.device)[:, None, None]
        return (5 * y + x + n) % (regions + 1) - 1


def _past_2_31(t):
    assert (t.shape[0] - 1) * t[0].numel() >= 2 ** 31, f"shape {tuple(t.shape)} is too small"


def _tail(t):
    """The last item alone: a copy, so the small run reads its own memory."""
    return t.detach()[-1:].clone().requires_grad_(t.requires_grad)


def _same(big, small, what):
    torch.testing.assert_close(
        big[-1:], small, rtol=0, atol=0,
        msg=lambda m: f"{what}: the last item differs from the item run alone\n{m}")


def _grads(out, inputs, grad_out):
    return torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda", "triton")))
def test_haar_dwt_idwt(impl, device):
    _need(device, 14)
    make = Inputs(device)
    x = make.randn(N, C, H, W)
    _past_2_31(x)
    y = hrops.haar_dwt(x, impl=impl)
    _same(y, hrops.haar_dwt(_tail(x), impl=impl), "haar_dwt")
    del x
    z = hrops.haar_idwt(y, impl=impl)
    _past_2_31(z)
    _same(z, hrops.haar_idwt(_tail(y), impl=impl), "haar_idwt")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_region_avg_pool(impl, device):
    _need(device, 12)
    make = Inputs(device)
    regions = 19
    feat, labels = make.randn(N, C, H, W, grad=True), make.labels(regions)
    _past_2_31(feat)
    out = hrops.region_avg_pool(feat, labels, regions, impl=impl)
    grad_out = make.randn(*out.shape)
    (grad,) = _grads(out, feat, grad_out)
    small_feat = _tail(feat)
    small = hrops.region_avg_pool(small_feat, labels[-1:], regions, impl=impl)
    _same(out, small, "region_avg_pool")
    _same(grad, _grads(small, small_feat, grad_out[-1:])[0], "region_avg_pool backward")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_region_broadcast(impl, device):
    _need(device, 12)
    make = Inputs(device)
    regions = 19
    codes, labels = make.randn(N, regions, C, grad=True), make.labels(regions)
    out = hrops.region_broadcast(codes, labels, impl=impl)
    _past_2_31(out)
    grad_out = make.randn(*out.shape)
    (grad,) = _grads(out, codes, grad_out)
    small_codes = _tail(codes)
    small = hrops.region_broadcast(small_codes, labels[-1:], impl=impl)
    _same(out, small, "region_broadcast")
    _same(grad, _grads(small, small_codes, grad_out[-1:])[0], "region_broadcast backward")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_region_conv(impl, device):
    """region_conv2d's gather and its backward, from one projection (the
    projection's GEMM may round differently for another batch size)."""
    _need(device, 12)
    make = Inputs(device)
    regions, k = 19, 3
    proj, labels = make.randn(N, regions, k * k, C, grad=True), make.labels(regions)
    bias = make.randn(C)
    out = region_ops._region_conv_gather(proj, labels, bias, k, 1, impl)
    _past_2_31(out)
    grad_out = make.randn(*out.shape)
    (grad,) = _grads(out, proj, grad_out)
    small_proj = _tail(proj)
    small = region_ops._region_conv_gather(small_proj, labels[-1:], bias, k, 1, impl)
    _same(out, small, "region_conv2d")
    _same(grad, _grads(small, small_proj, grad_out[-1:])[0], "region_conv2d backward")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_fused_bias_leaky_relu(impl, device):
    _need(device, 22)
    make = Inputs(device)
    x, bias = make.randn(N, C, H, W, grad=True), make.randn(C)
    _past_2_31(x)
    out = hrops.fused_bias_leaky_relu(x, bias, impl=impl)
    grad_out = make.randn(*out.shape)
    (grad,) = _grads(out, x, grad_out)
    small_x = _tail(x)
    small = hrops.fused_bias_leaky_relu(small_x, bias, impl=impl)
    _same(out, small, "fused_bias_leaky_relu")
    _same(grad, _grads(small, small_x, grad_out[-1:])[0], "fused_bias_leaky_relu backward")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
@pytest.mark.parametrize("direction", ["up", "down"])
def test_upfirdn2d(direction, impl, device):
    """StyleGAN2's 2x up (output past 2**31) and down (input past 2**31)
    with the 4-tap blur; each backward is the other direction."""
    _need(device, 14)
    make = Inputs(device)
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    kernel = torch.outer(taps, taps).to(DTYPE) / 16
    if direction == "up":
        x, args = make.randn(N, C, H // 2, W // 2, grad=True), dict(up=2, pad=(2, 1))
    else:
        x, args = make.randn(N, C, H, W, grad=True), dict(down=2, pad=(1, 1))
    out = hrops.upfirdn2d(x, kernel, **args, impl=impl)
    _past_2_31(out if direction == "up" else x)
    grad_out = make.randn(*out.shape)
    (grad,) = _grads(out, x, grad_out)
    small_x = _tail(x)
    small = hrops.upfirdn2d(small_x, kernel, **args, impl=impl)
    _same(out, small, f"upfirdn2d {direction}")
    _same(grad, _grads(small, small_x, grad_out[-1:])[0], f"upfirdn2d {direction} backward")


# Gating kernels, called directly (autograd would also hold a forward's
# outputs during its backward): name -> (extra arguments, operands as
# (channel multiple, real), output channel multiples). Some read-only
# operands of _lstu_gates_backward are one item expanded over the batch
# (stride 0), so that it stays under ~40 GiB; every output and every real
# input spans more than 2**31 elements.
GATES = {
    "lstu_gates": ((0,), [(1, True), (1, True), (2, True), (1, True)], (1, 1)),
    "_lstu_gates_backward": ((0,), [(1, True), (1, False), (1, False), (1, False), (2, True),
                                   (1, False)], (1, 1, 2, 1)),
    "stu_reset": ((), [(1, True), (1, True)], (1,)),
    "_stu_reset_backward": ((), [(1, True), (1, True), (1, True)], (1, 1)),
    "gru_update": ((), [(1, True), (1, True), (1, True)], (1,)),
    "_gru_update_backward": ((), [(1, True), (1, True), (1, True), (1, True)], (1, 1, 1)),
}


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda", "triton")))
@pytest.mark.parametrize("name", list(GATES))
def test_gates(name, impl, device):
    extra, operands, outputs = GATES[name]
    planes = sum(groups for groups, real in operands if real) + sum(outputs)
    _need(device, 2 + planes * N * C * H * W * DTYPE.itemsize * 1.1 / GIB)
    make = Inputs(device)
    args = [make.randn(N, groups * C, H, W) if real
            else make.randn(1, groups * C, H, W).expand(N, -1, -1, -1)
            for groups, real in operands]
    op = getattr(torch.ops.hrops, name)
    kernel = lambda *a: op(*a, impl)  # noqa: E731
    outs = kernel(*args, *extra)
    outs = (outs,) if isinstance(outs, torch.Tensor) else tuple(outs)
    smalls = kernel(*(a[-1:] for a in args), *extra)
    smalls = (smalls,) if isinstance(smalls, torch.Tensor) else tuple(smalls)
    assert len(outs) == len(outputs)
    for i, (out, small) in enumerate(zip(outs, smalls)):
        _past_2_31(out)
        _same(out, small, f"{name} output {i}")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_modulated_idwt_upsample(impl, device):
    _need(device, 22)
    make = Inputs(device)
    x, mod = make.randn(N, 4 * C, H // 2, W // 2, grad=True), make.randn(N, 4 * C, grad=True)
    _past_2_31(x)
    out = hrops.modulated_idwt_upsample(x, mod, impl=impl)
    grad_out = make.randn(*out.shape)
    gx, gmod = _grads(out, (x, mod), grad_out)
    small_x, small_mod = _tail(x), _tail(mod)
    small = hrops.modulated_idwt_upsample(small_x, small_mod, impl=impl)
    small_gx, small_gmod = _grads(small, (small_x, small_mod), grad_out[-1:])
    _same(out, small, "modulated_idwt_upsample")
    _same(gx, small_gx, "modulated_idwt_upsample grad x")
    _same(gmod, small_gmod, "modulated_idwt_upsample grad modulation")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
@pytest.mark.parametrize("past", ["features", "candidates"])
def test_patchmatch_step(past, impl, device):
    """Past 2**31: feat_a's channels-last copy (32 channels, 3 candidates),
    or the offsets, new offsets and probabilities (2 channels, 16
    candidates, 48 after horizontal propagation)."""
    _need(device, 36)
    make = Inputs(device)
    channels, k = (C, 1) if past == "features" else (2, 16)
    a, b = make.randn(N, channels, H, W), make.randn(N, channels, 64, 64)
    offsets = make.offsets(k, 40)
    _past_2_31(a if past == "features" else offsets)
    outs = hrops.patchmatch_step(a, b, offsets, "horizontal", impl=impl)
    smalls = hrops.patchmatch_step(a[-1:], b[-1:], offsets[-1:], "horizontal", impl=impl)
    _same(outs[0], smalls[0], "patchmatch_step offsets")
    _same(outs[1], smalls[1], "patchmatch_step probabilities")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "cuda")))
def test_patchmatch_warp(impl, device):
    """The warped output and its gradient past 2**31 (32 ref channels)."""
    _need(device, 32)
    make = Inputs(device)
    a, b = make.randn(N, 8, H, W, grad=True), make.randn(N, 8, 64, 64, grad=True)
    ref_img, offsets = make.randn(N, C, 64, 64, grad=True), make.offsets(4, 40)
    out = hrops.patchmatch_warp(a, b, ref_img, offsets, impl=impl)
    _past_2_31(out)
    grad_out = make.randn(*out.shape)
    grads = _grads(out, (a, b, ref_img), grad_out)
    small_in = [_tail(t) for t in (a, b, ref_img)]
    small = hrops.patchmatch_warp(*small_in, offsets[-1:], impl=impl)
    small_grads = _grads(small, small_in, grad_out[-1:])
    _same(out, small, "patchmatch_warp")
    _same(grads[0], small_grads[0], "patchmatch_warp grad feat_a")
    # feat_b's and ref's gradients gather many pixels' contributions, by
    # atomics on CUDA: equal up to the order of the additions.
    for name, got, want in zip(("feat_b", "ref_img"), grads[1:], small_grads[1:]):
        torch.testing.assert_close(got[-1:], want, rtol=2e-3, atol=2e-3,
                                   msg=lambda m, name=name: f"patchmatch_warp grad {name}: "
                                                            f"the last item differs\n{m}")


@pytest.mark.parametrize("impl,device", _targets(("cpu", "triton")))
def test_modulated_dwconv2d_one_sample(impl, device):
    """One sample past 2**31 elements: a channels-last x (row offsets) and
    an NCHW output gradient (channel offsets) of 512 x 2048 x 2050. The last
    rows of the output and of every gradient must equal those of the op on
    the bottom rows alone, given an output gradient that is zero above them
    (so the sums over pixels hold the same terms)."""
    _need(device, 30)
    make = Inputs(device)
    c, rows, k = 512, 8, 3
    p = k // 2
    x = make.randn(1, c, H, W).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert x[0].numel() > 2 ** 31, "one sample must pass 2**31 elements"
    weights = (make.randn(1, c, grad=True), make.randn(c, 1, k, k, grad=True),
               make.randn(c, c, 1, 1, grad=True), make.randn(c, grad=True))
    out = hrops.modulated_dwconv2d(x, *weights, impl=impl)
    grad_out = make.randn(*out.shape).contiguous()
    grad_out[:, :, :H - rows + p] = 0
    grads = _grads(out, (x, *weights), grad_out)
    bottom = x.detach()[:, :, H - rows:].clone().requires_grad_()
    small_w = [w.detach().clone().requires_grad_() for w in weights]
    small = hrops.modulated_dwconv2d(bottom, *small_w, impl=impl)
    small_grads = _grads(small, (bottom, *small_w), grad_out[:, :, H - rows:].contiguous())
    _same(out[:, :, H - rows + p:], small[:, :, p:], "modulated_dwconv2d")
    _same(grads[0][:, :, H - rows + 2 * p:], small_grads[0][:, :, 2 * p:],
          "modulated_dwconv2d grad x")
    # The weights' gradients sum over pixels, grouped otherwise in the big
    # run: equal up to the order of the additions.
    for name, got, want in zip(("modulation", "weight_dw", "weight_pw", "demod"), grads[1:],
                               small_grads[1:]):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2 * float(want.abs().max()),
                                   msg=lambda m, name=name: f"grad {name}: {m}")


# Grids: kernels that give each (image, channel[, tap]) or pixel block its
# own CUDA block stride over a capped grid. Small tensors, many blocks.

@pytest.mark.parametrize("impl,device", _targets(("cuda",)))
def test_region_conv_backward_past_2_31_blocks(impl, device):
    """More (image, channel, tap) sums than a grid's 2**31 - 1 blocks: a
    1-pixel map with a 7x7 kernel, whose centre tap alone lies on it."""
    _need(device, 6)
    k = 7
    channels = 2 ** 31 // (k * k) + 1
    labels = torch.zeros(1, 1, 1, dtype=torch.long, device=device)
    grad = Inputs(device).randn(1, channels, 1, 1)
    got = torch.ops.hrops_C._region_conv_gather_backward(grad, labels, 1, k, k // 2)
    centre = got[0, 0, k * k // 2]
    assert torch.equal(centre, grad[0, :, 0, 0])
    centre.zero_()
    assert not got.any(), "taps off the map got gradient"


@pytest.mark.parametrize("impl,device", _targets(("cuda",)))
def test_modulated_idwt_backward_past_65536_planes(impl, device):
    """One block per (n, c) plane, more planes than the grid's 65536 blocks."""
    make = Inputs(device)
    x, mod = make.randn(1, 4 * 70_000, 1, 2, dtype=torch.float32, grad=True), \
        make.randn(1, 4 * 70_000, dtype=torch.float32, grad=True)
    out = hrops.modulated_idwt_upsample(x, mod, impl=impl)
    grad_out = make.randn(*out.shape, dtype=torch.float32)
    got = _grads(out, (x, mod), grad_out)
    x_cpu, mod_cpu = (t.detach().cpu().requires_grad_() for t in (x, mod))
    want = _grads(hrops.modulated_idwt_upsample(x_cpu, mod_cpu, impl="ref"), (x_cpu, mod_cpu),
                  grad_out.cpu())
    for name, g, w in zip(("x", "modulation"), got, want):
        torch.testing.assert_close(g.cpu(), w, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("impl,device", _targets(("triton",)))
def test_modulated_dwconv2d_backward_past_65536_plane_blocks(impl, device):
    """The input gradient's stencil over more (sample, channel) plane blocks
    than a grid axis's 65535, against the reference on the CPU."""
    make = Inputs(device)
    c = 16 * 65536 + 3
    x = make.randn(1, c, 1, 2, dtype=torch.float32, grad=True)
    args = (x, make.randn(1, c, dtype=torch.float32), make.randn(c, 1, 3, 3, dtype=torch.float32),
            make.randn(1, c, 1, 1, dtype=torch.float32))
    out = hrops.modulated_dwconv2d(*args, impl=impl)
    grad_out = make.randn(*out.shape, dtype=torch.float32)
    got, = _grads(out, (x,), grad_out)
    on_cpu = [t.detach().cpu() for t in args]
    on_cpu[0].requires_grad_()
    want, = _grads(hrops.modulated_dwconv2d(*on_cpu, impl="ref"), (on_cpu[0],), grad_out.cpu())
    torch.testing.assert_close(got.cpu(), want)


@pytest.mark.parametrize("impl,device", _targets(("cuda",)))
def test_patchmatch_past_65536_blocks(impl, device):
    """One thread per pixel, more pixels (2900^2) than 65536 blocks of 128
    threads: the step (one candidate, so no ranking of near-ties) and the
    warp with its backward, against the CPU kernels."""
    make = Inputs(device)
    size = 2900
    a = make.randn(1, 2, size, size, dtype=torch.float32, grad=True)
    b = make.randn(1, 2, 16, 16, dtype=torch.float32, grad=True)
    ref_img = make.randn(1, 3, 16, 16, dtype=torch.float32, grad=True)
    offsets = torch.randint(-8, 8, (1, 2, 2, size, size), generator=make.gen,
                            device=device).float()
    on_cpu = [t.detach().cpu().requires_grad_(t.requires_grad) for t in (a, b, ref_img, offsets)]
    step = hrops.patchmatch_step(a, b, offsets[:, :, :1], "none", impl=impl)
    step_cpu = hrops.patchmatch_step(*on_cpu[:2], on_cpu[3][:, :, :1], "none", impl="cpu")
    for got, want in zip(step, step_cpu):
        torch.testing.assert_close(got.cpu(), want, msg=lambda m: f"patchmatch_step: {m}")
    out = hrops.patchmatch_warp(a, b, ref_img, offsets, impl=impl)
    out_cpu = hrops.patchmatch_warp(*on_cpu, impl="cpu")
    torch.testing.assert_close(out.detach().cpu(), out_cpu.detach())
    grad_out = make.randn(*out.shape, dtype=torch.float32)
    got = _grads(out, (a, b, ref_img), grad_out)
    want = _grads(out_cpu, on_cpu[:3], grad_out.cpu())
    # feat_b's and ref's gradients sum ~10^5 pixels' terms each, in another
    # order (atomics): to within 1e-4 of their largest value.
    for name, g, w in zip(("feat_a", "feat_b", "ref_img"), got, want):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-4, atol=1e-4 * float(w.abs().max()),
                                   msg=lambda m, name=name: f"patchmatch_warp grad {name}: {m}")
