"""hrops.nn.LSTU / STU against the original cells' computation (written from
csmliu/STGAN models.py, ConvGRUCell, and neuralchen/CooGAN
components/STU/SRU_modify.py / SRU_modify_relu.py in
python_models.original_cells), parameter counts against those of the original
cells' convolution shapes, memory saved for backward, the bluestyle97 loader; STU(norm="batch") in
training (hrops::stu_bn_cell) against its module graph."""
import copy

import pytest
import torch
from torch import nn

from hrops import _backends
from hrops.nn import LSTU, STU, load_bluestyle97_stu
from hrops.ops import recurrent_cells as cells
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


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("conv_layout", ["contiguous", "channels_last"])
def test_empty_batch(impl, conv_layout):
    enc, state, attr = _inputs(n=0)
    h, c = LSTU(6, 8, impl=impl, conv_layout=conv_layout)(enc, state, attr)
    assert h.shape == c.shape == enc.shape


def test_bad_input():
    cell = LSTU(6, 8)
    enc, state, attr = _inputs()
    with pytest.raises(ValueError, match="attr must have shape"):
        cell(enc, state, attr[:, :2].unsqueeze(0))
    with pytest.raises(ValueError, match="state must have shape"):
        cell(enc, state, attr[:, :2])  # 2 attributes: state_dim - A = 6 != 5
    with pytest.raises(ValueError, match="enc must have shape"):
        cell(enc[:, :4], state, attr)
    with pytest.raises(ValueError, match="activation must be .tanh. or .relu., got .sigmoid."):
        LSTU(6, 8, "sigmoid")
    with pytest.raises(ValueError, match="conv_layout must be one of"):
        STU(6, 8, conv_layout="nhwc")


@pytest.mark.parametrize("kind", [LSTU, STU])
def test_input_dtypes_and_empty_maps(kind):
    """Mixed dtypes, an integer enc and an empty map: errors naming the
    argument, not ATen's (or a silent promotion)."""
    cell = kind(6, 8)
    enc, state, attr = _inputs()
    cases = [((enc, state.double(), attr), "enc and state must have the same dtype"),
             ((enc, state, attr.double()), "enc and attr must have the same dtype"),
             ((enc.double(), state.double(), attr.double()),
              f"enc and the {kind.__name__}'s parameters must have the same dtype"),
             ((enc.long(), state, attr), "enc must be float32"),
             ((enc, state.long(), attr), "state must be float32"),
             ((enc[:, :, :0], state[:, :, :0], attr), "enc must have H >= 2 and W >= 2")]
    for args, msg in cases:
        with pytest.raises(ValueError, match=msg):
            cell(*args)


@pytest.mark.parametrize("make,msg", [
    (lambda: STU(in_dim=-1, state_dim=8, out_dim=5), "in_dim must be an integer >= 1, got -1"),
    (lambda: STU(6, 8, out_dim=0), "out_dim must be an integer >= 1, got 0"),
    (lambda: LSTU(6, 0), "state_dim must be an integer >= 1, got 0"),
    (lambda: LSTU(6, 8, kernel_size=2), "kernel_size must be odd"),
    (lambda: STU(6, 8, kernel_size=4), "kernel_size must be odd"),
    (lambda: STU(6, 8, kernel_size=0), "kernel_size must be an integer >= 1"),
])
def test_constructors_refuse_bad_sizes(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


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


@pytest.mark.compile
@pytest.mark.parametrize("kind", ["lstu", "stu", "stu_bn"])
def test_export_with_a_dynamic_state_size(kind):
    """The README's bound: dynamic state sizes from 3 (the upsampling's row
    sets); below it torch.export names the bound it needs."""
    cell = {"lstu": lambda: LSTU(4, 6), "stu": lambda: STU(4, 6),
            "stu_bn": lambda: STU(4, 6, norm="batch")}[kind]().eval()
    inputs = lambda n, h: (torch.randn(n, 4, 2 * h, 2 * h), torch.randn(n, 4, h, h),  # noqa: E731
                           torch.randn(n, 2))
    n = torch.export.Dim("n", min=1, max=64)

    def export(low):
        h = torch.export.Dim("h", min=low, max=512)
        return torch.export.export(cell, inputs(2, 8), dynamic_shapes=(
            {0: n, 2: 2 * h, 3: 2 * h}, {0: n, 2: h, 3: h}, {0: n}))

    program = export(3).module()
    for size in (3, 4, 7):
        args = inputs(1 + size % 2, size)
        torch.testing.assert_close(program(*args), cell(*args))
    with pytest.raises(torch._dynamo.exc.UserError, match=r"Dim\('h', min=3"):
        export(1)


needs_kernels = pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")


def _bn_stu(d=6, state_dim=8, dtype=torch.float32, **kw):
    """STU(norm="batch") with non-trivial affine parameters and running
    statistics, and its impl="ref" twin (the module graph)."""
    cell = STU(d, state_dim, norm="batch", **kw)
    for bn in (cell.gates_norm, cell.info_norm):
        bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2)
    cell = cell.to(dtype)
    twin = copy.deepcopy(cell)
    twin.impl = "ref"
    return cell, twin


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("conv_layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_training_matches_module_graph(dtype, tol, conv_layout, momentum):
    """The fused training cell (hrops::stu_bn_cell) against the module graph
    over two steps: outputs, gradients of inputs and parameters, and the
    BatchNorms' running statistics and counters (momentum None: the
    cumulative average)."""
    ours, graph = _bn_stu(dtype=dtype, conv_layout=conv_layout)
    for cell in (ours, graph):
        cell.gates_norm.momentum = cell.info_norm.momentum = momentum
    inputs = _inputs(dtype=dtype)
    for _ in range(2):
        got, got_grads = _outputs_and_grads(ours, inputs)
        want, want_grads = _outputs_and_grads(graph, inputs)
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)
        torch.testing.assert_close(got_grads, want_grads, atol=10 * tol, rtol=10 * tol)
    got_buffers, want_buffers = dict(ours.named_buffers()), dict(graph.named_buffers())
    assert got_buffers["gates_norm.num_batches_tracked"] == 2
    torch.testing.assert_close(got_buffers, want_buffers, atol=tol, rtol=tol)


