"""LSTU / STU / GRU gating ops: every kernel against hrops.ref (itself
checked against the equations of csmliu/STGAN models.py, ConvGRUCell, and
neuralchen/CooGAN components/STU/SRU_modify.py / SRU_modify_relu.py written
out here), dtypes,
layouts, empty tensors, extreme pre-activations, gradients (fp64 gradcheck),
what is saved for backward, opcheck, torch.compile, and bad input."""
import pytest
import torch

import hrops
from hrops import ref
from impls import interpreted, kernel_impls

IMPLS = kernel_impls()
TOL = {torch.float32: dict(atol=2e-6, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12),
       torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}


def _lstu_inputs(shape=(2, 3, 5, 7), dtype=torch.float32, device="cpu", scale=2.0):
    n, c, h, w = shape
    x, xt, e = (torch.randn(shape, dtype=dtype, device=device) for _ in range(3))
    pre = scale * torch.randn((n, 2 * c, h, w), dtype=dtype, device=device)
    return x, xt, pre, e


def _stu_inputs(shape=(2, 3, 5, 7), dtype=torch.float32, device="cpu"):
    return tuple(2 * torch.randn(shape, dtype=dtype, device=device) for _ in range(3))


def _run_all(impl, inputs, activation="tanh"):
    x, xt, pre, e = inputs
    return (*hrops.lstu_gates(x, xt, pre, e, activation, impl=impl),
            hrops.stu_reset(pre[:, :x.shape[1]], x, impl=impl),
            hrops.stu_update(pre[:, x.shape[1]:], xt, e, impl=impl),
            hrops.gru_update(pre[:, x.shape[1]:], xt, e, impl=impl))


def test_reference_matches_equations():
    x, xt, pre, e = _lstu_inputs(dtype=torch.float64)
    c = x.shape[1]
    f, r = 1 / (1 + torch.exp(-pre[:, :c])), 1 / (1 + torch.exp(-pre[:, c:]))
    cell = f * e + (1 - f) * xt
    for act, g in (("tanh", torch.tanh), ("relu", lambda t: t.clamp_min(0))):
        h, cc = ref.lstu_gates(x, xt, pre, e, act)
        torch.testing.assert_close(cc, cell)
        torch.testing.assert_close(h, r * g(cell) + (1 - r) * x)
    torch.testing.assert_close(ref.stu_reset(pre[:, :c], x), f * x)
    torch.testing.assert_close(ref.gru_update(pre[:, c:], xt, e), (1 - r) * xt + r * torch.tanh(e))


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_ref(impl, device, dtype, activation):
    if interpreted(impl, device) and dtype == torch.bfloat16:
        pytest.skip("the Triton interpreter has no bf16")
    inputs = _lstu_inputs(dtype=dtype, device=device)
    got = _run_all(impl, inputs, activation)
    want = _run_all("ref", [t.double() for t in inputs], activation)
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.is_contiguous()
        torch.testing.assert_close(g.double(), w, **TOL[dtype])


@pytest.mark.parametrize("impl,device", IMPLS)
def test_layouts(impl, device):
    """Permuted, channels_last, sliced and expanded operands give the same values."""
    x, xt, pre, e = _lstu_inputs((2, 4, 6, 5), device=device)
    want = _run_all("ref", (x, xt, pre, e))
    big = torch.randn(2, 12, 6, 5, device=device)
    big[:, 3:11] = pre  # pre_gates as a channel slice of a bigger tensor
    variants = (x.transpose(2, 3).contiguous().transpose(2, 3),
                xt.contiguous(memory_format=torch.channels_last),
                big[:, 3:11],
                e.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3))
    got = _run_all(impl, variants)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOL[torch.float32])
    h, c = hrops.lstu_gates(x[:1].expand(2, -1, -1, -1), xt, pre, e, impl=impl)
    h_ref, c_ref = ref.lstu_gates(x[:1].expand(2, -1, -1, -1), xt, pre, e)
    torch.testing.assert_close((h, c), (h_ref, c_ref), **TOL[torch.float32])


