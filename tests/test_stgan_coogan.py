"""STGAN / CooGAN generators on hrops cells, and CooGAN's patch-wise
high-resolution edit (python_models.coogan): the stitched patch-wise edit is
exactly the local generator applied to all patches at once, batch by batch
or not; bad sizes raise."""
import pytest
import torch
import torch.nn.functional as F

from python_models.coogan import CooGAN, consistency_loss, patches_of, stitch, upsample_crop
from python_models.stgan import STGANGenerator, attribute_difference


@pytest.mark.parametrize("cell", ["stu", "lstu"])
def test_generator_kernels_match_reference(cell):
    torch.manual_seed(0)
    g = STGANGenerator(dim=4, n_attrs=5, cell=cell, impl="ref").eval()
    x, a = torch.randn(2, 3, 64, 64), torch.randint(-1, 2, (2, 5)).float()
    want = g(x, a)
    for m in g.stu:
        m.impl = "cpu"
    got = g(x, a)
    assert got.shape == (2, 3, 64, 64) and got.abs().max() <= 1
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    g.train()
    got.sum().backward()  # eval forward graph still differentiates


def test_generator_parameter_layout():
    with torch.device("meta"):
        stgan = STGANGenerator()  # dim 64, 13 attributes
        coogan = STGANGenerator(cell="lstu")
    assert round(sum(p.numel() for p in stgan.stu.parameters()) / 1e6, 1) == 30.1
    assert round(sum(p.numel() for p in coogan.stu.parameters()) / 1e6, 1) == 18.0
    assert [m.in_dim for m in stgan.stu] == [512, 256, 128, 64]
    assert [m.state_dim for m in coogan.stu] == [1037, 525, 269, 141]
    assert stgan.decoder[1][0].in_channels == 1024 + 512 + 13
    assert stgan.decoder[4][0].in_channels == 128 + 64 + 13


def test_attribute_difference():
    src, dst = torch.tensor([[0, 1, 1]]), torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(attribute_difference(src, dst), torch.tensor([[1.0, 0.0, -1.0]]))
    torch.testing.assert_close(attribute_difference(src, dst, test_int=1.0),
                               torch.tensor([[2.0, 0.0, -2.0]]))


def _coogan():
    torch.manual_seed(0)
    return CooGAN(dim=4, global_dim=4, n_attrs=5, snapshot_size=32, patch=32).eval()


def test_upsample_crop_matches_interpolate():
    snap = torch.randn(2, 3, 12, 10)
    full = F.interpolate(snap, size=(96, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(upsample_crop(snap, (96, 64), 0, 0, 96, 64), full, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(upsample_crop(snap, (96, 64), 32, 16, 32, 40), full[:, :, 32:64, 16:56],
                               atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("batch_patches", [1, 2, 5, 100])
def test_patchwise_edit_equals_whole_image_computation(batch_patches):
    model = _coogan()
    image = torch.rand(2, 3, 64, 96) * 2 - 1
    attr = torch.randint(-1, 2, (2, 5)).float()
    got = model.edit(image, attr, batch_patches=batch_patches)
    with torch.no_grad():
        guide = upsample_crop(model.global_edit(image, attr), (64, 96), 0, 0, 64, 96)
        per_patch = attr.repeat_interleave(6, 0)  # 2 x 3 patches per image
        whole = model.local_edit(patches_of(image, 32), patches_of(guide, 32), per_patch)
    if batch_patches == 1:
        # oneDNN runs batch-1 convolutions with another kernel (1-ulp differences)
        torch.testing.assert_close(got, stitch(whole, 2, 64, 96), atol=1e-6, rtol=0)
    else:
        assert torch.equal(got, stitch(whole, 2, 64, 96))
    in_place = image.clone()
    assert model.edit(in_place, attr, batch_patches=batch_patches, out=in_place) is in_place
    assert torch.equal(in_place, got)


def test_edit_bad_input():
    model = _coogan()
    attr = torch.zeros(1, 5)
    with pytest.raises(ValueError, match="multiples of the patch size 32"):
        model.edit(torch.zeros(1, 3, 50, 64), attr)
    with pytest.raises(ValueError, match=r"attr_diff must have shape \(N, n_attrs\) = \(1, 5\)"):
        model.edit(torch.zeros(1, 3, 64, 64), torch.zeros(1, 13))
    with pytest.raises(ValueError, match="image must have shape"):
        model.edit(torch.zeros(1, 4, 64, 64), attr)
    with pytest.raises(ValueError, match="patch must be a multiple of 32"):
        model.edit(torch.zeros(1, 3, 48, 48), attr, patch=16)
    with pytest.raises(ValueError, match="multiples of 32"):
        model.global_generator(torch.zeros(1, 3, 40, 40), attr)


def test_consistency_loss_trains_both_paths():
    model = _coogan().train()
    image, attr = torch.rand(2, 3, 64, 64) * 2 - 1, torch.ones(2, 5)  # batch 2: BatchNorm at 1x1
    global_out = model.global_edit(image, attr)
    guide = upsample_crop(global_out, (64, 64), 0, 0, 64, 64)
    local = stitch(model.local_edit(patches_of(image, 32), patches_of(guide, 32), attr.repeat_interleave(4, 0)),
                   2, 64, 64)
    loss = consistency_loss(local, global_out)
    loss.backward()
    assert loss > 0
    assert model.local_generator.stu[0].gates.weight.grad.abs().sum() > 0
    assert model.global_generator.stu[0].gates.weight.grad.abs().sum() > 0
    flat = torch.full((1, 3, 64, 64), 0.25)
    assert consistency_loss(flat, torch.full((1, 3, 32, 32), 0.25)) == 0


@pytest.mark.parametrize("cell,activation", [("stu", "tanh"), ("lstu", "tanh"), ("lstu", "relu")])
def test_generator_takes_rectangular_images_and_integer_attributes(cell, activation):
    """H and W need only be multiples of 2^n_layers; attr_diff of any real
    or integer dtype is taken in x's dtype."""
    torch.manual_seed(0)
    g = STGANGenerator(dim=4, n_attrs=5, n_layers=4, cell=cell, activation=activation).eval()
    x, a = torch.randn(2, 3, 32, 48), torch.randint(-1, 2, (2, 5))
    with torch.no_grad():
        out = g(x, a)
        torch.testing.assert_close(g(x, a.double()), out)
    assert out.shape == (2, 3, 32, 48) and out.abs().max() <= 1


def test_edit_with_a_given_patch_size_and_out_tensor():
    """patch= overrides the model's patch size; out= receives the edit."""
    model = _coogan()
    image, attr = torch.rand(1, 3, 64, 128) * 2 - 1, torch.randint(-1, 2, (1, 5)).float()
    with torch.no_grad():
        guide = upsample_crop(model.global_edit(image, attr), (64, 128), 0, 0, 64, 128)
        want = stitch(model.local_edit(patches_of(image, 64), patches_of(guide, 64),
                                       attr.repeat_interleave(2, 0)), 1, 64, 128)
    out = torch.full_like(image, float("nan"))
    assert model.edit(image, attr, patch=64, out=out) is out
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