@pytest.mark.parametrize("used", [0, 1])
def test_batch_norm_training_one_output_used(used):
    """Gradients when the loss reads only out or only s_new (the other
    output's gradient is not materialized)."""
    ours, graph = _bn_stu()
    inputs = _inputs()
    got, want = (torch.autograd.grad(cell(*inputs)[used].sin().sum(), [*inputs, *cell.parameters()],
                                     allow_unused=True, materialize_grads=True)
                 for cell in (ours, graph))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_batch_norm_training_empty_batch():
    """An empty batch in training: empty outputs and gradients, the running
    statistics as the module graph leaves them (only the counter moves)."""
    ours, graph = _bn_stu()
    inputs = _inputs(n=0)
    got, got_grads = _outputs_and_grads(ours, inputs)
    want, want_grads = _outputs_and_grads(graph, inputs)
    assert [t.shape for t in got] == [t.shape for t in want] == [(0, 6, 8, 8)] * 2
    torch.testing.assert_close(got_grads, want_grads)
    torch.testing.assert_close(dict(ours.named_buffers()), dict(graph.named_buffers()))


def test_batch_norm_without_running_statistics():
    """BatchNorms built with track_running_stats=False normalize with batch
    statistics in eval too: the fused cell there as well, nothing to update."""
    ours, graph = _bn_stu()
    for cell in (ours, graph):
        for name in ("gates_norm", "info_norm"):
            bn = getattr(cell, name)
            fresh = nn.BatchNorm2d(bn.num_features, track_running_stats=False)
            fresh.load_state_dict({"weight": bn.weight, "bias": bn.bias})
            setattr(cell, name, fresh)
    inputs = _inputs()
    for train in (True, False):
        ours.train(train), graph.train(train)
        got, got_grads = _outputs_and_grads(ours, inputs)
        want, want_grads = _outputs_and_grads(graph, inputs)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_grads, want_grads, atol=1e-4, rtol=1e-4)


def _stu_bn_args(channels_last, h=4, w=6):
    """hrops::stu_bn_cell's arguments in float64, the two norms' eps apart."""
    g = torch.Generator().manual_seed(3)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    def gamma(c):
        return (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    e, d, c_prev, a = 3, 2, 3, 2
    return (r(2, e, h, w), r(2, c_prev, h // 2, w // 2), r(2, a), r(c_prev + a, d, 4, 4),
            r(2 * d, e + d, 3, 3), gamma(2 * d), r(2 * d), r(d, e + d, 3, 3), gamma(d), r(d),
            1e-5, 1e-3, channels_last, "cpu")


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("h,w", [(4, 6), (2, 2)])
def test_gradcheck_stu_bn_cell(channels_last, h, w):
    """Float64 gradients of every tensor input of hrops::stu_bn_cell through
    out and s_new (the batch statistics are not differentiable outputs)."""
    args = _stu_bn_args(channels_last, h, w)
    tensors = args[:10]

    def outputs(*ts):
        return cells._stu_bn_cell(*ts, *args[10:])[:2]
    assert torch.autograd.gradcheck(outputs, tensors)


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_stu_bn_cell_opcheck(channels_last):
    torch.library.opcheck(cells._stu_bn_cell, _stu_bn_args(channels_last))


@needs_kernels
def test_batch_norm_training_saves_less_than_the_module_graph():
    """In float32 with in_dim = d = 8 at 16^2, batch 2: [enc, s_hat] and both
    maps before normalization (in_dim + 4d channels per pixel) besides the
    inputs; the module graph keeps more than twice that."""
    ours, graph = _bn_stu(d=8, state_dim=11, conv_layout="contiguous")
    inputs = _inputs(d=8, c_prev=8, attrs=3, hw=16)
    leaves = [*inputs, *ours.parameters(), *graph.parameters()]
    ours_bytes = _saved_bytes(lambda: ours(*inputs), leaves)
    graph_bytes = _saved_bytes(lambda: graph(*inputs), leaves)
    assert ours_bytes == 4 * 2 * 16 * 16 * (8 + 4 * 8)
    assert ours_bytes < graph_bytes / 2


def test_batch_norm_training_under_autocast():
    """The fused training cell under CPU autocast: bfloat16 outputs like the
    module graph's, float32 running statistics close to its."""
    ours, graph = _bn_stu()
    inputs = [t.detach() for t in _inputs()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = ours(*inputs), graph(*inputs)
    assert [t.dtype for t in got] == [t.dtype for t in want] == [torch.bfloat16] * 2
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.05)
    for name, buffer in graph.named_buffers():
        assert ours.get_buffer(name).dtype == buffer.dtype
        torch.testing.assert_close(ours.get_buffer(name), buffer, atol=0.02, rtol=0.02, msg=name)


@pytest.mark.compile
def test_batch_norm_training_compile_fullgraph():
    torch._dynamo.reset()
    ours, graph = _bn_stu()
    inputs = _inputs()
    compiled = torch.compile(ours, fullgraph=True, backend="aot_eager", dynamic=False)
    got, got_grads = _outputs_and_grads(compiled, inputs)
    want, want_grads = _outputs_and_grads(graph, inputs)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grads, want_grads, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dict(ours.named_buffers()), dict(graph.named_buffers()))
