"""MobileStyleGAN's fused ops: modulated depthwise-separable conv and
modulated IDWT upsampling, every kernel against the reference."""
import numpy as np
import pytest
import torch

import hrops
from hrops import ref
from impls import interpreted, kernel_impls

DW_IMPLS = kernel_impls(("cpu", "triton"))
IDWT_IMPLS = kernel_impls(("cpu", "cuda"))
# (N, Cin, Cout, H, W, k, padding)
DW_SHAPES = [(2, 5, 7, 9, 11, 3, 1), (1, 20, 40, 6, 5, 5, 2), (2, 4, 3, 8, 8, 3, 0),
             (1, 3, 17, 33, 10, 1, 0), (3, 16, 16, 4, 4, 3, 1)]
TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-10),
       torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}


def _dw_inputs(shape, dtype=torch.float64, requires_grad=False):
    n, cin, cout, h, w, k, _ = shape
    gen = torch.Generator().manual_seed(sum(shape))
    make = [(n, cin, h, w), (n, cin), (cin, 1, k, k), (cout, cin, 1, 1)]
    ts = [torch.randn(s, generator=gen, dtype=torch.float64) for s in make]
    ts.append(torch.rand(cout, generator=gen, dtype=torch.float64) + 0.5)
    return [t.to(dtype).requires_grad_(requires_grad) for t in ts]


def _dw_dtypes(impl, device):
    if interpreted(impl, device):
        return [torch.float32, torch.float64, torch.float16]  # the interpreter has no bf16
    return list(TOL)


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", DW_SHAPES)
def test_dwconv_forward_matches_ref(impl, device, shape):
    pad = shape[-1]
    for dtype in _dw_dtypes(impl, device):
        x, m, wdw, wpw, d = _dw_inputs(shape, dtype)
        expected = ref.modulated_dwconv2d(*[t.double() for t in (x, m, wdw, wpw, d)], padding=pad)
        for demod in (d, None):
            exp = expected if demod is not None else expected / d.double().view(1, -1, 1, 1)
            for layout, xl in (("contiguous", x), ("channels_last", x.to(memory_format=torch.channels_last)),
                               ("strided", x.transpose(2, 3).contiguous().transpose(2, 3))):
                args = [t.to(device) for t in (xl, m, wdw, wpw)]
                y = hrops.modulated_dwconv2d(*args, demod.to(device) if demod is not None else None,
                                             padding=pad, impl=impl)
                torch.testing.assert_close(y.cpu().double(), exp, **TOL[dtype],
                                           msg=lambda msg: f"{dtype} {layout}: {msg}")


# Gradient shapes: DW_SHAPES' first four (k = 1, 3, 5; padding 0 and k // 2),
# a 1x1 map, channel counts past one block of each Triton kernel (tails
# masked), and 5 pixel tiles of 64 (under the interpreter: runs of two tiles
# per program, the last one short).
DW_GRAD_SHAPES = [*DW_SHAPES[:4], (2, 17, 5, 1, 1, 5, 2), (1, 70, 70, 3, 3, 3, 1),
                  (1, 6, 5, 17, 17, 3, 1)]
GRAD_NAMES = ("x", "modulation", "weight_dw", "weight_pw", "demod")


def _check_dw_gradients(impl, device, shape, dtypes):
    """Every gradient, with and without demodulation, against the float64
    reference on the same (rounded) values."""
    pad = shape[-1]
    for dtype in dtypes:
        inputs = _dw_inputs(shape, dtype, requires_grad=True)
        wide = [t.detach().double().requires_grad_() for t in inputs]
        for count in (5, 4):  # with and without demod
            y = hrops.modulated_dwconv2d(*[t.to(device) for t in inputs[:count]], padding=pad,
                                         impl=impl)
            g = torch.randn(y.shape, dtype=torch.float64).to(dtype)
            got = torch.autograd.grad(y, inputs[:count], g.to(device))
            y_ref = ref.modulated_dwconv2d(*wide[:count], padding=pad)
            expected = torch.autograd.grad(y_ref, wide[:count], g.double())
            tol = TOL[dtype]
            for name, a, b in zip(GRAD_NAMES, got, expected):
                torch.testing.assert_close(
                    a.cpu().double(), b, rtol=tol["rtol"],
                    atol=tol["atol"] * max(1.0, b.abs().max().item()),
                    msg=lambda msg: f"{dtype} demod={count == 5} grad {name}: {msg}")


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", DW_GRAD_SHAPES)
def test_dwconv_gradients_match_ref(impl, device, shape):
    _check_dw_gradients(impl, device, shape, (torch.float32, torch.float64))


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", [DW_SHAPES[0], (1, 70, 70, 3, 3, 3, 1)])
def test_dwconv_half_gradients_match_ref(impl, device, shape):
    """Half types: storage-type dots (Triton) with float32 accumulation."""
    dtypes = [t for t in _dw_dtypes(impl, device) if t in (torch.float16, torch.bfloat16)]
    _check_dw_gradients(impl, device, shape, dtypes)