@pytest.mark.parametrize("impl,device", IMPLS)
def test_channels_last_operands(impl, device):
    """A channels-last reference operand (x_up, s_hat, h) makes the kernels
    walk pixels: NCHW and sliced operands are taken as they come, outputs
    and gradients are channels-last, values equal the reference's; opcheck
    holds the fake implementations to the same layouts."""
    cl = torch.channels_last
    x, xt, pre, e = _lstu_inputs((2, 4, 6, 5), device=device)
    want = _run_all("ref", (x, xt, pre, e))
    wide = torch.randn(2, 6, 5, 12, device=device).permute(0, 3, 1, 2)  # channels-last
    wide[:, 3:11] = pre  # pre_gates as a channel slice: pixels 12 channels apart
    all_cl = tuple(t.contiguous(memory_format=cl) for t in (x, xt, pre, e))
    mixed = (x.contiguous(memory_format=cl), xt, wide[:, 3:11], e)
    # Reference operands: x for lstu_gates and stu_reset, xt for stu_update and gru_update.
    for variant, layouts in ((all_cl, [cl] * 5), (mixed, [cl] * 3 + [torch.contiguous_format] * 2)):
        got = _run_all(impl, variant)
        for g, w, layout in zip(got, want, layouts):
            assert g.is_contiguous(memory_format=layout)
            torch.testing.assert_close(g, w, **TOL[torch.float32])
    # The reference operand itself a channel slice of a channels-last map (the STU's s_hat).
    s_hat = wide[:, 3:7]
    got = hrops.stu_reset(pre[:, :4], s_hat, impl=impl)
    assert got.is_contiguous(memory_format=cl)
    torch.testing.assert_close(got, ref.stu_reset(pre[:, :4], s_hat), **TOL[torch.float32])
    one_wide = [t[..., :1].contiguous(memory_format=cl) for t in (x, xt, pre, e)]  # W = 1
    for g, w in zip(_run_all(impl, one_wide), _run_all("ref", one_wide)):
        torch.testing.assert_close(g, w, **TOL[torch.float32])
    ops = torch.ops.hrops
    args = [t.contiguous(memory_format=cl) for t in (x, xt, pre, e)]
    torch.library.opcheck(ops.lstu_gates.default, (*args, 1, impl))
    g = torch.randn_like(args[0])
    torch.library.opcheck(ops._lstu_gates_backward.default, (g, g, *args, 0, impl))
    torch.library.opcheck(ops.gru_update.default, (args[0], args[1], args[3], impl))


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_nchw_operands_among_channels_last(impl, device, dtype):
    """NCHW operands of an op whose reference operand is channels-last (the
    LSTU's encoder feature): values and gradients equal the reference's,
    over 99 pixels (a whole tile of pixels and a tail), and the gradient of
    an NCHW enc comes back NCHW; opcheck holds the fake to that layout."""
    cl = torch.channels_last
    x, xt, pre, e = _lstu_inputs((2, 3, 9, 11), dtype=dtype, device=device)
    args = (x.contiguous(memory_format=cl), xt, pre.contiguous(memory_format=cl), e)
    tol = TOL[dtype]
    for activation in ("tanh", "relu"):
        got = hrops.lstu_gates(*args, activation, impl=impl)
        want = ref.lstu_gates(x, xt, pre, e, activation)
        for g, w in zip(got, want):
            assert g.is_contiguous(memory_format=cl)
            torch.testing.assert_close(g, w, **tol)
    grads = [torch.randn_like(x) for _ in range(2)]
    got = torch.ops.hrops._lstu_gates_backward(*grads, *args, 0, impl)
    leaves = [t.detach().requires_grad_() for t in (x, xt, pre, e)]
    torch.autograd.backward(ref.lstu_gates(*leaves, "tanh"), grads)
    for name, g, leaf in zip(("x_up", "x_tilde", "pre_gates", "enc"), got, leaves):
        torch.testing.assert_close(g, leaf.grad, **tol, msg=name)
    assert got[3].is_contiguous() and got[1].is_contiguous(memory_format=cl)
    if dtype == torch.float64:
        torch.library.opcheck(torch.ops.hrops._lstu_gates_backward.default,
                              (*grads, *args, 1, impl))
        small = _lstu_inputs((1, 2, 3, 5), dtype=dtype, device=device)
        small = [t.contiguous(memory_format=cl) if i in (0, 2) else t for i, t in enumerate(small)]
        assert torch.autograd.gradcheck(lambda *t: hrops.lstu_gates(*t, "tanh", impl=impl),
                                        [t.requires_grad_() for t in small])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # the Triton interpreter (numpy)
