"""Whole models on hrops under torch.compile(fullgraph=True) (Inductor): no
graph break, the eager result; and a training step (compiled forward and
backward, loss, optimizer step) of the MobileStyleGAN synthesis network and
the S2FGAN decoder."""
import pytest
import torch

from hrops import _backends
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
