"""Whole models on hrops under torch.compile(fullgraph=True) (Inductor): no
graph break, the eager result; and a training step (compiled forward and
backward, loss, optimizer step) of the MobileStyleGAN synthesis network and
the S2FGAN decoder."""
import pytest
import torch

import hrops
import hrops.nn as hnn
from hrops import _backends
from hrops.compat.stylegan2 import FusedLeakyReLU
from pipeline_models import MODELS, mobilestylegan_synthesis, s2fgan_decoder

pytestmark = [pytest.mark.compile,
              pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# Inductor takes 45 s to 2.5 min on 2 cores to compile these three (CooGAN's
# patch loop, SEAN's 18 ACE blocks, CoCosNet v2's PatchMatch iterations); the
# tests trace them whole (Dynamo, AOTAutograd, the ops' fake kernels) and run
# the graph eagerly.
AOT_EAGER = {"cocosnet_v2", "coogan", "sean"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_model_compiles_without_graph_breaks(name):
    model, inputs = MODELS[name]()
    if name == "cocosnet_v2":  # float64: a search's near-ties would flip on float32 rounding
        model, inputs = model.double(), tuple(t.double() for t in inputs)
    backend = "aot_eager" if name in AOT_EAGER else "inductor"
    with torch.no_grad():
        torch.manual_seed(0)  # the same draws (CoCosNet v2's propagation order)
        want = model(*inputs)
        torch.manual_seed(0)
        got = torch.compile(model, fullgraph=True, backend=backend)(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize("build", [mobilestylegan_synthesis, s2fgan_decoder],
                         ids=["mobilestylegan", "s2fgan"])
def test_compiled_training_step_equals_eager(build):
    results = []
    for compiled in (False, True):
        model, (w,) = build()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        forward = torch.compile(model, fullgraph=True) if compiled else model
        losses = []
        for _ in range(2):
            loss = forward(w).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        results.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()]))
    (want_loss, want_params), (got_loss, got_params) = results
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-4, atol=1e-6)
    for got, want in zip(got_params, want_params):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def _patchmatch_defaults(a, b, o):
    return hrops.patchmatch_step(a, b, o)[0]


@pytest.mark.parametrize("case", ["fused_leaky_relu", "styled_dwconv", "modulated_conv2d",
                                  "patchmatch_step"])
def test_real_arguments_trace_with_dynamic_shapes(case):
    """dynamic=True traces float defaults and attributes (slopes, eps,
    temperature) as SymFloats: the argument checks must not break the graph."""
    torch.manual_seed(0)
    fn, inputs = {
        "fused_leaky_relu": lambda: (FusedLeakyReLU(3), (torch.randn(2, 3, 4, 4),)),
        "styled_dwconv": lambda: (hnn.StyledConv2d(4, 6, 8, 3, conv_module=hnn.ModulatedDWConv2d),
                                  (torch.randn(2, 4, 8, 8), torch.randn(2, 8),
                                   torch.randn(2, 1, 8, 8))),
        "modulated_conv2d": lambda: (hrops.modulated_conv2d, (torch.randn(2, 4, 8, 8),
                                                              torch.randn(5, 4, 3, 3),
                                                              torch.randn(2, 4))),
        "patchmatch_step": lambda: (_patchmatch_defaults, (
            torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6),
            torch.randint(0, 6, (1, 2, 3, 6, 6)).float())),
    }[case]()
    got = torch.compile(fn, fullgraph=True, backend="aot_eager", dynamic=True)(*inputs)
    torch.testing.assert_close(got, fn(*inputs))
