"""bluestyle97/STGAN-pytorch's generator on hrops (python_models.stgan_pytorch)
against the original architecture (python_models.stgan_pytorch_original):
the original's state_dict loads strictly and round-trips, eval output
matches on every path (oneDNN-prepacked inference, BatchNorm folded into the
fused STU op, the module graph, float64), training (the fused batch-statistics
STU op) matches in output, gradients and running statistics, checkpoints load in the layouts the
original agent saves, bad input raises."""
import copy
import pickle

import pytest
import torch
from torch import nn

import hrops
from hrops.nn import _onednn
from python_models.stgan_pytorch import STGANPyTorchGenerator, load_bluestyle97_generator
from python_models.stgan_pytorch_original import Generator

# (constructor arguments, image side): the training config's layout at
# small widths; a 6-layer, 4-cell generator for 256^2 images.
CONFIGS = {"128": (dict(conv_dim=8), 128),
           "256": (dict(conv_dim=4, n_layers=6, shortcut_layers=4, attr_dim=5), 256)}


def _randomize_batch_norms(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            m.num_batches_tracked.fill_(7)
    return model


def _pair(config="128", dtype=torch.float32, **kwargs):
    args, side = CONFIGS[config]
    original = _randomize_batch_norms(Generator(**args)).to(dtype)
    model = STGANPyTorchGenerator(**args, **kwargs).to(dtype)
    model.load_state_dict(original.state_dict(), strict=True)
    return original, model, side


def _inputs(original, side, n=2, dtype=torch.float32):
    x = torch.rand(n, 3, side, side, dtype=dtype) * 2 - 1
    return x, torch.randint(-1, 2, (n, original.n_attrs)).to(dtype) * 0.5


def test_state_dict_loads_strictly_and_round_trips():
    original, model, _ = _pair()
    want = original.state_dict()
    got = model.state_dict()
    assert list(got) == list(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    Generator(conv_dim=8).load_state_dict(got, strict=True)
    assert isinstance(model.stu[0], hrops.nn.STU) and model.stu[0].norm == "batch"
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict({k: v for k, v in want.items() if k != "stu.1.hidden.1.bias"})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict({**want, "stu.0.extra.weight": torch.zeros(1)})


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_eval_matches_original(config):
    original, model, side = _pair(config)
    original.eval(), model.eval()
    x, a = _inputs(original, side)
    with torch.no_grad():
        want = original(x, a)
        got = model(x, a)  # the oneDNN-prepacked inference
        assert got.shape == (2, 3, side, side) and got.is_contiguous()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x, a), want, atol=1e-5, rtol=1e-5)  # cached weights
    got = model(x, a)  # autograd on: BatchNorm folded into the fused STU op
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    got.square().sum().backward()
    assert all(p.grad is not None for p in model.stu.parameters())


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_eval_float64(impl):
    original, model, side = _pair(dtype=torch.float64, impl=impl)
    original.eval(), model.eval()
    x, a = _inputs(original, side, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x, a), original(x, a), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("conv_layout", ["channels_last", "contiguous"])
def test_eval_layouts(conv_layout):
    original, model, side = _pair(conv_layout=conv_layout)
    original.eval(), model.eval()
    x, a = _inputs(original, side, n=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, a), original(x, a), atol=1e-5, rtol=1e-5)


def test_default_size_eval():
    original = _randomize_batch_norms(Generator()).eval()
    model = STGANPyTorchGenerator().eval()
    model.load_state_dict(original.state_dict())
    x, a = _inputs(original, 128, n=1)
    with torch.no_grad():
        want = original(x, a)
        torch.testing.assert_close(model(x, a), want, atol=1e-4 * want.abs().max(), rtol=1e-4)


def test_prepacked_weights_follow_the_parameters():
    original, model, side = _pair()
    original.eval(), model.eval()
    x, a = _inputs(original, side)
    with torch.no_grad():
        model(x, a)
        for m in original.modules():  # new weights and statistics, copied in place
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.mul_(1.5)
        _randomize_batch_norms(original)
        model.load_state_dict(original.state_dict())
        torch.testing.assert_close(model(x, a), original(x, a), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x[:1], a[:1]), original(x[:1], a[:1]), atol=1e-5,
                                   rtol=1e-5)  # another input shape repacks
        for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            torch.testing.assert_close(twin(x, a), original(x, a), atol=1e-5, rtol=1e-5)


def _grads_and_buffers(model):
    """Parameter gradients and buffers, the cells' under the original's names."""
    sd = {n: p.grad for n, p in model.named_parameters()}
    sd.update(model.named_buffers())
    if isinstance(model, STGANPyTorchGenerator):
        for i, cell in enumerate(model.stu):
            prefix = f"stu.{i}."
            own = {k[len(prefix):]: sd.pop(k) for k in list(sd) if k.startswith(prefix)}
            sd.update({prefix + k: v for k, v in
                       hrops.nn.recurrent.stu_state_to_bluestyle97(own).items()})
    return sd


@pytest.mark.parametrize("config,dtype,tol", [("128", torch.float32, 1e-4),
                                              ("256", torch.float32, 1e-4),
                                              ("128", torch.float64, 1e-10)],
                         ids=["128", "256", "128-float64"])
