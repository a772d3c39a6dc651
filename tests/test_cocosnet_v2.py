"""python_models.cocosnet_v2 against CoCosNet v2's own matching code
(tests/cocosnet_v2_original.py), its netCorr parameter names, rectangular
maps, gradients and the entry point."""
import pytest
import torch
import torch.nn.functional as F

from cocosnet_v2_original import multi_scale_match
from impls import kernel_impls
from python_models import cocosnet_v2 as cc
from python_models.png import write_png
from python_models.png_read import read_png

KERNELS = kernel_impls(("cpu", "cuda"))


def _unit(n, c, h, w, gen):
    return cc.match_kernel_and_pono_c(torch.randn(n, c, h, w, generator=gen, dtype=torch.float64))


def _levels(size, gen, c=8, n=2):
    sizes = [size // 8, size // 4, size // 2, size]
    return [_unit(n, c, s, s, gen) for s in sizes], [_unit(n, c, s, s, gen) for s in sizes]


def _model(nef=8, semantic_nc=3, impl="ref"):
    torch.manual_seed(0)
    return cc.use_impl(cc.NoVGGHPMCorrespondence(semantic_nc, nef).double().eval(), impl)


def test_match_equals_cocosnet_v2_code():
    """Every level's warp and the finest level's matching indices, float64."""
    gen = torch.Generator().manual_seed(1)
    theta, phi = _levels(32, gen)
    ref_img = torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    model = _model()
    with torch.no_grad():
        ours = model.match(theta, phi, ref_img, torch.Generator().manual_seed(5))
        warps, inds = multi_scale_match(model.patch_match, theta, phi, ref_img, 0.01,
                                        torch.Generator().manual_seed(5))
    assert torch.equal(ours.indices[-1].flatten(2).transpose(1, 2), inds)
    for got, expected in zip(ours.warps, warps):
        torch.testing.assert_close(got, expected)
    assert ours.offsets[-1].shape == (2, 2, 16, 32, 32)


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("shape", [(32, 32), (24, 40)], ids=["square", "rect"])
def test_kernels_match_the_reference_model(impl, device, shape):
    """Full network, float32, with the flow head zeroed so offsets stay
    integers. With fractional GRU offsets, CoCosNet v2's float32 index
    truncation turns a last-bit difference into a neighbouring pixel, and
    the flipped offset feeds the GRU's next update: one flip spreads over a
    level. The ops are checked exactly in tests/test_patchmatch.py and the
    fractional path against CoCosNet v2's code above."""
    model = _model(impl="ref").float()
    head = model.patch_match.refine_net.flow_head.conv2
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    gen = torch.Generator().manual_seed(2)
    h, w = shape
    ref_img = torch.rand(1, 3, h, w, generator=gen) * 2 - 1
    seg = F.one_hot(torch.randint(0, 3, (1, h // 8, w // 8), generator=gen), 3)
    seg = F.interpolate(seg.permute(0, 3, 1, 2).float(), size=(h, w))
    with torch.no_grad():
        expected = model(ref_img, seg, seg.flip(-1), torch.Generator().manual_seed(0))
        cc.use_impl(model.to(device), impl)
        got = model(ref_img.to(device), seg.to(device), seg.flip(-1).to(device),
                    torch.Generator().manual_seed(0))
    for g, e in zip(got.indices, expected.indices):
        assert torch.equal(g.cpu(), e)
    for g, e in zip(got.warps, expected.warps):
        torch.testing.assert_close(g.cpu(), e, atol=1e-5, rtol=1e-4)


def test_half_precision_and_autocast():
    """CoCosNet v2 trains and tests with --amp: the network runs in bf16 /
    fp16 and under autocast (features in bf16, exemplar in fp32)."""
    model = _model(impl="auto").float()
    gen = torch.Generator().manual_seed(5)
    ref_img = torch.rand(1, 3, 32, 32, generator=gen)
    seg = torch.rand(1, 3, 32, 32, generator=gen)
    with torch.no_grad():
        full = model(ref_img, seg, seg.flip(-1), torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(ref_img, seg, seg.flip(-1), torch.Generator().manual_seed(0))
        half = model.to(torch.bfloat16)(ref_img.bfloat16(), seg.bfloat16(), seg.flip(-1).bfloat16(),
                                        torch.Generator().manual_seed(0))
    for out in (mixed, half):
        assert [w.shape for w in out.warps] == [w.shape for w in full.warps]
        assert all(torch.isfinite(w.float()).all() for w in out.warps)
        # The dense level has no index truncation to amplify rounding.
        torch.testing.assert_close(out.warps[0].float(), full.warps[0], atol=0.03, rtol=0.03)


def test_state_dict_has_cocosnet_v2_names():
    sd = cc.NoVGGHPMCorrespondence().state_dict()
    expected = {
        "patch_match.initial_layer.0.weight": (32, 64, 3, 3),
        "patch_match.initial_layer.3.weight": (32, 32, 3, 3),
        "patch_match.refine_net.encoder.convc1.weight": (64, 16, 1, 1),
        "patch_match.refine_net.encoder.convc2.weight": (64, 64, 3, 3),
        "patch_match.refine_net.encoder.convf1.weight": (64, 32, 7, 7),
        "patch_match.refine_net.encoder.convf2.weight": (64, 64, 3, 3),
        "patch_match.refine_net.encoder.conv.weight": (32, 128, 3, 3),
        "patch_match.refine_net.gru.convz1.weight": (32, 96, 1, 5),
        "patch_match.refine_net.gru.convq2.weight": (32, 96, 5, 1),
        "patch_match.refine_net.flow_head.conv1.weight": (64, 32, 3, 3),
        "patch_match.refine_net.flow_head.conv2.weight": (32, 64, 3, 3),
        "theta_0.weight": (32, 128, 1, 1), "phi_3.weight": (32, 32, 1, 1),
        "adaptive_model_seg.layer1.0.weight_orig": (32, 20, 3, 3),
        "adaptive_model_img.layer1.0.weight_orig": (32, 23, 3, 3),
        "adaptive_model_img.layer2.1.model.1.weight": (64, 64, 3, 3),
        "adaptive_model_img.layer2.1.relu.weight": (1,),
        "adaptive_model_seg.head_0.norm_0.mlp_shared.1.weight": (128, 20, 3, 3),
        "adaptive_model_seg.G_middle_1.conv_s.weight_orig": (64, 128, 1, 1),
        "adaptive_model_seg.G_middle_1.norm_s.mlp_gamma.weight": (128, 128, 3, 3),
        "adaptive_model_seg.G_middle_2.conv_1.weight_u": (32,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert "adaptive_model_seg.layer1.0.bias" not in sd  # the norm layer drops conv biases
    model = cc.NoVGGHPMCorrespondence()
    cc.load_correspondence_state_dict(model, {f"module.{k}": v for k, v in sd.items()})
    with pytest.raises(RuntimeError, match="Missing key"):
        cc.load_correspondence_state_dict(model, {k: v for k, v in sd.items() if "theta_0" not in k})


def test_warp_gradients_reach_the_features_not_the_refinement():
    """As in CoCosNet v2, losses reach theta/phi through the warp's softmax;
    the GRU's offsets only become indices."""
    model = _model().float().train()
    gen = torch.Generator().manual_seed(3)
    ref_img = torch.rand(1, 3, 16, 16, generator=gen)
    seg = torch.rand(1, 3, 16, 16, generator=gen)
    out = model(ref_img, seg, seg, torch.Generator().manual_seed(0))
    sum(w.square().mean() for w in out.warps).backward()
    assert model.theta_3.weight.grad.abs().sum() > 0 and model.phi_2.weight.grad.abs().sum() > 0
    assert model.adaptive_model_img.layer1[0].weight_orig.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.patch_match.parameters())


def test_bad_input_is_rejected():
    model = _model().float()
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.zeros(1, 3, 16, 20), torch.zeros(1, 3, 16, 20), torch.zeros(1, 3, 16, 20))
    with pytest.raises(ValueError, match="same H, W"):
        model(x, torch.zeros(1, 3, 24, 16), x)


def test_flow_picture_colours():
    off = torch.zeros(2, 1, 4)
    off[1, 0, 1], off[1, 0, 2], off[0, 0, 3] = 3.0, -3.0, 1.5  # right, left, half-length down
    rgb = cc.flow_to_rgb(off)
    assert torch.equal(rgb[:, 0, 0], torch.ones(3))  # no motion: white
    assert not torch.allclose(rgb[:, 0, 1], rgb[:, 0, 2])  # opposite directions differ
    assert rgb[:, 0, 1].min() == 0  # the longest offset is fully saturated
    assert 0 < rgb[:, 0, 3].min() < 1


def test_entry_point_writes_warp_and_flow(tmp_path):
    gen = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 20, (3, 2, 2), generator=gen).to(torch.uint8)
    labels = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)
    write_png(tmp_path / "seg.png", labels)
    write_png(tmp_path / "ref_seg.png", labels.flip(-1))
    write_png(tmp_path / "ref.png", torch.rand(3, 16, 16, generator=gen))
    cc.main(["--seg", str(tmp_path / "seg.png"), "--exemplar", str(tmp_path / "ref.png"),
             "--exemplar-seg", str(tmp_path / "ref_seg.png"), "--out", str(tmp_path / "w.png"),
             "--flow", str(tmp_path / "f.png")])
    assert read_png(tmp_path / "w.png").shape == (3, 16, 16)
    assert read_png(tmp_path / "f.png").shape == (3, 16, 16)