@pytest.mark.parametrize("impl,device", IMPLS)
def test_extreme_preactivations(impl, device):
    """Saturated gates stay finite and exact at the limits."""
    x, xt, pre, e = _lstu_inputs(device=device, scale=200.0)
    x, xt, e = 50 * x, 50 * xt, 50 * e
    for g, w in zip(_run_all(impl, (x, xt, pre, e)), _run_all("ref", (x, xt, pre, e))):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_lstu_relu_keeps_nan_and_selects_its_gradient(impl, device):
    """relu as torch's: a NaN cell passes to h; where c <= 0 an inf or NaN
    upstream gradient adds nothing to c's (threshold_backward selects)."""
    x, xt, pre, e = (t.requires_grad_() for t in _lstu_inputs(device=device))
    with torch.no_grad():
        e[0, 1, 2, 3] = float("nan")
    grad_h = torch.randn_like(x)
    h, c = hrops.lstu_gates(x, xt, pre, e, "relu", impl="ref")
    with torch.no_grad():
        grad_h[c <= 0] = float("inf")
    for out in (h, c):
        assert out[0, 1, 2, 3].isnan()
    want = torch.autograd.grad(h, (x, xt, pre, e), grad_h)
    h, c = hrops.lstu_gates(x, xt, pre, e, "relu", impl=impl)
    assert torch.equal(h.isnan(), c.isnan())
    got = torch.autograd.grad(h, (x, xt, pre, e), grad_h)
    for g, w in zip(got, want):  # NaN against inf is an order of products, not checked
        finite = w.isfinite()
        assert torch.equal(g.isfinite(), finite)
        torch.testing.assert_close(g[finite], w[finite], **TOL[torch.float32])


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 5), (1, 1, 1, 1)])
def test_empty_and_tiny(impl, device, shape):
    inputs = [t.requires_grad_() for t in _lstu_inputs(shape, device=device)]
    got = _run_all(impl, inputs)
    for g, w in zip(got, _run_all("ref", inputs)):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, **TOL[torch.float32])
    sum(o.sum() for o in got).backward()
    assert all(t.grad is not None and t.grad.shape == t.shape for t in inputs)


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gradcheck(impl, device, activation):
    x, xt, pre, e = (t.requires_grad_() for t in _lstu_inputs((2, 2, 3, 4), torch.float64, device))
    # keep relu away from its kink at c = 0, where finite differences are meaningless
    if activation == "relu":
        with torch.no_grad():
            xt += torch.sign(xt) * 0.5
            e.copy_(xt + 0.1 * torch.randn_like(e))
    assert torch.autograd.gradcheck(
        lambda *a: hrops.lstu_gates(*a, activation, impl=impl), (x, xt, pre, e))
    a, b, c = (t.detach().requires_grad_() for t in _stu_inputs((2, 2, 3, 4), torch.float64, device))
    assert torch.autograd.gradcheck(lambda *t: hrops.stu_reset(*t, impl=impl), (a, b))
    assert torch.autograd.gradcheck(lambda *t: hrops.gru_update(*t, impl=impl), (a, b, c))


@pytest.mark.parametrize("impl,device", IMPLS)
def test_gradients_match_ref(impl, device):
    inputs = [t.requires_grad_() for t in _lstu_inputs((2, 5, 6, 6), device=device)]
    outs = _run_all(impl, inputs)
    grads = [torch.randn_like(o) for o in outs]
    got = torch.autograd.grad(outs, inputs, grads)
    want = torch.autograd.grad(_run_all("ref", inputs), inputs, grads)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl,device", IMPLS)
