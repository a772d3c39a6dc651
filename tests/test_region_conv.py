"""region_conv2d: equal to conv2d of the broadcast map (k = 1, 3, 5, borders,
unlabelled pixels), gradients to codes / weight / bias, errors, opcheck,
compile."""
import pytest
import torch
import torch.nn.functional as F

import hrops
from hrops import ref
from region_cases import TOL, blob_labels, onehot, region_impls

GEOMETRIES = [(1, 0), (3, 1), (3, 0), (5, 2), (3, 2)]  # (k, padding)


def _inputs(n=2, r=5, d=6, o=7, h=9, w=11, k=3, dtype=torch.float64, bias=True):
    labels = blob_labels(n, h, w, r, absent=(r - 1,))
    codes = torch.randn(n, r, d, dtype=dtype)
    weight = torch.randn(o, d, k, k, dtype=dtype)
    b = torch.randn(o, dtype=dtype) if bias else None
    return codes, labels, weight, b


def test_ref_is_conv_of_sean_broadcast():
    codes, labels, weight, bias = _inputs()
    dense = F.conv2d(ref.region_broadcast(codes, labels), weight, bias, padding=1)
    torch.testing.assert_close(ref.region_conv2d(codes, labels, weight, bias, 1), dense)


@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("k,padding", GEOMETRIES)
def test_matches_dense_conv_of_broadcast(impl, device, k, padding):
    for bias in (True, False):
        codes, labels, weight, b = _inputs(k=k, bias=bias)
        want = ref.region_conv2d(codes, labels, weight, b, padding)
        to = lambda t: None if t is None else t.to(device)  # noqa: E731
        got = hrops.region_conv2d(to(codes), to(labels), to(weight), to(b), padding, impl=impl)
        torch.testing.assert_close(got.cpu(), want)


@pytest.mark.parametrize("impl,device", region_impls())
def test_dtypes_and_onehot_seg(impl, device):
    codes, labels, weight, bias = _inputs(h=16, w=13)
    weight = weight / (weight[0].numel() ** 0.5)  # outputs of order 1
    want = ref.region_conv2d(codes, labels, weight, bias, 1)
    # Half types: the projection GEMM rounds to the storage type before the taps are summed.
    tol = {**TOL, torch.float16: dict(atol=1e-2, rtol=1e-2),
           torch.bfloat16: dict(atol=6e-2, rtol=6e-2)}
    for dtype in TOL:
        got = hrops.region_conv2d(codes.to(device, dtype), labels.to(device),
                                  weight.to(device, dtype), bias.to(device, dtype), impl=impl)
        torch.testing.assert_close(got.cpu(), want.to(dtype), **tol[dtype], msg=str(dtype))
    seg = onehot(labels, codes.shape[1], torch.float64).to(device)
    got = hrops.region_conv2d(codes.to(device), seg, weight.to(device), bias.to(device), impl=impl)
    torch.testing.assert_close(got.cpu(), want)


@pytest.mark.parametrize("impl,device", region_impls())
def test_unlabelled_everywhere_gives_bias(impl, device):
    codes, labels, weight, bias = _inputs()
    nothing = torch.full_like(labels, -1)
    got = hrops.region_conv2d(codes.to(device), nothing.to(device), weight.to(device),
                              bias.to(device), impl=impl).cpu()
    torch.testing.assert_close(got, bias[None, :, None, None].expand_as(got))


@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("k,padding", [(1, 0), (3, 1), (3, 0)])
def test_gradients_match_dense(impl, device, k, padding):
    codes, labels, weight, bias = _inputs(k=k)
    grad = torch.randn_like(ref.region_conv2d(codes, labels, weight, bias, padding))
    leaves = [t.detach().requires_grad_() for t in (codes, weight, bias)]
    ref.region_conv2d(leaves[0], labels, leaves[1], leaves[2], padding).backward(grad)
    want = [t.grad for t in leaves]
    leaves = [t.detach().to(device).requires_grad_() for t in (codes, weight, bias)]
    hrops.region_conv2d(leaves[0], labels.to(device), leaves[1], leaves[2], padding,
                        impl=impl).backward(grad.to(device))
    for name, got, w in zip(("codes", "weight", "bias"), leaves, want):
        torch.testing.assert_close(got.grad.cpu(), w, msg=name)


