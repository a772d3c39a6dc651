"""hrops.nn.LSTU / STU against the original cells' computation (written from
csmliu/STGAN models.py, ConvGRUCell, and neuralchen/CooGAN
components/STU/SRU_modify.py / SRU_modify_relu.py in
python_models.original_cells), parameter counts against those of the original
cells' convolution shapes, memory saved for backward, the bluestyle97 loader."""
import pytest
import torch
from torch import nn

from hrops.nn import LSTU, STU, load_bluestyle97_stu
from impls import kernel_impls
from python_models.original_cells import OriginalLSTU, OriginalSTU, tile_attributes

IMPLS = kernel_impls()


def _inputs(n=2, d=6, c_prev=5, attrs=3, hw=8, dtype=torch.float32, device="cpu"):
    enc = torch.randn(n, d, hw, hw, dtype=dtype, device=device, requires_grad=True)
    state = torch.randn(n, c_prev, hw // 2, hw // 2, dtype=dtype, device=device, requires_grad=True)
    attr = torch.randint(-1, 2, (n, attrs), device=device).to(dtype).requires_grad_()
    return enc, state, attr


def _pair(kind, d=6, state_dim=8, conv_layout="auto", **kw):
    original = (OriginalLSTU(d, state_dim, **kw) if kind == "lstu" else OriginalSTU(d, state_dim))
    ours = (LSTU(d, state_dim, conv_layout=conv_layout, **kw) if kind == "lstu" else
            STU(d, state_dim, conv_layout=conv_layout))
    return original, original.export_to(ours)


def _outputs_and_grads(module, inputs):
    outs = module(*inputs)
    weights = [torch.linspace(-1, 1, o.numel(), dtype=o.dtype).reshape(o.shape) for o in outs]
    loss = sum((o * w).sum() for o, w in zip(outs, weights))
    return outs, torch.autograd.grad(loss, [*inputs, *module.parameters()])


@pytest.mark.parametrize("impl,device", IMPLS)
@pytest.mark.parametrize("kind,kw", [("lstu", dict(activation="tanh")),
                                     ("lstu", dict(activation="relu")), ("stu", {})])
@pytest.mark.parametrize("conv_layout", ["channels_last", "contiguous"])
def test_matches_original_cell(impl, device, kind, kw, conv_layout):
    original, ours = _pair(kind, conv_layout=conv_layout, **kw)
    original, ours = original.to(device), ours.to(device)
    ours.impl = impl
    inputs = _inputs(device=device)
    got, got_grads = _outputs_and_grads(ours, inputs)
    want, want_grads = _outputs_and_grads(original, inputs)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # parameter gradients in hrops' layout: the original's per-gate ones concatenated
    n_in = len(inputs)
    torch.testing.assert_close(got_grads[:n_in], want_grads[:n_in], atol=1e-5, rtol=1e-4)
    grads = dict(zip([n for n, _ in ours.named_parameters()], got_grads[n_in:]))
    want_grads = dict(zip([n for n, _ in original.named_parameters()], want_grads[n_in:]))
    first, second = ("forget_gate", "reset_gate") if kind == "lstu" else ("reset_gate", "update_gate")
    for p in ("weight", "bias"):
        torch.testing.assert_close(grads[f"gates.{p}"], torch.cat(
            [want_grads[f"{first}.{p}"], want_grads[f"{second}.{p}"]]), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(grads[f"upsample.{p}"], want_grads[f"upsample.{p}"],
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["lstu", "stu"])
@pytest.mark.parametrize("h,w", [(4, 4), (2, 2), (6, 4)])
@pytest.mark.parametrize("conv_layout", ["channels_last", "contiguous"])
def test_gradcheck_fused_cell(kind, h, w, conv_layout):
    """Float64 gradients of the inputs and of the weights and biases, on
    maps whose upsampled rows and columns have every tap class (2 x 2: no
    interior ones), in either convolution layout."""
    cell = (LSTU(3, 5, "tanh", conv_layout=conv_layout) if kind == "lstu" else
            STU(3, 5, conv_layout=conv_layout)).double()
    attr = _inputs(d=3, c_prev=3, attrs=2, dtype=torch.float64)[2]
    inputs = (torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True),
              torch.randn(2, 3, h // 2, w // 2, dtype=torch.float64, requires_grad=True), attr)
    assert torch.autograd.gradcheck(lambda *a: cell(*a), inputs)
    names = ("upsample.weight", "upsample.bias", "gates.weight", "gates.bias",
             *(("transform.weight", "transform.bias") if kind == "lstu" else ()))
    assert torch.autograd.gradcheck(
        lambda *p: torch.func.functional_call(cell, dict(zip(names, p)), inputs),
        [cell.get_parameter(n).detach().clone().requires_grad_() for n in names])


def _saved_bytes(fn, inputs):
    skip = {t.untyped_storage().data_ptr() for t in inputs}
    seen = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in skip:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("kind", ["lstu", "stu"])
def test_saves_at_most_half_of_the_original(kind):
    original, ours = _pair(kind, d=8, state_dim=11)
    inputs = _inputs(d=8, c_prev=8, attrs=3, hw=16)
    leaves = [*inputs, *ours.parameters(), *original.parameters()]
    ours_bytes = _saved_bytes(lambda: ours(*inputs), leaves)
    original_bytes = _saved_bytes(lambda: original(*inputs), leaves)
    assert 0 < ours_bytes <= original_bytes / 2


def _levels(dim, attrs=13):
    widths = [8 * dim, 4 * dim, 2 * dim, dim]  # d of the 4 cells, coarse to fine
    states = [16 * dim + attrs] + [d + attrs for d in widths[:-1]]
    return list(zip(widths, states))


@pytest.mark.parametrize("dim,lstu_m,stu_m", [(64, 18.0, 30.1), (32, 4.5, 7.6)])
def test_parameter_counts_match_the_original_cells(dim, lstu_m, stu_m):
    def count(cls):
        return sum(p.numel() for d, s in _levels(dim) for p in cls(d, s).parameters())
    assert round(count(LSTU) / 1e6, 1) == lstu_m
    assert round(count(STU) / 1e6, 1) == stu_m
    d, s = 64, 77  # per-level counts from the original cells' convolution shapes
    assert sum(p.numel() for p in LSTU(d, s).parameters()) == 16 * s * d + d + d * d + d + 2 * (9 * d * d + d)
    assert sum(p.numel() for p in STU(d, s).parameters()) == 16 * s * d + d + 3 * (9 * 2 * d * d + d)


class Bluestyle97Cell(nn.Module):
    """bluestyle97/STGAN-pytorch's STU cell as its models/stgan.py computes it:
    bias-free convolutions, each gate Conv + BatchNorm + activation, the
    attributes tiled inside the cell."""

    def __init__(self, n_attrs, in_dim, out_dim, k=3):
        super().__init__()
        def gate(act):
            return nn.Sequential(nn.Conv2d(in_dim + out_dim, out_dim, k, 1, k // 2, bias=False),
                                 nn.BatchNorm2d(out_dim), act)
        self.upsample = nn.ConvTranspose2d(in_dim * 2 + n_attrs, out_dim, 4, 2, 1, bias=False)
        self.reset_gate, self.update_gate, self.hidden = gate(nn.Sigmoid()), gate(nn.Sigmoid()), gate(nn.Tanh())

    def forward(self, enc, state, attr):
        s_hat = self.upsample(tile_attributes(state, attr))
        r = self.reset_gate(torch.cat([enc, s_hat], 1))
        z = self.update_gate(torch.cat([enc, s_hat], 1))
        s_new = r * s_hat
        return (1 - z) * s_hat + z * self.hidden(torch.cat([enc, s_new], 1)), s_new


@pytest.mark.parametrize("train", [False, True])
def test_bluestyle97_loader(train):
    orig = nn.ModuleList([Bluestyle97Cell(3, 4, 4)])
    for m in orig.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    state_dict = {k: v.clone() for k, v in orig.state_dict().items()}
    cell = load_bluestyle97_stu(STU(4, 11, norm="batch"), state_dict, prefix="0.")
    orig.train(train), cell.train(train)
    enc, state, attr = torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4), torch.randn(2, 3)
    torch.testing.assert_close(cell(enc, state, attr), orig[0](enc, state, attr), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="norm='batch'"):
        load_bluestyle97_stu(STU(4, 11), state_dict, prefix="0.")


def test_bad_input():
    cell = LSTU(6, 8)
    enc, state, attr = _inputs()
    with pytest.raises(ValueError, match="attr must have shape"):
        cell(enc, state, attr[:, :2].unsqueeze(0))
    with pytest.raises(ValueError, match="state must have shape"):
        cell(enc, state, attr[:, :2])  # 2 attributes: state_dim - A = 6 != 5
    with pytest.raises(ValueError, match="enc must have shape"):
        cell(enc[:, :4], state, attr)
    with pytest.raises(ValueError, match="activation must be one of"):
        LSTU(6, 8, "sigmoid")
    with pytest.raises(ValueError, match="conv_layout must be one of"):
        STU(6, 8, conv_layout="nhwc")


@pytest.mark.compile
@pytest.mark.parametrize("conv_layout", ["channels_last", "contiguous"])
def test_compile_fullgraph(conv_layout):
    torch._dynamo.reset()
    cell = LSTU(6, 8, "relu", conv_layout=conv_layout)
    inputs = _inputs()
    compiled = torch.compile(cell, fullgraph=True, backend="aot_eager", dynamic=False)
    h, c = compiled(*inputs)
    got = torch.autograd.grad((h.sum() + c.square().sum()), inputs)
    h2, c2 = cell(*inputs)
    want = torch.autograd.grad((h2.sum() + c2.square().sum()), inputs)
    torch.testing.assert_close((h, c), (h2, c2))
    torch.testing.assert_close(got, want)