def test_training_matches_original(config, dtype, tol):
    """Training (the STUs as hrops::stu_bn_cell) over two steps: output,
    gradients, running statistics and counters."""
    original, model, side = _pair(config, dtype=dtype)
    original.train(), model.train()
    x, a = _inputs(original, side, dtype=dtype)
    for step in range(2):  # the second step normalizes with updated statistics
        want, got = original(x, a), model(x, a)
        torch.testing.assert_close(got, want, atol=tol / 10, rtol=tol / 10)
        g = torch.randn_like(want)
        (want * g).sum().backward()
        (got * g).sum().backward()
    want_sd, got_sd = _grads_and_buffers(original), _grads_and_buffers(model)
    assert sorted(got_sd) == sorted(want_sd)
    for k in want_sd:
        scale = want_sd[k].abs().max().item() if want_sd[k].is_floating_point() else 0
        torch.testing.assert_close(got_sd[k], want_sd[k], atol=tol * scale + tol / 100, rtol=tol,
                                   msg=k)


def test_checkpoint_layouts(tmp_path):
    original, model, side = _pair()
    sd = original.state_dict()
    # STGANAgent.save_checkpoint: {"state_dict", "optimizer"}; under
    # nn.DataParallel the names start with "module.".
    opt = torch.optim.Adam(original.parameters())
    agent = {"state_dict": {f"module.{k}": v for k, v in sd.items()},
             "optimizer": opt.state_dict()}
    torch.save(agent, tmp_path / "G_20000.pth.tar")
    torch.save(sd, tmp_path / "G.pth")
    fresh = STGANPyTorchGenerator(conv_dim=8)
    assert load_bluestyle97_generator(fresh, tmp_path / "G_20000.pth.tar") == \
        "agent checkpoint ['state_dict'], DataParallel"
    assert load_bluestyle97_generator(fresh, str(tmp_path / "G.pth")) == "state_dict"
    assert load_bluestyle97_generator(fresh, sd) == "state_dict"
    original.eval(), fresh.eval()
    x, a = _inputs(original, side, n=1)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, a), original(x, a), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="checkpoint must be"):
        load_bluestyle97_generator(fresh, {"optimizer": opt.state_dict()})
    with pytest.raises(ValueError, match="model must be"):
        load_bluestyle97_generator(original, sd)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_bluestyle97_generator(STGANPyTorchGenerator(conv_dim=8, one_more_conv=False), sd)


def test_stu_checkpoint_errors_name_the_original_keys():
    original, model, _ = _pair()
    sd = original.state_dict()
    key = "stu.0.reset_gate.1.running_var"
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "stu.0.reset_gate'
                                           r'.1.running_var"\. *$'):
        load_bluestyle97_generator(model, {k: v for k, v in sd.items() if k != key})
    bad = {**sd, "stu.0.update_gate.0.weight": sd["stu.0.update_gate.0.weight"][:, 1:]}
    with pytest.raises(RuntimeError, match=r"size mismatch for stu.0.update_gate.0.weight"):
        load_bluestyle97_generator(model, bad)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "stu.0.extra"'):
        load_bluestyle97_generator(model, {**sd, "stu.0.extra": torch.zeros(1)})
    fresh = STGANPyTorchGenerator(**CONFIGS["128"][0])
    missing, unexpected = fresh.load_state_dict({k: v for k, v in sd.items() if k != key},
                                                strict=False)
    assert missing == [key] and unexpected == []
    loaded = fresh.state_dict()  # everything else of the cell loaded
    for k, v in sd.items():
        if k != key:
            torch.testing.assert_close(loaded[k], v, atol=0, rtol=0, msg=k)


def test_variants_match_original():
    for args in (dict(use_stu=False), dict(one_more_conv=False), dict(shortcut_layers=4)):
        original = _randomize_batch_norms(Generator(conv_dim=8, **args)).eval()
        model = STGANPyTorchGenerator(conv_dim=8, **args).eval()
        model.load_state_dict(original.state_dict())
        x, a = _inputs(original, 64)
        with torch.no_grad():
            torch.testing.assert_close(model(x, a), original(x, a), atol=1e-5, rtol=1e-5)


def test_bad_input():
    model = STGANPyTorchGenerator(conv_dim=4).eval()
    x, a = torch.zeros(1, 3, 64, 64), torch.zeros(1, 10)
    with pytest.raises(ValueError, match="x must have shape"):
        model(x[:, :2], a)
    with pytest.raises(ValueError, match="x's H and W"):
        model(x[:, :, :48], a)
    with pytest.raises(ValueError, match="a must have shape"):
        model(x, a[:, :4])
    with pytest.raises(ValueError, match="a must have shape"):
        model(x, a.expand(2, -1))
    with pytest.raises(ValueError, match="conv_layout must be one of"):
        STGANPyTorchGenerator(conv_layout="nhwc")


def test_fold_batch_norm():
    bn = _randomize_batch_norms(nn.Sequential(nn.BatchNorm2d(6))).eval()[0]
    conv, deconv = nn.Conv2d(4, 6, 3, padding=1), nn.ConvTranspose2d(4, 6, 4, 2, 1)
    x = torch.randn(2, 4, 8, 8)
    w, b = _onednn.fold_batch_norm(conv.weight, bn, bias=conv.bias)
    torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)))
    w, b = _onednn.fold_batch_norm(deconv.weight, bn, transposed=True, bias=deconv.bias)
    torch.testing.assert_close(nn.functional.conv_transpose2d(x, w, b, 2, 1), bn(deconv(x)))