@pytest.mark.parametrize("impl,device", [pytest.param("ref", "cpu", id="ref")] + region_impls())
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_code_reaches_only_outputs_whose_taps_lie_on_its_region(impl, device, bad):
    codes, labels, weight, bias = _inputs()
    codes[0, 2, 1] = bad
    got = hrops.region_conv2d(codes.to(device), labels.to(device), weight.to(device),
                              bias.to(device), impl=impl).cpu()
    on_region = (labels[:1, None] == 2).double()
    touched = F.conv2d(on_region, torch.ones(1, 1, 3, 3, dtype=torch.float64), padding=1) > 0
    assert touched.any() and not touched.all()
    touched = torch.cat((touched, torch.zeros_like(touched))).expand_as(got)  # image 0 only
    assert torch.equal(~got.isfinite(), touched)
    finite = hrops.region_conv2d(codes.nan_to_num(0, 0, 0), labels, weight, bias, impl="ref")
    torch.testing.assert_close(got[~touched], finite[~touched])


def test_gradcheck_fp64():
    codes, labels, weight, bias = _inputs(n=1, r=3, d=2, o=3, h=5, w=6)
    args = [t.requires_grad_() for t in (codes, weight, bias)]
    f = lambda c, wt, b: hrops.region_conv2d(c, labels, wt, b, 1, impl="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_deterministic_across_thread_counts():
    codes, labels, weight, bias = _inputs(h=32, w=32, dtype=torch.float32)
    grad = torch.randn(2, 7, 32, 32)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            c = codes.clone().requires_grad_()
            out = hrops.region_conv2d(c, labels, weight, bias, impl="cpu")
            out.backward(grad)
            results.append((out, c.grad))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_bad_inputs(impl):
    codes, labels, weight, bias = _inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match="weight must have shape"):
        hrops.region_conv2d(codes, labels, weight[:, :3], bias, impl=impl)
    with pytest.raises(ValueError, match="bias must have shape"):
        hrops.region_conv2d(codes, labels, weight, bias[:3], impl=impl)
    with pytest.raises(ValueError, match="padding"):
        hrops.region_conv2d(codes, labels[:, :1, :1], weight, bias, padding=0, impl=impl)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        hrops.region_conv2d(codes, labels + 5, weight, bias, impl=impl)
    with pytest.raises(ValueError, match="same dtype"):
        hrops.region_conv2d(codes.double(), labels, weight, bias, impl=impl)


@pytest.mark.parametrize("impl,device", [pytest.param("ref", "cpu", id="ref")] + region_impls())
def test_empty(impl, device):
    codes, labels, weight, bias = (t.to(device) for t in _inputs(n=0, dtype=torch.float32))
    assert hrops.region_conv2d(codes, labels, weight, bias, impl=impl).shape == (0, 7, 9, 11)
    codes, labels, weight, bias = (t.to(device) for t in _inputs(dtype=torch.float32))
    # no code channels: the bias alone; no output channels: an empty map
    got = hrops.region_conv2d(codes[:, :, :0], labels, weight[:, :0], bias, impl=impl)
    assert torch.equal(got, bias.view(1, -1, 1, 1).expand(2, 7, 9, 11))
    assert hrops.region_conv2d(codes, labels, weight[:0], bias[:0],
                               impl=impl).shape == (2, 0, 9, 11)


def test_opcheck_and_compile():
    codes, labels, weight, bias = _inputs(n=1, r=3, d=4, o=5, h=6, w=7, dtype=torch.float32)
    proj = hrops.region_projection(codes, weight).requires_grad_()
    grad = torch.randn(1, 5, 6, 7)
    torch.library.opcheck(torch.ops.hrops.region_conv_gather.default,
                          (proj, labels, bias.requires_grad_(), 3, 1, "cpu"))
    torch.library.opcheck(torch.ops.hrops._region_conv_gather_backward.default,
                          (grad, labels, 3, 3, 1, "cpu"))
    c = codes.requires_grad_()
    f = lambda c: hrops.region_conv2d(c, labels, weight, bias, impl="cpu")  # noqa: E731
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(c)
    torch.testing.assert_close(got, f(c))
    got.sum().backward()
    assert c.grad is not None
