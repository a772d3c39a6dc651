"""hrops' MobileStyleGAN layers and model against the original modules'
math (tests/mobilestylegan_original.py) from the same state_dicts."""
import pytest
import torch

import hrops
import hrops.nn as hnn
import mobilestylegan_original as orig
from python_models import mobilestylegan as msg

STYLE = 16


def _randomize(module, seed=0):
    """Random parameters and style_inv buffers (the Haar filter buffers stay)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = list(module.named_parameters()) + [
        (n, b) for n, b in module.named_buffers() if n.endswith("style_inv")]
    with torch.no_grad():
        for _, t in tensors:
            t.copy_(torch.randn(t.shape, generator=gen) * 0.5 + (0.5 if t.numel() == 1 else 0))
    return module


def _pair(make_orig, make_hrops, dtype=torch.float64):
    a = _randomize(make_orig()).to(dtype)
    b = make_hrops().to(dtype)
    b.load_state_dict(a.state_dict())  # strict: same names and shapes
    return a, b


LAYERS = {
    "ModulatedConv2d-3x3": (lambda: orig.ModulatedConv2d(8, 6, STYLE, 3),
                            lambda: hnn.ModulatedConv2d(8, 6, STYLE, 3), (2, 8, 5, 7)),
    "ModulatedConv2d-1x1-nodemod": (lambda: orig.ModulatedConv2d(8, 12, STYLE, 1, demodulate=False),
                                    lambda: hnn.ModulatedConv2d(8, 12, STYLE, 1, demodulate=False),
                                    (2, 8, 6, 6)),
    "ModulatedDWConv2d": (lambda: orig.ModulatedDWConv2d(8, 10, STYLE, 3),
                          lambda: hnn.ModulatedDWConv2d(8, 10, STYLE, 3), (3, 8, 9, 6)),
    "IDWTUpsample": (lambda: orig.IDWTUpsample(16, STYLE), lambda: hnn.IDWTUpsample(16, STYLE),
                     (2, 16, 4, 5)),
    "MultichannelImage": (lambda: orig.MultichannelImage(8, 12, STYLE),
                          lambda: hnn.MultichannelImage(8, 12, STYLE), (1, 8, 4, 4)),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layer_matches_original(name, dtype):
    make_orig, make_hrops, shape = LAYERS[name]
    a, b = _pair(make_orig, make_hrops, dtype)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    style = torch.randn(shape[0], STYLE, dtype=dtype, requires_grad=True)
    ya, yb = a(x, style), b(x, style)
    tol = dict(atol=1e-10, rtol=1e-10) if dtype == torch.float64 else dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(yb, ya, **tol)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, [x, style, *a.parameters()], g)
    gb = torch.autograd.grad(yb, [x, style, *b.parameters()], g)
    for u, v in zip(gb, ga):
        torch.testing.assert_close(u, v, **tol)


@pytest.mark.parametrize("conv_module", ["ModulatedConv2d", "ModulatedDWConv2d"])
def test_styled_conv_matches_original(conv_module):
    a, b = _pair(lambda: orig.StyledConv2d(8, 8, STYLE, 3, getattr(orig, conv_module)),
                 lambda: hnn.StyledConv2d(8, 8, STYLE, 3, conv_module=getattr(hnn, conv_module)))
    x, style = torch.randn(2, 8, 6, 6, dtype=torch.float64), torch.randn(2, STYLE, dtype=torch.float64)
    noise = torch.randn(1, 6, 6, dtype=torch.float64)  # one map shared by the batch, as MobileStyleGAN
    torch.testing.assert_close(b(x, style, noise=noise), a(x, style, noise))


@pytest.mark.parametrize("layer", ["ModulatedDWConv2d", "ModulatedConv2d"])
def test_fuse_demodulation(layer):
    a, b = _pair(lambda: getattr(orig, layer)(8, 10, STYLE, 3),
                 lambda: getattr(hnn, layer)(8, 10, STYLE, 3), torch.float32)
    x, style = torch.randn(2, 8, 7, 7), torch.randn(2, STYLE)
    expected = a(x, style)
    with pytest.raises(RuntimeError, match="call .eval"):
        b.fuse_demodulation()
    b.eval().fuse_demodulation()
    assert b.demodulation_fused
    torch.testing.assert_close(b(x, style), expected, atol=1e-5, rtol=1e-5)
    for k, v in a.state_dict().items():  # state_dict still holds the original weights
        torch.testing.assert_close(b.state_dict()[k], v, atol=0, rtol=0)
    b.train()
    assert not b.demodulation_fused
    torch.testing.assert_close(b(x, style), expected, atol=1e-5, rtol=1e-5)


def test_fused_demodulation_follows_the_module_to_another_dtype():
    b = hnn.StyledConv2d(8, 10, STYLE, 3, conv_module=hnn.ModulatedDWConv2d)
    original = b.conv.weight_permute.detach().clone()
    assert hnn.fuse_demodulation(b.eval()) is b and b.conv.demodulation_fused
    b.double()
    saved = b.state_dict()["conv.weight_permute"]
    assert saved.dtype == torch.float64
    torch.testing.assert_close(saved, original.double(), atol=0, rtol=0)
    b.conv.unfuse_demodulation()
    assert b.conv.weight_permute.dtype == torch.float64
    torch.testing.assert_close(b.conv.weight_permute.detach(), original.double(), atol=0, rtol=0)


def test_fused_demodulation_at_two_threads_without_grad():
    """A loaded generator's parameters require grad; after
    fuse_demodulation() its layers once failed at 2 threads even under
    no_grad and inference_mode (ATen calls in the kernel's worker threads)."""
    a, b = _pair(lambda: orig.ModulatedDWConv2d(16, 8, STYLE, 3),
                 lambda: hnn.ModulatedDWConv2d(16, 8, STYLE, 3), torch.float64)
    b.eval().fuse_demodulation()
    x, style = torch.randn(2, 16, 32, 32, dtype=torch.float64), torch.randn(2, STYLE, dtype=torch.float64)
    expected = a(x, style).detach()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            y_no_grad = b(x, style)
        with torch.inference_mode():
            y_inference = b(x, style)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(y_no_grad, expected)
    torch.testing.assert_close(y_inference, expected)


def _noise(model, seed=0):
    return model.make_noise(torch.Generator().manual_seed(seed))


def test_synthesis_network_matches_original_at_1024():
    """The full 1024^2 student, W+ input, same noise: same image."""
    a = _randomize(orig.SynthesisNetwork(512, msg.FFHQ_1024_CHANNELS), seed=1)
    b = msg.MobileSynthesisNetwork(512)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    style = torch.randn(1, b.wsize(), 512) * 0.3
    noise = _noise(b)
    with torch.no_grad():
        img = b(style, noise=noise)["img"]
        img_orig = a(style, noise)
    assert img.shape == (1, 3, 1024, 1024)
    torch.testing.assert_close(img, img_orig, atol=1e-4 * img_orig.abs().max().item(), rtol=1e-4)


def test_converter_swaps_modules_in_place():
    a = _randomize(orig.SynthesisNetwork(STYLE, [32, 32, 16]), seed=2).eval()
    style, noise = torch.randn(2, 3 * 2 + 2, STYLE), _noise(msg.MobileSynthesisNetwork(STYLE, [32, 32, 16]))
    with torch.no_grad():
        expected = a(style, noise)
    report = hrops.convert(a)
    swapped = {name: old for name, old, _ in report}
    assert swapped["conv1.conv"] == "ModulatedConv2d"
    assert swapped["layers.0.conv1.conv"] == "ModulatedDWConv2d"
    assert swapped["layers.1.up"] == "IDWTUpsample"
    assert isinstance(a.layers[0].conv2.conv, hnn.ModulatedDWConv2d)
    with torch.no_grad():
        got = a(style, noise)
    torch.testing.assert_close(got, expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-4)
    assert hrops.convert(a) == []  # nothing left to swap


def test_converter_keeps_frozen_parameters_and_shared_modules():
    model = torch.nn.Sequential(orig.ModulatedDWConv2d(4, 6, 8, 3),
                                orig.ModulatedConv2d(6, 5, 8, 3), orig.IDWTUpsample(8, 8))
    model[0].requires_grad_(False)
    model.shared = model[1]  # one module under two names
    frozen = {n: p.requires_grad for n, p in model.named_parameters(remove_duplicate=False)}
    report = hrops.convert(model)
    assert [name for name, _, _ in report] == ["0", "1", "2", "shared"]
    assert {n: p.requires_grad
            for n, p in model.named_parameters(remove_duplicate=False)} == frozen
    assert model.shared is model[1] and isinstance(model[1], hnn.ModulatedConv2d)


def _lightning_checkpoint(model, path):
    state = {f"student.{k}": v for k, v in model.student.state_dict().items()}
    state.update({f"mapping_net.{k}": v for k, v in model.mapping_net.state_dict().items()})
    state["style_mean"] = model.style_mean.unsqueeze(1).repeat(1, model.student.wsize(), 1)
    state["synthesis_net.some_teacher_weight"] = torch.zeros(3)  # ignored
    torch.save({"state_dict": state, "epoch": 3}, path)


def test_load_official_checkpoint_layout(tmp_path):
    src = msg.MobileStyleGAN(style_dim=STYLE, n_mlp=2, channels=[32, 32, 16])
    _randomize(src, seed=3)
    path = tmp_path / "mobilestylegan.ckpt"
    _lightning_checkpoint(src, path)
    dst = msg.load_checkpoint(msg.MobileStyleGAN(style_dim=STYLE, n_mlp=2, channels=[32, 32, 16]),
                              path)
    z = torch.randn(2, STYLE)
    noise = _noise(src.student)
    with torch.no_grad():
        torch.testing.assert_close(dst(z, truncation=0.5, noise=noise),
                                   src(z, truncation=0.5, noise=noise))


def test_checkpoints_are_not_unpickled_by_default(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": object()}, path)
    with pytest.raises(Exception, match="weights_only"):
        msg.load_checkpoint(msg.MobileStyleGAN(style_dim=STYLE, n_mlp=1, channels=[32, 16]), path)


def test_generate_writes_png(tmp_path):
    model = msg.MobileStyleGAN(style_dim=STYLE, n_mlp=1, channels=[32, 32, 16]).eval()
    paths = msg.generate(model, 2, seed=7, out_dir=str(tmp_path), batch=2)
    assert len(paths) == 2
    with open(paths[0], "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 32  # width: 4 * 2^(blocks) * 2 for 2 blocks


@pytest.mark.compile
def test_styled_block_compiles_without_graph_breaks():
    torch._dynamo.reset()
    block = msg.MobileSynthesisBlock(32, 16, STYLE)
    x, style = torch.randn(2, 32, 4, 4, requires_grad=True), torch.randn(2, 3, STYLE)
    noise = torch.randn(2, 1, 8, 8)
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    hidden, img = compiled(x, style, noise=(noise[:1], noise[1:]))
    hidden_ref, img_ref = block(x, style, noise=(noise[:1], noise[1:]))
    torch.testing.assert_close(img, img_ref)
    (g,) = torch.autograd.grad(img.sum() + hidden.sum(), x)
    (g_ref,) = torch.autograd.grad(img_ref.sum() + hidden_ref.sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("name", ["ModulatedDWConv2d", "IDWTUpsample"])
def test_layer_bf16_forward_empty_batch_and_errors(name):
    make_orig, make_hrops, shape = LAYERS[name]
    a, b = _pair(make_orig, make_hrops, torch.float32)
    x, style = torch.randn(shape), torch.randn(shape[0], STYLE)
    expected = a(x, style)
    got = b.bfloat16()(x.bfloat16(), style.bfloat16()).float()
    torch.testing.assert_close(got, expected, atol=0.05 * expected.abs().max().item(), rtol=0.05)
    b.float()
    assert b(x[:0], style[:0]).shape[0] == 0


@pytest.mark.parametrize("name", ["ModulatedConv2d-3x3", "ModulatedConv2d-1x1-nodemod",
                                  "ModulatedDWConv2d", "IDWTUpsample", "MultichannelImage"])
def test_layer_input_errors_name_x_and_style(name):
    """Not the op-internal "modulation", nor a silent broadcast of a 3-D x."""
    _, make, (_, cin, h, w) = LAYERS[name]
    layer = make()
    x, style = torch.randn(2, cin, h, w), torch.randn(2, STYLE)
    cases = [((x[0], style), rf"x must be a 4-D tensor of shape \(N, {cin}, H, W\)"),
             ((x.long(), style), "x must be float32"),
             ((x[:, :4], style), rf"x must have shape \(N, {cin}, H, W\), got \(2, 4,"),
             ((x, style[:, :3]), rf"style must have shape \(N, style_dim\) = \(2, {STYLE}\)"),
             ((x, style[:1]), r"style must have shape \(N, style_dim\)"),
             ((x, style[0]), "style must be a 2-D tensor"),
             ((x, style.double()), "x and style must have the same dtype"),
             ((x.double(), style.double()), "x and the layer's parameters must have the same")]
    for args, msg in cases:
        with pytest.raises(ValueError, match=msg):
            layer(*args)


@pytest.mark.parametrize("make", [lambda: hnn.ModulatedConv2d(8, 12, STYLE, 1),
                                  lambda: hnn.MultichannelImage(8, 12, STYLE)])
def test_1x1_layers_take_an_empty_batch_or_map(make):
    layer = make()
    for shape in ((0, 8, 4, 5), (2, 8, 0, 5), (2, 8, 4, 0)):
        x = torch.randn(shape, requires_grad=True)
        out = layer(x, torch.randn(shape[0], STYLE))
        assert out.shape == (shape[0], 12, *shape[2:])
        out.sum().backward()
        assert x.grad.shape == x.shape


def test_kxk_modulated_conv_refuses_an_empty_map():
    layer = hnn.ModulatedConv2d(8, 6, STYLE, 3)
    assert layer(torch.randn(0, 8, 4, 4), torch.randn(0, STYLE)).shape == (0, 6, 4, 4)
    with pytest.raises(ValueError, match=r"x must have H >= 1 and W >= 1 with a 3x3 kernel"):
        layer(torch.randn(2, 8, 0, 4), torch.randn(2, STYLE))


@pytest.mark.parametrize("make,msg", [
    (lambda: hnn.ModulatedConv2d(0, 4, STYLE, 3), "channels_in must be an integer >= 1, got 0"),
    (lambda: hnn.ModulatedConv2d(4, 4, STYLE, 0), "kernel_size must be an integer >= 1, got 0"),
    (lambda: hnn.ModulatedConv2d(4, -1, STYLE, 3), "channels_out must be an integer >= 1"),
    (lambda: hnn.ModulatedDWConv2d(4, 4, 0, 3), "style_dim must be an integer >= 1"),
    (lambda: hnn.ModulatedDWConv2d(4, 4, STYLE, 2.0), "kernel_size must be an integer"),
    (lambda: hnn.IDWTUpsample(-4, STYLE), "channels_in must be an integer >= 1"),
    (lambda: hnn.StyledConv2d(4, 0, STYLE, 3), "channels_out must be an integer >= 1"),
    (lambda: hnn.ConstantInput(0), "channel must be an integer >= 1"),
    (lambda: hnn.ModulatedDWConv2d(4, 4, STYLE, 3, demodulate="no"),
     r"demodulate must be a bool \(True or False\), got 'no'"),
])
def test_constructors_refuse_bad_sizes(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_noise_injection_and_constant_input_shapes():
    with pytest.raises(ValueError, match=r"image must be a 4-D tensor of shape \(N, C, H, W\)"):
        hnn.NoiseInjection()(torch.randn(3, 4, 4))
    assert hnn.ConstantInput(5, 4)(torch.randn(3, STYLE)).shape == (3, 5, 4, 4)


def test_synthesis_network_takes_w_or_w_plus_and_fresh_or_given_noise():
    """The docstring's input forms: one style (N, D) for every layer is the
    W+ (N, wsize, D) that repeats it; noise=None draws fresh noise."""
    net = _randomize(msg.MobileSynthesisNetwork(STYLE, [32, 32, 16]), seed=4).eval()
    w = torch.randn(2, STYLE)
    noise = _noise(net)
    with torch.no_grad():
        img = net(w, noise=noise)["img"]
        w_plus = w[:, None].expand(2, net.wsize(), STYLE)
        torch.testing.assert_close(net(w_plus, noise=noise)["img"], img)
        fresh = net(w)
    assert img.shape == fresh["img"].shape == (2, 3, 32, 32)
    assert [n.shape for n in fresh["noise"]] == [n.shape for n in noise]