@pytest.mark.parametrize("impl,device", DW_IMPLS)
def test_dwconv_gradients_any_layout(impl, device):
    """x channels-last or strided, and output gradients that are not
    contiguous (transposed, or y.sum()'s expanded ones)."""
    shape = DW_SHAPES[0]
    inputs = _dw_inputs(shape, torch.float32, requires_grad=True)
    wide = [t.detach().double().requires_grad_() for t in inputs]
    y_ref = ref.modulated_dwconv2d(*wide, padding=1)
    g = torch.randn(y_ref.shape[:2] + y_ref.shape[:1:-1], dtype=torch.float64).transpose(2, 3)

    def grads(y, leaves, grad):
        if grad is None:
            return torch.autograd.grad(y.sum(), leaves, retain_graph=True)
        return torch.autograd.grad(y, leaves, grad, retain_graph=True)
    for x in (inputs[0].to(memory_format=torch.channels_last),
              inputs[0].transpose(2, 3).contiguous().transpose(2, 3)):
        y = hrops.modulated_dwconv2d(*[t.to(device) for t in (x, *inputs[1:])], padding=1,
                                     impl=impl)
        for grad in (g, None):
            got = grads(y, inputs, grad.float().to(device) if grad is not None else None)
            for name, a, b in zip(GRAD_NAMES, got, grads(y_ref, wide, grad)):
                torch.testing.assert_close(a.cpu().double(), b, rtol=1e-4,
                                           atol=1e-4 * b.abs().max().item(),
                                           msg=lambda msg: f"grad {name}: {msg}")


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("k,padding", [(1, 1), (3, 3), (5, 5), (3, 4), (1, 3)])
def test_dwconv_gradients_with_padding_past_the_kernel(impl, device, k, padding):
    """padding > k - 1: the input gradient correlates a cropped output
    gradient (the CPU backward once padded by k - 1 - p < 0 and overflowed).
    Under the slow interpreter float64 only: the indexing is the same."""
    dtypes = [torch.float64] if interpreted(impl, device) else [torch.float32, torch.float64]
    _check_dw_gradients(impl, device, (2, 4, 3, 6, 5, k, padding), dtypes)