def test_only_inputs_saved_and_no_double_backward(impl, device):
    x, xt, pre, e = (t.requires_grad_() for t in _lstu_inputs(device=device))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        h, c = hrops.lstu_gates(x, xt, pre, e, impl=impl)
        s = hrops.stu_reset(pre[:, 3:], x, impl=impl)
        u = hrops.gru_update(x, xt, e, impl=impl)
    inputs = {t.untyped_storage().data_ptr() for t in (x, xt, pre, e)}
    assert saved and all(t.untyped_storage().data_ptr() in inputs for t in saved)
    (gx,) = torch.autograd.grad((h.sum() + c.sum()), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gx.sum().backward()


@pytest.mark.parametrize("impl,device", IMPLS)
def test_opcheck(impl, device):
    x, xt, pre, e = (t.requires_grad_() for t in _lstu_inputs(device=device))
    ops = torch.ops.hrops
    torch.library.opcheck(ops.lstu_gates.default, (x, xt, pre, e, 0, impl))
    torch.library.opcheck(ops.lstu_gates.default, (x, xt, pre, e, 1, impl))
    torch.library.opcheck(ops.stu_reset.default, (x, xt, impl))
    torch.library.opcheck(ops.gru_update.default, (x, xt, e, impl))
    empty = [t.detach()[:0] for t in (x, xt, pre, e)]
    torch.library.opcheck(ops.lstu_gates.default, (*empty, 0, impl))
    g = torch.randn_like(x)
    torch.library.opcheck(ops._lstu_gates_backward.default, (g, g, x.detach(), xt.detach(),
                                                            pre.detach(), e.detach(), 0, impl))


@pytest.mark.compile
def test_compile_fullgraph():
    torch._dynamo.reset()

    def cell(x, xt, pre, e):
        h, c = hrops.lstu_gates(x * 1.5, xt, pre, e, "relu")
        return (h + hrops.gru_update(pre[:, :3], c, e) + hrops.stu_reset(pre[:, 3:], h)).sum()

    inputs = [t.requires_grad_() for t in _lstu_inputs()]
    compiled = torch.compile(cell, fullgraph=True, backend="aot_eager", dynamic=False)
    out = compiled(*inputs)
    got = torch.autograd.grad(out, inputs)
    want = torch.autograd.grad(cell(*inputs), inputs)
    torch.testing.assert_close(out, cell(*inputs))
    torch.testing.assert_close(got, want)


def test_bad_input():
    x, xt, pre, e = _lstu_inputs()
    with pytest.raises(ValueError, match="activation must be .tanh. or .relu., got .sigmoid."):
        hrops.lstu_gates(x, xt, pre, e, "sigmoid")
    with pytest.raises(ValueError, match=r"pre_gates must have shape \(N, 2C, H, W\)"):
        hrops.lstu_gates(x, xt, pre[:, :3], e)
    with pytest.raises(ValueError, match="enc must have shape"):
        hrops.lstu_gates(x, xt, pre, e[:, :, :4])
    with pytest.raises(ValueError, match="same dtype"):
        hrops.lstu_gates(x, xt.double(), pre, e)
    with pytest.raises(ValueError, match="4-D tensor"):
        hrops.stu_reset(x[0], xt[0])
    with pytest.raises(ValueError, match="float32, float64"):
        hrops.gru_update(x.int(), xt, e)
    with pytest.raises(ValueError, match="pre_info must have shape"):
        hrops.stu_update(x, xt, e[:1])


@pytest.mark.parametrize("impl,device", [p for p in IMPLS if p.id.startswith("cpu")])
def test_raw_kernel_checks(impl, device):
    x, xt, pre, e = _lstu_inputs()
    with pytest.raises(RuntimeError, match="pre_gates must have shape"):
        torch.ops.hrops_C.lstu_gates(x, xt, pre[:, :3], e, 0)
    with pytest.raises(RuntimeError, match="activation must be 0"):
        torch.ops.hrops_C.lstu_gates(x, xt, pre, e, 7)
