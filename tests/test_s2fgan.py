"""python_models.s2fgan: S2FGAN's parameter names and shapes, the decoder on
hrops against the same decoder on the fallback ops, the attribute edits
(edit(x, 0) == x exactly), checkpoint loading and the PNG entry point."""
import pytest
import torch

import s2fgan_original
from python_models import s2fgan
from python_models.png import write_png
from python_models.png_read import read_png


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return s2fgan.S2FGAN().eval()


def test_parameter_names_and_shapes(model):
    # S2FGAN's model.py names (Yan98/S2FGAN model.py): checkpoints load key for key.
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "generator.input.input": (1, 512, 4, 4),
        "generator.conv1.weight": (1, 512, 512, 3, 3),
        "generator.conv1.modulation.weight": (512, 512),
        "generator.activate1.bias": (512,),
        "generator.to_rgb1.conv.weight": (1, 3, 512, 1, 1),
        "generator.to_rgb1.bias": (1, 3, 1, 1),
        "generator.convs.0.conv1.blur.kernel": (4, 4),
        "generator.convs.5.conv2.weight": (1, 64, 64, 3, 3),
        "generator.convs.5.activate2.bias": (64,),
        "generator.to_rgbs.5.upsample.kernel": (4, 4),
        "generator.to_rgbs.5.conv.modulation.bias": (64,),
        "encoder_img.vision.0.weight": (64, 3, 1, 1),
        "encoder_img.vision.1.bias": (64,),
        "encoder_img.model.0.0.conv2.0.kernel": (4, 4),
        "encoder_img.model.0.0.conv2.1.weight": (128, 64, 3, 3),
        "encoder_img.model.0.0.skip.1.weight": (128, 64, 1, 1),
        "encoder_img.linear.0.2.weight": (512, 128 * 2 * 2),
        "encoder_img.linear.5.5.bias": (512,),
        "encoder_img.final.4.weight": (512, 512),
        "encoder_sketch.vision.0.weight": (128, 1, 1, 1),
        "encoder_sketch.linear.4.2.weight": (512, 512),
        "edit.directions": (1, 12, 512),
        "edit.b1.model.0.weight": (64, 13, 3),
        "edit.b1.skip.weight": (64, 13, 1),
        "edit.b4.n.weight": (64, 64, 3),
        "edit.b5.weight": (1, 64, 1),
        "classifier.W": (512, 12),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    assert len(model.generator.convs) == 6 and len(model.generator.to_rgbs) == 6
    assert len(model.encoder_img.model) == 6 and len(model.encoder_sketch.model) == 5


def test_decoder_matches_fallback_decoder(model):
    style = torch.randn(1, 512)
    with torch.no_grad():
        fast = model.generator(style)
        slow = s2fgan.use_impl(model.generator, "ref")(style)
        s2fgan.use_impl(model.generator, None)
    assert fast.shape == (1, 3, 256, 256)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


def test_decoder_loads_original_state_dict_and_matches():
    torch.manual_seed(1)
    original = s2fgan_original.Generator().eval()
    ours = s2fgan.Generator().eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    assert set(ours.state_dict()) == set(original.state_dict())
    style = torch.randn(2, 512)
    with torch.no_grad():
        torch.testing.assert_close(ours(style), original(style), atol=1e-4, rtol=1e-4)


def test_attribute_mapping_identity_at_zero_shift(model):
    x = torch.randn(3, 512)
    with torch.no_grad():
        for p in model.edit.parameters():  # trained-looking values, directions included
            p.normal_()
        assert torch.equal(model.edit(x, torch.zeros(3, 12)), x)
        assert torch.equal(model.edit(x, torch.zeros(3, 12), reg=True), torch.zeros(3, 512))
        a = torch.zeros(3, 12)
        a[:, 0] = 2.0
        assert not torch.allclose(model.edit(x, a), x)


def test_s2f_dis_edit(model):
    x, a = torch.randn(2, 512), torch.randn(2, 12)
    w = model.classifier.W / model.classifier.W.norm(dim=0)
    torch.testing.assert_close(model.classifier.edit(x, a), x + a @ w.t())
    torch.testing.assert_close(model.classifier(x), x @ w)


