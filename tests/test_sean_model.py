"""hrops' SEAN generator and ACE layer against SEAN written the original way
(python_models.sean_reference: loops, 19 Linears, dense convs), from the same
randomly initialised state_dict."""
import pytest
import torch

import hrops
from python_models.sean import SEANGenerator
from python_models.sean_reference import LoopACE, reference_generator
from region_cases import blob_labels, onehot

pytestmark = pytest.mark.filterwarnings("ignore:input.s size at dim=1")  # SEAN's InstanceNorm2d(64)

SMALL = dict(label_nc=5, ngf=4, crop_size=64, style_length=16)


def _randomize(module, seed=0):
    """Random values in every parameter and buffer (noise_var, blending and
    BN statistics included, so every path matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith(("weight_u", "weight_v")):
                t.copy_(torch.nn.functional.normalize(torch.randn(t.shape, generator=gen), dim=0))
            else:
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
    return module


def _seg(n, size, regions, absent=(3,)):
    return onehot(blob_labels(n, size, size, regions, unlabelled=False, absent=absent), regions)


# The two compute the same math in different orders: float32 differed by up
# to 1.4e-5 on values near 0.3 with MKL on an AVX2 CPU.
ACE_TOLERANCES = {torch.float64: 1e-10, torch.float32: 5e-5}


@pytest.mark.parametrize("use_rgb", [True, False])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("dtype", list(ACE_TOLERANCES))
def test_ace_matches_loop_ace(use_rgb, train, dtype):
    tol = ACE_TOLERANCES[dtype]
    original = _randomize(LoopACE(6, 5, use_rgb=use_rgb, style_length=8)).train(train).to(dtype)
    ace = hrops.nn.ACE(6, 5, use_rgb=use_rgb, style_length=8).train(train).to(dtype)
    ace.load_state_dict(original.state_dict())
    assert ace.state_dict().keys() == original.state_dict().keys()
    x = torch.randn(2, 6, 12, 12, dtype=dtype)
    seg = _seg(2, 24, 5).to(dtype)  # ACE resizes it to 12^2
    codes = torch.randn(2, 5, 8, dtype=dtype)
    codes[:, 1] = 0  # present region with a zero code: ReLU(bias)
    torch.manual_seed(3)
    want = original(x, seg, codes)
    torch.manual_seed(3)
    torch.testing.assert_close(ace(x, seg, codes), want, atol=tol, rtol=tol)
    torch.manual_seed(3)  # label map input gives the same
    torch.testing.assert_close(ace(x, hrops.seg_to_labels(seg), codes), want, atol=tol, rtol=tol)


@pytest.mark.parametrize("use_rgb", [True, False])
def test_ace_on_an_empty_batch(use_rgb):
    original = _randomize(LoopACE(6, 5, use_rgb=use_rgb, style_length=8)).eval()
    ace = hrops.nn.ACE(6, 5, use_rgb=use_rgb, style_length=8).eval()
    ace.load_state_dict(original.state_dict())
    x, seg, codes = torch.randn(0, 6, 12, 12), torch.zeros(0, 5, 12, 12), torch.randn(0, 5, 8)
    assert ace(x, seg, codes).shape == original(x, seg, codes).shape == (0, 6, 12, 12)


def test_ace_input_errors():
    """style_codes missing or of the wrong region count, and mixed dtypes: not
    einsum's or BatchNorm's errors."""
    ace = hrops.nn.ACE(6, 5, style_length=8)
    x, seg, codes = torch.randn(2, 6, 12, 12), _seg(2, 12, 5), torch.randn(2, 5, 8)
    cases = [((x, seg), r"style_codes \(2, 5, 8\) are required with use_rgb=True"),
             ((x, seg, codes[:, :4]), r"style_codes must have shape \(B, R, style_length\) = "
                                      r"\(2, 5, 8\), got \(2, 4, 8\)"),
             ((x, seg, codes[0]), "style_codes must be a 3-D tensor"),
             ((x, seg, codes.double()), "x and style_codes must have the same dtype"),
             ((x.double(), seg, codes.double()), "x and the ACE's parameters must have the same"),
             ((x[:, :4], seg, codes), r"x must have shape \(B, 6, H, W\)"),
             ((x[0], seg, codes), "x must be a 4-D tensor")]
    for args, msg in cases:
        with pytest.raises(ValueError, match=msg):
            ace(*args)
    assert hrops.nn.ACE(6, 5, use_rgb=False, style_length=8)(x, seg).shape == x.shape
    for kwargs, name in (({"norm_nc": 0}, "norm_nc"), ({"label_nc": -1}, "label_nc"),
                         ({"style_length": 0}, "style_length")):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= 1"):
            hrops.nn.ACE(**{"norm_nc": 6, "label_nc": 5, **kwargs})


@pytest.fixture(scope="module")
def models():
    original = _randomize(reference_generator(**SMALL)).eval()
    model = SEANGenerator(**SMALL).eval()
    model.load_state_dict(original.state_dict(), strict=True)
    return original, model


def test_state_dict_names_are_seans(models):
    original, model = models
    keys = model.state_dict().keys()
    assert keys == original.state_dict().keys()
    for key in ("Zencoder.model.1.weight", "Zencoder.model.10.weight", "Zencoder.model.14.bias",
                "fc.weight", "head_0.conv_0.weight_orig", "head_0.conv_0.weight_u",
                "up_0.conv_s.weight_v", "head_0.ace_0.fc_mu4.weight", "up_2.ace_s.conv_gamma.weight",
                "up_3.ace_0.Spade.mlp_shared.0.weight", "up_3.ace_0.Spade.param_free_norm.running_var",
                "head_0.ace_1.blending_gamma", "up_1.ace_0.noise_var", "conv_img.weight"):
        assert key in keys, key
    assert not any("fc_mu" in k for k in keys if k.startswith("up_3."))


def test_generator_matches_original(models):
    original, model = models
    seg = _seg(2, 64, 5)
    style = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(7)
        want = original(seg, style)
        torch.manual_seed(7)
        got = model(seg, style)
    assert got.shape == (2, 3, 64, 64)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_style_swap(models):
    _, model = models
    seg, donor_seg = _seg(1, 64, 5), _seg(1, 64, 5, absent=())
    style, donor = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        codes = model.encode(style, seg)
        swapped = codes.clone()
        swapped[:, 2] = model.encode(donor, donor_seg)[:, 2]
        torch.manual_seed(1)
        want = model.decode(seg, swapped)
        torch.manual_seed(1)
        got = model.swap_region_style(seg, style, seg, donor, donor_seg, [2])
        torch.manual_seed(1)
        plain = model.decode(seg, codes)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)


def test_generator_takes_a_label_map_or_a_one_hot_seg(models):
    """The docstring's two seg forms: SEAN's one-hot (B, R, H, W) and an int64
    label map (B, H, W), -1 for no region, give the same images, in forward,
    encode and swap_region_style; the style encoder pools by label_nc."""
    _, model = models
    labels = blob_labels(2, 64, 64, 5, absent=(3,))
    seg = onehot(labels, 5)
    style, donor = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(style, labels), model.encode(style, seg))
        for run in (lambda s: model(s, style),
                    lambda s: model.swap_region_style(s, style, s, donor, s, [1, 4])):
            torch.manual_seed(2)
            want = run(seg)
            torch.manual_seed(2)
            torch.testing.assert_close(run(labels), want)
    assert want.shape == (2, 3, 64, 64)
