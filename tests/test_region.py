"""region_avg_pool / region_broadcast: the reference against SEAN's loops and
scatter_reduce, every kernel against the reference, segmentation forms,
edge cases, errors, autograd, opcheck, compile."""
import numpy as np
import pytest
import torch

import hrops
from hrops import ref
from region_cases import TOL, blob_labels, layouts, onehot, region_impls

DTYPES = list(TOL)


def sean_loop_pool(codes, segmap):
    """Zencoder.forward's pooling loop (ZPdesu/SEAN,
    models/networks/architecture.py), CPU-safe."""
    b, s = segmap.shape[:2]
    c = codes.shape[1]
    out = torch.zeros(b, s, c, dtype=codes.dtype)
    for i in range(b):
        for j in range(s):
            mask = segmap.bool()[i, j]
            if torch.sum(mask) > 0:
                out[i, j] = codes[i].masked_select(mask).reshape(c, -1).mean(1)
    return out


def sean_loop_broadcast(codes, segmap):
    """ACE.forward's masked_scatter_ loop (ZPdesu/SEAN,
    models/networks/normalization.py) without the fc_mu."""
    b, s, c = codes.shape
    out = torch.zeros(b, c, *segmap.shape[2:], dtype=codes.dtype)
    for i in range(b):
        for j in range(s):
            mask = segmap.bool()[i, j]
            area = int(mask.sum())
            if area > 0:
                out[i].masked_scatter_(mask, codes[i, j].reshape(c, 1).expand(c, area))
    return out


def scatter_mean(feat, labels, num_regions):
    """Outside oracle: torch's scatter_reduce 'mean' over label + 1 (slot 0
    collects the unlabelled pixels and is dropped; empty slots stay 0)."""
    n, c = feat.shape[:2]
    index = (labels.flatten(1) + 1)[:, :, None].expand(n, -1, c)
    out = torch.zeros(n, num_regions + 1, c, dtype=feat.dtype)
    out.scatter_reduce_(1, index, feat.flatten(2).transpose(1, 2), "mean", include_self=False)
    return out[:, 1:]


# --- the reference against SEAN's loops and scatter_reduce ----------------------------------------

@pytest.mark.parametrize("n,r,c,h,w", [(2, 5, 3, 6, 7), (1, 1, 2, 4, 4), (2, 19, 4, 9, 8)])
def test_ref_matches_sean_loops_and_scatter_reduce(n, r, c, h, w):
    labels = blob_labels(n, h, w, r, absent=(r - 1,) if r > 1 else ())
    feat = torch.randn(n, c, h, w, dtype=torch.float64)
    segmap = onehot(labels, r, torch.float64)
    pooled = ref.region_avg_pool(feat, labels, r)
    torch.testing.assert_close(pooled, sean_loop_pool(feat, segmap))
    torch.testing.assert_close(pooled, scatter_mean(feat, labels, r))
    codes = torch.randn(n, r, c, dtype=torch.float64)
    torch.testing.assert_close(ref.region_broadcast(codes, labels),
                               sean_loop_broadcast(codes, segmap))


# --- kernels against the reference ---------------------------------------------------------------

@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("n,r,c,h,w", [(2, 19, 5, 16, 12), (1, 3, 1, 1, 1), (3, 4, 17, 7, 33),
                                       (2, 31, 3, 9, 11), (1, 32, 3, 9, 11)])
def test_pool_and_broadcast_match_ref(impl, device, n, r, c, h, w):
    """Values in every dtype and layout, and float32 gradients: R = 31 and 32
    are the last label count the CPU's float fill looks up in registers and
    the first it fills by runs; 7 x 33 and 9 x 11 leave pixel tails."""
    labels = blob_labels(n, h, w, r, absent=(1,) if r > 2 else ())
    for dtype in DTYPES:
        feat = torch.randn(n, c, h, w, dtype=torch.float64)
        want = ref.region_avg_pool(feat, labels, r).to(dtype)
        for layout, x in layouts(feat.to(dtype)).items():
            got = hrops.region_avg_pool(x.to(device), labels.to(device), r, impl=impl)
            torch.testing.assert_close(got.cpu(), want, **TOL[dtype], msg=f"{dtype} {layout}")
        codes = torch.randn(n, r, c, dtype=torch.float64)
        want = ref.region_broadcast(codes, labels).to(dtype)
        strided = torch.randn(n, r, 2 * c, dtype=dtype)[:, :, ::2]
        strided.copy_(codes.to(dtype))
        for x in (codes.to(dtype), strided):
            got = hrops.region_broadcast(x.to(device), labels.to(device), impl=impl)
            torch.testing.assert_close(got.cpu(), want, **TOL[dtype], msg=str(dtype))
    feat = torch.randn(n, c, h, w, requires_grad=True)
    grad = torch.randn(n, r, c)
    want, = torch.autograd.grad(ref.region_avg_pool(feat, labels, r), feat, grad)
    pooled = hrops.region_avg_pool(feat.to(device), labels.to(device), r, impl=impl)
    got, = torch.autograd.grad(pooled, feat, grad.to(device))
    torch.testing.assert_close(got.cpu(), want, **TOL[torch.float32])


