"""region_classes (neighbourhood classes of a label map) against a pixel
loop written from its definition, every kernel against the reference, and
SEAN's SPADE computed over the classes against SEAN's own dense form
(python_models.sean_reference.LoopSPADE; values and float64 gradients)."""
import pytest
import torch

import hrops
from hrops import ref
from python_models.sean_reference import LoopSPADE
from region_cases import blob_labels, onehot, region_impls

GEOMETRIES = [(1, 0), (3, 1), (3, 0), (5, 2), (3, 2)]  # (k, padding)


def _loop_classes(labels, num_regions, k, padding):
    """Every output pixel's tap labels read one by one; classes numbered by
    first appearance in raster order."""
    n, h, w = labels.shape
    ho, wo = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    classes = torch.empty(n, ho, wo, dtype=torch.long)
    per_image = []
    for i in range(n):
        seen = {}
        for y in range(ho):
            for x in range(wo):
                sig = []
                for t in range(k * k):
                    yy, xx = y + t // k - padding, x + t % k - padding
                    inside = 0 <= yy < h and 0 <= xx < w
                    r = int(labels[i, yy, xx]) if inside else -1
                    sig.append(r if 0 <= r < num_regions else -1)
                classes[i, y, x] = seen.setdefault(tuple(sig), len(seen))
        per_image.append(list(seen))
    u = max(len(s) for s in per_image)
    signatures = torch.full((n, u, k * k), -1, dtype=torch.long)
    for i, sigs in enumerate(per_image):
        signatures[i, :len(sigs)] = torch.tensor(sigs, dtype=torch.long).view(-1, k * k)
    return classes, signatures


@pytest.mark.parametrize("k,padding", GEOMETRIES)
def test_ref_matches_pixel_loop(k, padding):
    labels = blob_labels(2, 9, 11, 5, absent=(4,))
    got = ref.region_classes(labels, 5, k, padding)
    want = _loop_classes(labels, 5, k, padding)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("impl,device", region_impls())
@pytest.mark.parametrize("k,padding", GEOMETRIES)
def test_kernels_match_ref(impl, device, k, padding):
    labels = blob_labels(3, 17, 12, 6, absent=(2,))
    labels[1] = 4  # one image of a single region: few classes, rows of -1 padding
    want = ref.region_classes(labels, 6, k, padding)
    got = hrops.region_classes(labels.to(device), 6, k, padding, impl=impl)
    assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])
    taps = torch.ops.hrops_C.region_tap_labels(labels.to(device), 6, k, padding)
    assert torch.equal(taps.cpu(), ref.region.region_tap_labels(labels, 6, k, padding))


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_one_hot_seg_and_empty(impl):
    labels = blob_labels(2, 8, 8, 4)
    want = hrops.region_classes(labels, 4, impl=impl)
    got = hrops.region_classes(onehot(labels, 4), impl=impl)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    for shape in ((0, 5, 5), (2, 0, 5)):
        classes, signatures = hrops.region_classes(torch.zeros(shape, dtype=torch.long), 3,
                                                   impl=impl)
        assert classes.shape == shape and signatures.shape[::2] == (shape[0], 9)


def test_bad_input():
    labels = blob_labels(1, 6, 6, 3)
    with pytest.raises(ValueError, match="num_regions is required"):
        hrops.region_classes(labels)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        hrops.region_classes(labels, 2)
    with pytest.raises(ValueError, match="kernel_size 8"):
        hrops.region_classes(labels, 3, kernel_size=8, padding=0)
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -1"):
        hrops.region_classes(labels, 3, padding=-1)
    with pytest.raises(ValueError, match=r"kernel_size must be an integer in \[1, 255\], got 46341"):
        hrops.region_classes(labels, 3, kernel_size=46341, padding=23170)
    with pytest.raises(ValueError, match=r"\(N, H, W\) labels"):
        hrops.region_classes(labels[0], 3)


def test_opcheck():
    labels = blob_labels(2, 7, 9, 4)
    torch.library.opcheck(torch.ops.hrops.region_classes.default, (labels, 4, 3, 1, "cpu"))


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_spade_over_classes_matches_dense_spade(impl, monkeypatch):
    monkeypatch.setattr(hrops._backends, "DEFAULT_IMPL", impl)
    torch.manual_seed(0)
    dense = LoopSPADE(norm_nc=5, label_nc=4, hidden=6).double()  # SEAN's form
    spade = hrops.nn.region.SPADE(norm_nc=5, label_nc=4, hidden=6).double()
    spade.load_state_dict(dense.state_dict())
    labels = blob_labels(2, 10, 13, 4)  # unlabelled pixels, borders
    got = spade(labels)
    want = dense(onehot(labels, 4, torch.float64))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    # Gradients to every SPADE weight, through the classes.
    grads = [torch.randn_like(w) for w in want]
    params = list(spade.parameters())
    got_grads = torch.autograd.grad(got, params, grads)
    want_grads = torch.autograd.grad(want, list(dense.parameters()), grads)
    for p, g, w in zip(params, got_grads, want_grads):
        torch.testing.assert_close(g, w, msg=str(p.shape))


def test_spade_compiles_fullgraph():
    torch.manual_seed(0)
    spade = hrops.nn.region.SPADE(norm_nc=3, label_nc=4, hidden=5)
    labels = blob_labels(1, 8, 9, 4)
    compiled = torch.compile(spade, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(labels), spade(labels)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3.7), dict(padding=1.5), dict(kernel_size=True)])
def test_non_integer_sizes_are_rejected(kwargs):
    seg = torch.randint(0, 3, (1, 5, 5))
    with pytest.raises(ValueError, match="must be an integer"):
        hrops.region_classes(seg, num_regions=3, **{"kernel_size": 3, "padding": 1, **kwargs})