# (N, Cin, Cout, H, W, k): shapes where 2 threads once failed in at::mm_out
# ("functions with out=... arguments don't support automatic differentiation")
# because the workers did not inherit the caller's autograd exclusion.
DW_THREAD_SHAPES = [(2, 16, 8, 32, 32, 3), (4, 64, 32, 16, 16, 3), (2, 17, 5, 1, 1, 5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", DW_THREAD_SHAPES)
def test_dwconv_cpu_two_threads_with_weights_requiring_grad(shape, dtype):
    n, cin, cout, h, w, k = shape
    x, m, wdw, wpw, _ = _dw_inputs((n, cin, cout, h, w, k, k // 2), dtype)
    params = [t.requires_grad_() for t in (m, wdw, wpw)]
    g = torch.randn((n, cout, h, w), dtype=dtype)

    def run():
        with torch.no_grad():
            y_no_grad = hrops.modulated_dwconv2d(x, m, wdw, wpw, impl="cpu")
        with torch.inference_mode():
            y_inference = hrops.modulated_dwconv2d(x, m, wdw, wpw, impl="cpu")
        y = hrops.modulated_dwconv2d(x, m, wdw, wpw, impl="cpu")
        return (y_no_grad, y_inference, y.detach(), *torch.autograd.grad(y, params, g))

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = run()
        torch.set_num_threads(1)
        one = run()
    finally:
        torch.set_num_threads(previous)
    tol = TOL[dtype]
    for a, b in zip(two, one):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(two[0], ref.modulated_dwconv2d(x, m, wdw, wpw, padding=k // 2).detach(),
                               **tol)


def _epilogue(shape, dtype, batched_noise, requires_grad=False):
    n, _, cout, h, w, k, pad = shape
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    gen = torch.Generator().manual_seed(1)
    bias = torch.randn(cout, generator=gen, dtype=torch.float64).to(dtype)
    noise = torch.randn(n if batched_noise else 1, 1, ho, wo, generator=gen,
                        dtype=torch.float64).to(dtype)
    nw = torch.randn(1, generator=gen, dtype=torch.float64).to(dtype)
    return [t.requires_grad_(requires_grad) for t in (bias, noise, nw)]


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", DW_SHAPES[:3])
@pytest.mark.parametrize("batched_noise", [False, True])
def test_dwconv_styled_epilogue_matches_ref(impl, device, shape, batched_noise):
    """Fused noise + bias + LeakyReLU (StyledConv2d) against the reference,
    forward and every gradient."""
    dtype = torch.float32 if impl == "triton" else torch.float64
    inputs = _dw_inputs(shape, dtype, requires_grad=True)
    bias, noise, nw = _epilogue(shape, dtype, batched_noise, requires_grad=True)
    extra = dict(padding=shape[-1], negative_slope=0.2)

    def run(impl_, move):
        return hrops.modulated_dwconv2d(*[move(t) for t in inputs], bias=move(bias),
                                        noise=move(noise), noise_weight=move(nw), impl=impl_, **extra)
    y = run(impl, lambda t: t.to(device))
    y_ref = run("ref", lambda t: t)
    torch.testing.assert_close(y.cpu(), y_ref, **TOL[dtype])
    g = torch.randn(y_ref.shape, dtype=dtype)
    leaves = [*inputs, bias, noise, nw]
    for a, b in zip(torch.autograd.grad(y, leaves, g.to(device)), torch.autograd.grad(y_ref, leaves, g)):
        torch.testing.assert_close(a.cpu(), b, **TOL[dtype])


# fp32 CPU forward tiling edge cases (N, Cin, Cout, H, W): row tiles with a
# remainder, pixel blocks and vectors with tails, Cout not a multiple of the
# register block, W below one vector, the largest fused Cin and one past it
# (MKL), and an output large enough (>= 32 MiB) for streaming stores with an
# odd row length.
DW_TILE_SHAPES = [(2, 70, 13, 37, 45), (1, 3, 8, 40, 5), (1, 17, 5, 9, 17), (1, 256, 7, 6, 7),
                  (1, 300, 7, 6, 7), (1, 8, 7, 1203, 1001)]


@pytest.mark.parametrize("shape", DW_TILE_SHAPES)
def test_dwconv_cpu_fp32_tiles_match_ref(shape):
    n, cin, cout, h, w = shape
    x, m, wdw, wpw, d = _dw_inputs((n, cin, cout, h, w, 3, 1), torch.float32)
    expected = ref.modulated_dwconv2d(*[t.double() for t in (x, m, wdw, wpw, d)], padding=1)
    y = hrops.modulated_dwconv2d(x, m, wdw, wpw, d, padding=1, impl="cpu")
    torch.testing.assert_close(y.double(), expected, atol=1e-4 * expected.abs().max().item(), rtol=1e-4)
    if h * w < 10_000:  # float32 gradients: the backward's direct 3x3 stencils
        inputs = [t.requires_grad_() for t in (x, m, wdw, wpw, d)]
        y = hrops.modulated_dwconv2d(*inputs, padding=1, impl="cpu")
        g = torch.randn(y.shape)
        got = torch.autograd.grad(y, inputs, g)
        wide = [t.detach().double().requires_grad_() for t in inputs]
        want = torch.autograd.grad(ref.modulated_dwconv2d(*wide, padding=1), wide, g.double())
        for name, a, b in zip(("x", "modulation", "weight_dw", "weight_pw", "demod"), got, want):
            torch.testing.assert_close(a.double(), b, atol=1e-4 * b.abs().max().item(), rtol=1e-4,
                                       msg=lambda msg: f"grad {name}: {msg}")
        x, m, wdw, wpw, d = (t.detach() for t in inputs)
    if h * w < 10_000:  # the epilogue path (GEMM tile in L2, then the epilogue)
        bias, noise, nw = _epilogue((n, cin, cout, h, w, 3, 1), torch.float32, True)
        extra = dict(bias=bias, noise=noise, noise_weight=nw, negative_slope=0.2, padding=1)
        y = hrops.modulated_dwconv2d(x, m, wdw, wpw, d, impl="cpu", **extra)
        y_ref = hrops.modulated_dwconv2d(x, m, wdw, wpw, d, impl="ref", **extra)
        torch.testing.assert_close(y, y_ref, atol=1e-4 * y_ref.abs().max().item(), rtol=1e-4)


# fp32 one-pass CPU backward (3x3 "same", <= 256 channels): row bands of one
# row (the halo rows carried across two bands), bands whose last one is
# shorter, and with two threads a thread's first band in the middle of an
# image (its halo computed first), at the top of the second image, and
# grad_x large enough (>= 32 MiB) for streaming stores.
DW_BAND_SHAPES = [(1, 64, 24, 11, 700), (1, 16, 8, 10, 1300), (3, 40, 30, 13, 200),
                  (1, 256, 256, 9, 16), (2, 8, 4, 600, 1000)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", DW_BAND_SHAPES)
def test_dwconv_cpu_fp32_backward_bands_match_ref(shape, threads):
    n, cin, cout, h, w = shape
    inputs = [t.requires_grad_() for t in _dw_inputs((n, cin, cout, h, w, 3, 1), torch.float32)]
    g = torch.randn((n, cout, h, w), generator=torch.Generator().manual_seed(1))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = torch.autograd.grad(hrops.modulated_dwconv2d(*inputs, padding=1, impl="cpu"), inputs, g)
    finally:
        torch.set_num_threads(previous)
    wide = [t.detach().double().requires_grad_() for t in inputs]
    want = torch.autograd.grad(ref.modulated_dwconv2d(*wide, padding=1), wide, g.double())
    for name, a, b in zip(("x", "modulation", "weight_dw", "weight_pw", "demod"), got, want):
        torch.testing.assert_close(a.double(), b, atol=1e-4 * b.abs().max().item(), rtol=1e-4,
                                   msg=lambda msg: f"grad {name}: {msg}")


def test_dwconv_epilogue_accepts_mobilestylegan_noise_and_checks_it():
    x, m, wdw, wpw, d = _dw_inputs((2, 3, 5, 6, 7, 3, 1), torch.float32)
    noise3d, nw = torch.randn(1, 6, 7), torch.randn(1)
    y = hrops.modulated_dwconv2d(x, m, wdw, wpw, d, noise=noise3d, noise_weight=nw)
    expected = hrops.modulated_dwconv2d(x, m, wdw, wpw, d, impl="ref") + nw * noise3d
    torch.testing.assert_close(y, expected)
    with pytest.raises(ValueError, match=r"noise must have shape \(1 or N, 1, Ho, Wo\)"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, noise=torch.randn(3, 1, 6, 7), noise_weight=nw)
    with pytest.raises(ValueError, match="noise needs noise_weight"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, noise=noise3d)
    with pytest.raises(ValueError, match="bias must have Cout = 5 elements"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, bias=torch.randn(4))


@pytest.mark.parametrize("impl,device", DW_IMPLS)
def test_dwconv_gradcheck(impl, device):
    """float64 gradcheck; under the interpreter on a tiny shape in fast mode
    (one random projection of the Jacobian: a full one takes minutes)."""
    fast = interpreted(impl, device)
    shape = (2, 2, 3, 4, 3, 3, 1) if fast else (2, 3, 4, 5, 6, 3, 1)
    inputs = [t.to(device).requires_grad_() for t in _dw_inputs(shape)]
    assert torch.autograd.gradcheck(
        lambda *a: hrops.modulated_dwconv2d(*a, padding=1, impl=impl), inputs, fast_mode=fast)
    no_demod = inputs[:4]
    assert torch.autograd.gradcheck(
        lambda *a: hrops.modulated_dwconv2d(*a, padding=2, impl=impl), no_demod, fast_mode=fast)
    epilogue = [t.to(device).requires_grad_() for t in _epilogue(shape, torch.float64, True)]
    assert torch.autograd.gradcheck(
        lambda *a: hrops.modulated_dwconv2d(*a[:5], padding=1, bias=a[5], noise=a[6],
                                            noise_weight=a[7], negative_slope=0.2, impl=impl),
        (*inputs, *epilogue), fast_mode=fast)


def test_dwconv_double_backward_raises_clearly():
    inputs = _dw_inputs((1, 2, 3, 4, 4, 3, 1), requires_grad=True)
    y = hrops.modulated_dwconv2d(*inputs, impl="cpu")
    (gx,) = torch.autograd.grad(y.sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        gx.sum().backward()


def _saved_bytes(fn):
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


@pytest.mark.parametrize("impl,device", DW_IMPLS)
def test_dwconv_saves_only_inputs_and_weights(impl, device):
    """The backward recomputes the depthwise output: saved are the inputs and
    weights (at most a third of the reference's bytes), plus the output when
    LeakyReLU is fused (its sign gives the activation's gradient)."""
    shape = (2, 8, 8, 16, 16, 3, 1)
    inputs = [t.to(device).requires_grad_() for t in _dw_inputs(shape, torch.float32)]
    bias, noise, nw = [t.to(device).requires_grad_()
                       for t in _epilogue(shape, torch.float32, False)]

    def nbytes(*ts):
        return sum(t.untyped_storage().nbytes() for t in ts)
    saved = _saved_bytes(lambda: hrops.modulated_dwconv2d(*inputs, impl=impl))
    assert saved == nbytes(*inputs)
    # The reference keeps the modulated input and the depthwise output as well.
    assert 3 * saved <= _saved_bytes(lambda: hrops.modulated_dwconv2d(*inputs, impl="ref"))
    outputs = []
    epilogue = dict(bias=bias, noise=noise, noise_weight=nw, negative_slope=0.2)
    saved = _saved_bytes(lambda: outputs.append(hrops.modulated_dwconv2d(*inputs, impl=impl,
                                                                          **epilogue)))
    assert saved == nbytes(*inputs, noise, nw, *outputs)


@pytest.mark.parametrize("impl,device", DW_IMPLS)
def test_dwconv_empty_and_opcheck(impl, device):
    args = [t.to(device).requires_grad_() for t in _dw_inputs((2, 3, 5, 6, 7, 3, 1), torch.float32)]
    x, m, wdw, wpw, d = args
    empty = hrops.modulated_dwconv2d(x[:0], m[:0], wdw, wpw, d, impl=impl)
    assert empty.shape == (0, 5, 6, 7)
    for arg, grad in zip(args, torch.autograd.grad(empty.sum(), args)):
        assert grad.shape == arg.shape and not grad.any()
    op = torch.ops.hrops.modulated_dwconv2d.default
    no_epilogue = (None, None, None, None)
    torch.library.opcheck(op, (*args, 1, *no_epilogue, impl))
    torch.library.opcheck(op, (*args[:4], None, 0, *no_epilogue, impl))
    bias = torch.randn(5, device=device, requires_grad=True)
    noise = torch.randn(1, 1, 6, 7, device=device)
    nw = torch.randn(1, device=device, requires_grad=True)
    torch.library.opcheck(op, (*args, 1, bias, noise, nw, 0.2, impl))


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 33, 33, 3, 1), (2, 5, 7, 1, 17, 3, 1),
                                   (1, 4, 3, 8, 40, 5, 2)])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_dwconv_non_finite_input_on_the_border_rows(impl, device, shape, value):
    # Out-of-plane rows are zeros, never an in-plane row times a zero weight:
    # 0 * inf is NaN, so an inf on the first or last row must not spread.
    x, m, wdw, wpw, d = _dw_inputs(shape, torch.float32)
    h, w = shape[3], shape[4]
    for row in (0, h - 1):
        x[0, 1, row, w // 2] = value
        x[-1, 2, row, 0] = value
        x[-1, 3, row, w - 1] = value
    expected = ref.modulated_dwconv2d(*[t.double() for t in (x, m, wdw, wpw, d)],
                                      padding=shape[-1]).float()
    got = hrops.modulated_dwconv2d(*[t.to(device) for t in (x, m, wdw, wpw, d)],
                                   padding=shape[-1], impl=impl).cpu()
    assert torch.equal(got.isnan(), expected.isnan()) and torch.equal(got.isinf(), expected.isinf())
    assert expected.isfinite().any()
    finite = expected.isfinite()
    torch.testing.assert_close(got[finite], expected[finite], **TOL[torch.float32])


@pytest.mark.parametrize("impl,device", DW_IMPLS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 33, 33, 3, 1), (2, 5, 7, 1, 17, 3, 1)])
def test_dwconv_non_finite_gradient_on_the_border_rows(impl, device, shape):
    """An inf upstream gradient on the first or last row: the depthwise
    weight's taps over the zero padding get 0 * inf = NaN, as in the
    reference (NaN against inf elsewhere is an order of products, not checked)."""
    inputs = _dw_inputs(shape, torch.float32)
    n, _, cout, h, w, _, pad = shape
    grad = torch.randn(n, cout, h, w)
    grad[0, 1, 0, w // 2] = grad[-1, 2, h - 1, 0] = float("inf")
    leaves = [t.double().requires_grad_() for t in inputs]
    want = torch.autograd.grad(ref.modulated_dwconv2d(*leaves, padding=pad), leaves,
                               grad.double())
    leaves = [t.to(device).requires_grad_() for t in inputs]
    got = torch.autograd.grad(hrops.modulated_dwconv2d(*leaves, padding=pad, impl=impl), leaves,
                              grad.to(device))
    for g, expected in zip(got, want):
        assert torch.equal(g.isfinite().cpu(), expected.isfinite())


@pytest.mark.parametrize("impl,device", [("ref", "cpu")] + DW_IMPLS)
@pytest.mark.parametrize("cin,cout", [(0, 4), (3, 0), (0, 0)])
def test_dwconv_without_channels(impl, device, cin, cout):
    """No input channels: the output is 0 * demod = 0; no output channels:
    an empty output. Every gradient is zero (or empty)."""
    args = [t.to(device).requires_grad_() for t in _dw_inputs((2, cin, cout, 5, 6, 3, 1))]
    if interpreted(impl, device):
        args = [t.detach().float().requires_grad_() for t in args]
    y = hrops.modulated_dwconv2d(*args, padding=1, impl=impl)
    assert y.shape == (2, cout, 5, 6) and not y.any()
    grads = torch.autograd.grad(y.sum(), args, allow_unused=True, materialize_grads=True)
    for arg, grad in zip(args, grads):
        assert grad.shape == arg.shape and not grad.any()


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("kwargs,expected", [
    (dict(padding=np.int64(2), negative_slope=np.float32(0.25)),
     dict(padding=2, negative_slope=0.25)),
    (dict(padding=torch.tensor(0), negative_slope=torch.tensor(0)),
     dict(padding=0, negative_slope=0.0)),
    (dict(padding=True), "padding must be an integer >= 0, got True"),
    (dict(padding=1.0), "padding must be an integer >= 0, got 1.0"),
    (dict(padding=-1), "padding must be an integer >= 0, got -1"),
    (dict(negative_slope=float("nan")), "negative_slope must be a real number >= 0, got nan"),
    (dict(negative_slope="0.2"), "negative_slope must be a real number >= 0, got '0.2'"),
    (dict(negative_slope=torch.tensor(0.2, requires_grad=True)),
     "negative_slope must be a real number; got a tensor that requires grad"),
])
def test_dwconv_scalar_arguments(impl, kwargs, expected):
    """NumPy numbers and 0-d tensors count as Python ones; bools, floats as
    sizes, NaN and a tensor that requires grad are ValueErrors naming the
    argument."""
    inputs = _dw_inputs((2, 3, 5, 6, 7, 3, 1))
    if isinstance(expected, dict):
        torch.testing.assert_close(hrops.modulated_dwconv2d(*inputs, **kwargs, impl=impl),
                                   hrops.modulated_dwconv2d(*inputs, **expected, impl=impl),
                                   atol=0, rtol=0)
    else:
        with pytest.raises(ValueError, match=expected):
            hrops.modulated_dwconv2d(*inputs, **kwargs, impl=impl)


def test_dwconv_rejects_bad_input():
    x, m, wdw, wpw, d = _dw_inputs((2, 3, 5, 6, 7, 3, 1), torch.float32)
    with pytest.raises(ValueError, match="negative_slope must be a real number >= 0, got -0.3"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, negative_slope=-0.3)
    with pytest.raises(TypeError, match="weight_dw must be a torch.Tensor, got list"):
        hrops.modulated_dwconv2d(x, m, wdw.tolist(), wpw, d)
    with pytest.raises(ValueError, match="noise_weight needs noise"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, noise_weight=torch.ones(1))
    with pytest.raises(ValueError, match=r"modulation must have shape \(N, Cin\) = \(2, 3\)"):
        hrops.modulated_dwconv2d(x, m[:, :2], wdw, wpw, d)
    with pytest.raises(ValueError, match="weight_dw must have shape .* Cin = 3"):
        hrops.modulated_dwconv2d(x, m, wdw[:2], wpw, d)
    with pytest.raises(ValueError, match="weight_pw must have shape .* Cin = 3"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw[:, :2], d)
    with pytest.raises(ValueError, match=r"demod must have shape \(Cout,\) = \(5,\)"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d[:4])
    with pytest.raises(ValueError, match="odd k"):
        hrops.modulated_dwconv2d(x, m, torch.randn(3, 1, 2, 2), wpw, d)
    with pytest.raises(ValueError, match="x and modulation must have the same dtype"):
        hrops.modulated_dwconv2d(x, m.double(), wdw, wpw, d)
    with pytest.raises(ValueError, match="padding must be an integer"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, padding=1.5)
    with pytest.raises(RuntimeError, match="not implemented for this op"):
        hrops.modulated_dwconv2d(x, m, wdw, wpw, d, impl="cuda")


# --- modulated IDWT upsampling -------------------------------------------------------------

def _up_inputs(shape, dtype=torch.float64, requires_grad=False):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    m = torch.randn(shape[:2], generator=gen, dtype=torch.float64).to(dtype)
    return x.requires_grad_(requires_grad), m.requires_grad_(requires_grad)


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
@pytest.mark.parametrize("shape", [(2, 12, 5, 7), (1, 4, 1, 1), (3, 32, 8, 8)])
def test_idwt_upsample_matches_ref(impl, device, shape):
    for dtype in TOL:
        x, m = _up_inputs(shape, dtype)
        expected = ref.modulated_idwt_upsample(x.double(), m.double())
        for xl in (x, x.to(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)):
            y = hrops.modulated_idwt_upsample(xl.to(device), m.to(device), impl=impl)
            torch.testing.assert_close(y.cpu().double(), expected, **TOL[dtype])


@pytest.mark.parametrize("impl,device", IDWT_IMPLS)
def test_idwt_upsample_autograd(impl, device):
    x, m = _up_inputs((2, 8, 3, 4), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: hrops.modulated_idwt_upsample(a, b, impl=impl), (x.to(device), m.to(device)))
    x32, m32 = (t.detach().float().to(device).requires_grad_() for t in (x, m))
    torch.library.opcheck(torch.ops.hrops.modulated_idwt_upsample.default, (x32, m32, impl))
    empty = hrops.modulated_idwt_upsample(x32[:0], m32[:0], impl=impl)
    assert empty.shape == (0, 2, 6, 8)


def test_idwt_upsample_rejects_bad_input():
    x, m = _up_inputs((2, 8, 3, 4), torch.float32)
    with pytest.raises(ValueError, match="x must have 4C channels"):
        hrops.modulated_idwt_upsample(x[:, :6], m[:, :6])
    with pytest.raises(ValueError, match=r"modulation must have shape \(N, 4C\) = \(2, 8\)"):
        hrops.modulated_idwt_upsample(x, m[:, :4])
    with pytest.raises(RuntimeError, match="modulation must have shape"):
        torch.ops.hrops_C.modulated_idwt_upsample(x, m[:1])