@pytest.mark.parametrize("impl,device", region_impls())
def test_absent_regions_are_exactly_zero_and_single_region(impl, device):
    labels = blob_labels(2, 8, 8, 6, absent=(0, 3))
    feat = torch.randn(2, 4, 8, 8).to(device)
    pooled = hrops.region_avg_pool(feat, labels.to(device), 6, impl=impl).cpu()
    assert (pooled[:, [0, 3]] == 0).all()
    assert (pooled[:, [1, 2, 4, 5]] != 0).any()
    one = torch.zeros(2, 8, 8, dtype=torch.long, device=device)  # every pixel in region 0
    torch.testing.assert_close(hrops.region_avg_pool(feat, one, 1, impl=impl),
                               feat.mean((2, 3))[:, None])
    codes = torch.randn(2, 1, 4, device=device)
    torch.testing.assert_close(hrops.region_broadcast(codes, one, impl=impl),
                               codes[:, 0, :, None, None].expand(2, 4, 8, 8))
    nothing = torch.full((2, 8, 8), -1, device=device)
    assert (hrops.region_broadcast(torch.randn(2, 3, 4, device=device), nothing, impl=impl) == 0).all()


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_onehot_seg_follows_sean_math(impl):
    """A one-hot pixel in no region is unlabelled; in several regions it
    counts in each for pooling and takes the last region's code when
    broadcasting, as SEAN's loops do."""
    labels = blob_labels(2, 6, 7, 4)
    seg = onehot(labels, 4)
    seg[0, :, 0, 0] = 0          # no region
    seg[0, 1, 2, 3] = 1          # several regions
    seg[1, 2, 4, 4] = seg[1, 0, 4, 4] = 1
    seg[1, 3, 1, :] = 1          # a whole overlapping row
    feat = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(hrops.region_avg_pool(feat, seg.double(), impl=impl),
                               sean_loop_pool(feat, seg))
    codes = torch.randn(2, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(hrops.region_broadcast(codes, seg.double(), impl=impl),
                               sean_loop_broadcast(codes, seg))
    clean = onehot(labels, 4, torch.float64)  # no overlaps: the kernel path
    torch.testing.assert_close(hrops.region_avg_pool(feat, clean, impl=impl),
                               sean_loop_pool(feat, clean))
    assert torch.equal(hrops.seg_to_labels(clean), labels)


@pytest.mark.parametrize("impl,device", [pytest.param("ref", "cpu", id="ref")] + region_impls())
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_values_stay_in_their_region(impl, device, bad):
    """A NaN or inf pixel makes only its own region's mean non-finite (as
    scatter_reduce and SEAN's masked_select loop do), a non-finite code only
    its own region's pixels; the gradients keep to the regions likewise."""
    labels = blob_labels(2, 6, 7, 4)  # with unlabelled pixels
    feat = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    row, col = (labels[0] == 1).nonzero()[0]
    feat[0, 1, row, col] = bad
    where = torch.zeros(2, 4, 3, dtype=torch.bool)
    where[0, 1, 1] = True  # image 0, region 1, channel 1
    want = scatter_mean(feat, labels, 4)
    assert torch.equal(~want.isfinite(), where)
    leaf = feat.to(device).requires_grad_()
    got = hrops.region_avg_pool(leaf, labels.to(device), 4, impl=impl)
    torch.testing.assert_close(got.cpu(), want, equal_nan=True)
    grad = torch.randn(2, 4, 3, dtype=torch.float64)
    grad[where] = bad
    got_grad, = torch.autograd.grad(got, leaf, grad.to(device))
    pixels = torch.zeros(2, 3, 6, 7, dtype=torch.bool)
    pixels[0, 1] = labels[0] == 1
    assert torch.equal(~got_grad.cpu().isfinite(), pixels)

    seg = onehot(labels, 4, torch.float64)  # overlapping one-hot: SEAN's masked means
    seg[1, 2, 0, :] = 1
    got = hrops.region_avg_pool(feat.to(device), seg.to(device), impl=impl)
    torch.testing.assert_close(got.cpu(), sean_loop_pool(feat, seg), equal_nan=True)
    assert torch.equal(~got.cpu().isfinite(), where)

    codes = torch.randn(2, 4, 3, dtype=torch.float64)
    codes[where] = bad
    leaf = codes.to(device).requires_grad_()
    got = hrops.region_broadcast(leaf, labels.to(device), impl=impl)
    want = sean_loop_broadcast(codes, onehot(labels, 4, torch.float64))
    torch.testing.assert_close(got.cpu(), want, equal_nan=True)
    assert torch.equal(~got.cpu().isfinite(), pixels)
    grad = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    grad[pixels] = bad
    got_grad, = torch.autograd.grad(got, leaf, grad.to(device))
    assert torch.equal(~got_grad.cpu().isfinite(), where)


def test_resize_seg_matches_interpolate_for_labels_and_onehot():
    labels = blob_labels(2, 16, 16, 5)
    small = hrops.resize_seg(labels, (8, 8))
    assert small.dtype == labels.dtype
    assert torch.equal(small, labels[:, ::2, ::2])  # 256 -> 128 in SEAN picks every second pixel
    seg = onehot(labels, 5)
    assert torch.equal(hrops.resize_seg(seg, (5, 7)),
                       torch.nn.functional.interpolate(seg, size=(5, 7), mode="nearest"))
    assert torch.equal(hrops.seg_to_labels(hrops.resize_seg(seg, (5, 7))),
                       hrops.resize_seg(labels, (5, 7)))


def test_resize_seg_resizes_4d_integer_and_bool_maps_channel_by_channel():
    """An integer or bool one-hot map, or an (N, 1, H, W) label map, keeps its
    layout (it used to be indexed as a label map into (N, h, w, W))."""
    labels = blob_labels(2, 16, 16, 5)
    seg = onehot(labels, 5)
    want = hrops.resize_seg(seg, (5, 7))
    for dtype in (torch.long, torch.uint8, torch.bool):
        got = hrops.resize_seg(seg.to(dtype), (5, 7))
        assert got.dtype == dtype and torch.equal(got, want.to(dtype))
    assert torch.equal(hrops.resize_seg(labels[:, None], (5, 7)),
                       hrops.resize_seg(labels, (5, 7))[:, None])
    for bad in (labels[0, 0], labels[:, None, None]):
        with pytest.raises(ValueError, match=r"integer or bool seg must have shape \(N, H, W\)"):
            hrops.resize_seg(bad, (5, 7))


@pytest.mark.parametrize("size,expected", [
    ((np.int64(5), torch.tensor(7)), (5, 7)),
    (6, (6, 6)),
    ((5.0, 7), r"size must be an integer or a pair \(h, w\) of integers >= 1, got \(5.0, 7\)"),
    ((10.7, 7), r"size must be .*, got \(10.7, 7\)"),
    ((True, 7), r"size must be .*, got \(True, 7\)"),
    ((10,), r"size must be .*, got \(10,\)"),
    ((0, 7), r"size must be .* >= 1, got \(0, 7\)"),
])
def test_resize_seg_size(size, expected):
    """NumPy and 0-d tensor integers count as ints, one integer as a square;
    anything else is a ValueError naming size."""
    labels = torch.randint(0, 4, (2, 9, 11))
    for seg in (labels, onehot(labels, 4)):
        if isinstance(expected, tuple):
            assert torch.equal(hrops.resize_seg(seg, size), hrops.resize_seg(seg, expected))
        else:
            with pytest.raises(ValueError, match=expected):
                hrops.resize_seg(seg, size)


@pytest.mark.parametrize("impl,device", region_impls())
def test_empty_tensors(impl, device):
    for n, c, h, w in ((0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 5)):
        labels = torch.zeros(n, h, w, dtype=torch.long, device=device)
        feat = torch.randn(n, c, h, w, device=device)
        assert hrops.region_avg_pool(feat, labels, 3, impl=impl).shape == (n, 3, c)
        assert (hrops.region_avg_pool(feat, labels, 3, impl=impl) == 0).all()
        assert hrops.region_broadcast(torch.randn(n, 3, c, device=device), labels,
                                      impl=impl).shape == (n, c, h, w)


@pytest.mark.parametrize("impl,device", [pytest.param("ref", "cpu", id="ref")] + region_impls())
def test_no_regions(impl, device):
    """num_regions = 0 (every pixel unlabelled, or a one-hot seg without
    channels): no codes to pool or broadcast, a zero map, a bias-only conv."""
    feat = torch.randn(2, 3, 4, 5, device=device, requires_grad=True)
    labels = torch.full((2, 4, 5), -1, device=device)
    for seg in (labels, torch.zeros(2, 0, 4, 5, device=device)):
        pooled = hrops.region_avg_pool(feat, seg, 0 if seg.dim() == 3 else None, impl=impl)
        assert pooled.shape == (2, 0, 3)
        pooled.sum().backward()
        assert torch.equal(feat.grad, torch.zeros_like(feat))
        codes = torch.randn(2, 0, 3, device=device)
        assert torch.equal(hrops.region_broadcast(codes, seg, impl=impl), torch.zeros_like(feat))
        weight, bias = torch.randn(4, 3, 3, 3, device=device), torch.randn(4, device=device)
        conv = hrops.region_conv2d(codes, seg, weight, bias, impl=impl)
        assert torch.equal(conv, bias.view(1, 4, 1, 1).expand(2, 4, 4, 5))


def test_resize_seg_keeps_labels_past_2_24():
    labels = torch.randint(2 ** 24, 2 ** 40, (2, 7, 9))
    for size in ((3, 4), (14, 27), (5, 9)):
        want = torch.nn.functional.interpolate(labels[:, None].double(), size=size,
                                               mode="nearest")[:, 0].long()
        assert torch.equal(hrops.resize_seg(labels, size), want)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_bad_inputs_raise_clear_errors(impl):
    feat, labels = torch.randn(2, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.long)
    for bad, what in ((labels + 3, r"\[0, 3\)"), (labels - 2, r"\[0, 3\)")):
        with pytest.raises(ValueError, match=what):
            hrops.region_avg_pool(feat, bad, 3, impl=impl)
        with pytest.raises(ValueError, match=what):
            hrops.region_broadcast(torch.randn(2, 3, 3), bad, impl=impl)
    with pytest.raises(ValueError, match="match feat in N"):
        hrops.region_avg_pool(feat, labels[:1], 3, impl=impl)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        hrops.region_avg_pool(feat, labels[:, :3], 3, impl=impl)
    with pytest.raises(ValueError, match="num_regions is required"):
        hrops.region_avg_pool(feat, labels, impl=impl)
    with pytest.raises(ValueError, match="codes must be a 3-D"):
        hrops.region_broadcast(torch.randn(2, 3), labels, impl=impl)
    with pytest.raises(ValueError, match="integer tensor"):
        hrops.region_broadcast(torch.randn(2, 3, 3), labels.bool(), impl=impl)
    for seg in (labels.to("meta"), onehot(labels, 3).to("meta")):  # a device the kernels miss
        with pytest.raises(ValueError, match=r"seg must be on the same device as feat \(cpu\)"):
            hrops.region_avg_pool(feat, seg, 3, impl=impl)
        with pytest.raises(ValueError, match=r"seg must be on the same device as codes \(cpu\)"):
            hrops.region_broadcast(torch.randn(2, 3, 3), seg, impl=impl)
        with pytest.raises(ValueError, match=r"seg must be on the same device as codes \(cpu\)"):
            hrops.region_conv2d(torch.randn(2, 3, 3), seg, torch.randn(4, 3, 3, 3), impl=impl)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_num_regions_must_be_an_integer(impl):
    """A float, bool or negative count is refused up front by every op and
    impl (the ref used to take 3.7 as 4 regions, the kernels' schema to
    refuse it); a NumPy integer is an int."""
    feat, labels = torch.randn(2, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.long)
    torch.testing.assert_close(hrops.region_avg_pool(feat, labels, np.int64(3), impl=impl),
                               hrops.region_avg_pool(feat, labels, 3, impl=impl), atol=0, rtol=0)
    for bad in (3.7, 3.0, True, -1):
        msg = f"num_regions must be an integer >= 0, got {bad!r}"
        with pytest.raises(ValueError, match=msg):
            hrops.region_avg_pool(feat, labels, bad, impl=impl)
        with pytest.raises(ValueError, match=msg):
            hrops.region_avg_pool(feat, onehot(labels, 3), bad, impl=impl)
        with pytest.raises(ValueError, match=msg):
            hrops.region_classes(labels, bad, impl=impl)
        with pytest.raises(ValueError, match=msg):
            hrops.nn.RegionAvgPool(bad)


def test_raw_kernels_reject_out_of_range_labels():
    """The compiled kernels check by themselves (never index out of bounds)."""
    labels = torch.full((1, 2, 2), 7)
    with pytest.raises(RuntimeError, match="labels must be region ids in"):
        torch.ops.hrops_C.region_avg_pool(torch.randn(1, 2, 2, 2), labels, 3)
    with pytest.raises(RuntimeError, match="labels must be region ids in"):
        torch.ops.hrops_C.region_broadcast(torch.randn(1, 3, 2), labels)


# --- autograd --------------------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_gradcheck_fp64(impl):
    labels = blob_labels(2, 5, 6, 4, absent=(2,))
    feat = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    codes = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    pool = lambda f: hrops.region_avg_pool(f, labels, 4, impl=impl)  # noqa: E731
    bcast = lambda c: hrops.region_broadcast(c, labels, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(pool, (feat,))
    assert torch.autograd.gradcheck(bcast, (codes,))
    assert torch.autograd.gradgradcheck(pool, (feat,))
    assert torch.autograd.gradgradcheck(bcast, (codes,))


def test_pool_backward_saves_only_the_labels():
    labels = blob_labels(1, 8, 8, 3)
    feat = torch.randn(1, 16, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        hrops.region_avg_pool(feat, labels, 3, impl="cpu")
    assert [t.dtype for t in saved] == [torch.long]


def test_kernels_are_deterministic_across_thread_counts():
    labels = blob_labels(2, 32, 32, 19)
    feat = torch.randn(2, 64, 32, 32)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(hrops.region_avg_pool(feat, labels, 19, impl="cpu"))
        assert torch.equal(results[0], results[1])
    finally:
        torch.set_num_threads(before)


def test_opcheck():
    labels = blob_labels(2, 5, 6, 4)
    feat = torch.randn(2, 3, 5, 6, requires_grad=True)
    codes = torch.randn(2, 4, 3, requires_grad=True)
    grad_codes = torch.randn(2, 4, 3, requires_grad=True)
    grad_feat = torch.randn(2, 3, 5, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.hrops.region_avg_pool.default, (feat, labels, 4, "cpu"))
    torch.library.opcheck(torch.ops.hrops._region_avg_pool_backward.default,
                          (grad_codes, labels, "cpu"))
    torch.library.opcheck(torch.ops.hrops.region_broadcast.default, (codes, labels, "cpu"))
    torch.library.opcheck(torch.ops.hrops._region_broadcast_backward.default,
                          (grad_feat, labels, 4, "cpu"))


def test_compile_fullgraph():
    labels = blob_labels(2, 6, 6, 4)
    feat = torch.randn(2, 3, 6, 6, requires_grad=True)

    def f(x):
        codes = hrops.region_avg_pool(x, labels, 4, impl="cpu")
        return hrops.region_broadcast(codes * 2, labels, impl="cpu")

    got = torch.compile(f, fullgraph=True, backend="aot_eager")(feat)
    torch.testing.assert_close(got, f(feat))
    got.sum().backward()
    assert feat.grad is not None


def test_nn_layers():
    labels = blob_labels(2, 6, 6, 4)
    feat = torch.randn(2, 3, 6, 6)
    pool, bcast = hrops.nn.RegionAvgPool(4), hrops.nn.RegionBroadcast()
    codes = pool(feat, labels)
    torch.testing.assert_close(codes, ref.region_avg_pool(feat, labels, 4))
    torch.testing.assert_close(bcast(codes, labels), ref.region_broadcast(codes, labels))
    assert "num_regions=4" in repr(pool)
    with pytest.raises(ValueError, match="num_regions must be an integer >= 0, got -1"):
        hrops.nn.RegionAvgPool(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_pool_with_more_region_chunks_than_a_grid_row():
    """More than 65535 chunks of 16 regions: the CUDA sum kernel strides its
    chunks over gridDim.y instead of launching past the limit."""
    num_regions = 16 * 65535 + 40
    labels = torch.randint(0, num_regions, (1, 64, 64))
    labels[0, 0, :3] = torch.tensor([0, num_regions - 17, num_regions - 1])
    feat = torch.randn(1, 2, 64, 64)
    got = hrops.region_avg_pool(feat.cuda(), labels.cuda(), num_regions, impl="cuda")
    torch.testing.assert_close(got.cpu(), ref.region_avg_pool(feat, labels, num_regions))