def test_gram_step():
    block = s2fgan.Modify(13)
    x = torch.randn(2, 13, 512)
    u = block.model(x)
    f = block.w(u)
    f = f / (f.norm(dim=1, keepdim=True) + 1e-8)
    gram = torch.einsum("bcl,bdl->bcd", f, f)  # (B, 64, 64) over the 512 positions
    expected = block.n(torch.einsum("bcd,bdl->bcl", gram, block.h(u))) + block.skip(x)
    torch.testing.assert_close(block(x), expected, atol=1e-4, rtol=1e-4)


def test_load_checkpoint_with_training_parts(model):
    sd = {"module." + k: v.clone() for k, v in model.state_dict().items()}
    sd["module.img_discriminator.final_linear.0.weight"] = torch.zeros(1)
    sd["vgg.blocks.0.0.weight"] = torch.zeros(1)
    other = s2fgan.S2FGAN()
    s2fgan.load_s2fgan_state_dict(other, sd)
    torch.testing.assert_close(other.generator.conv1.weight, model.generator.conv1.weight)
    del sd["module.generator.conv1.weight"]
    with pytest.raises(RuntimeError, match="generator.conv1.weight"):
        s2fgan.load_s2fgan_state_dict(other, sd)


def test_load_a_train_py_checkpoint_prefers_model_ema(model, tmp_path):
    ema = {"module." + k: v.clone() for k, v in model.state_dict().items()}
    raw = {k: torch.zeros_like(v) for k, v in ema.items()}
    path = tmp_path / "010000.pt"  # train.py's layout, through torch.save / weights_only load
    torch.save({"model": raw, "model_ema": ema}, path)
    checkpoint = torch.load(path, weights_only=True)
    assert s2fgan.checkpoint_weights(checkpoint)[1] == "model_ema"
    other = s2fgan.load_s2fgan_state_dict(s2fgan.S2FGAN(), checkpoint)
    torch.testing.assert_close(other.generator.conv1.weight, model.generator.conv1.weight)
    assert s2fgan.checkpoint_weights({"model": raw})[1] == "model"
    assert s2fgan.checkpoint_weights(ema)[1] == "state_dict"


def test_png_round_trip(tmp_path):
    img = torch.rand(3, 5, 7)
    write_png(tmp_path / "a.png", img)
    torch.testing.assert_close(read_png(tmp_path / "a.png"), img, atol=0.5 / 255 + 1e-6, rtol=0)


def test_entry_point(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    sketch = torch.zeros(3, 256, 256)
    sketch[:, 100:110, 40:200] = 1
    write_png(tmp_path / "sketch.png", sketch)
    s2fgan.main(["--checkpoint", str(tmp_path / "ckpt.pt"), "--sketch", str(tmp_path / "sketch.png"),
                 "--shift", "Smiling=2", "--out", str(tmp_path / "face.png")])
    assert read_png(tmp_path / "face.png").shape == (3, 256, 256)


def test_sketch_to_face_with_either_attribute_editor(model):
    """model_type 1 (S2F-DEC, the fixture's) and 0 (S2F-DIS): the face is
    the generator's image of the editor's latent of the sketch."""
    sketch = torch.rand(1, 1, 256, 256) * 2 - 1
    shifts = torch.zeros(1, 12)
    shifts[0, 0] = 2.0
    styles = []
    hook = model.generator.register_forward_pre_hook(lambda module, args: styles.append(args[0]))
    try:
        with torch.no_grad():
            latent = model.encoder_sketch(s2fgan.downsample_sketch(sketch))
            faces = [model.sketch_to_face(sketch, shifts)]
            model.model_type = 0
            faces.append(model.sketch_to_face(sketch, shifts))
    finally:
        model.model_type = 1
        hook.remove()
    torch.testing.assert_close(styles[0], model.edit(latent, shifts))
    torch.testing.assert_close(styles[1], model.classifier.edit(latent, shifts))
    assert not torch.allclose(styles[0], styles[1])
    assert faces[0].shape == faces[1].shape == (1, 3, 256, 256)
