"""Every model of python_models on hrops under CPU bfloat16 autocast, against
its float32 result: the error's mean and 99th percentile over the image, in
units of the float32 image's standard deviation; and a training step of the
MobileStyleGAN synthesis network and the S2FGAN decoder under autocast."""
import pytest
import torch

from pipeline_models import MODELS, mobilestylegan_synthesis, s2fgan_decoder

# (mean, 99th percentile) of |autocast - float32| / std(float32); measured
# at a third to a half of these with these weights. SEAN's InstanceNorms over
# nearly constant regions flip a few saturated pixels, so its maximum is
# not bounded.
TOLERANCES = {"mobilestylegan": (0.02, 0.15), "s2fgan": (0.03, 0.15), "sean": (0.05, 0.05),
              "stgan": (0.01, 0.03), "coogan": (0.01, 0.03)}


def _errors(out, want):
    err = (out.float() - want).abs().flatten() / want.std()
    return err.mean().item(), err.quantile(0.99).item()


@pytest.mark.parametrize("name", sorted(TOLERANCES))
def test_model_under_bf16_autocast_matches_float32(name):
    model, inputs = MODELS[name]()
    with torch.no_grad():
        want = model(*inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(*inputs)
    assert out.shape == want.shape and torch.isfinite(out).all()
    mean, p99 = _errors(out, want)
    assert mean <= TOLERANCES[name][0] and p99 <= TOLERANCES[name][1], (mean, p99)


def test_cocosnet_v2_under_bf16_autocast():
    # The hierarchy is a discrete search: a feature rounded to bfloat16 moves
    # near-tied candidates, and every later level searches from different
    # candidates, so only the dense first level is compared.
    model, inputs = MODELS["cocosnet_v2"]()
    with torch.no_grad():
        want = model.model(*inputs, torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.model(*inputs, torch.Generator().manual_seed(0))
    assert torch.equal(out.indices[0], want.indices[0])
    assert _errors(out.warps[0], want.warps[0])[0] <= 0.05
    for o, w in zip(out.warps, want.warps):
        assert o.shape == w.shape and torch.isfinite(o).all()


@pytest.mark.parametrize("build", [mobilestylegan_synthesis, s2fgan_decoder],
                         ids=["mobilestylegan", "s2fgan"])
def test_training_step_under_bf16_autocast(build):
    """One SGD step with the loss computed under autocast moves every
    parameter as the float32 step does, within bfloat16 rounding."""
    steps = []
    for autocast in (False, True):
        model, (w,) = build()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.parameters()]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(w).float().square().mean()
        loss.backward()
        opt.step()
        # (MobileStyleGAN's intermediate to_img layers feed only distillation
        # losses: they get no gradient from the image.)
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
        steps.append(torch.cat([(p.detach() - b).flatten() for p, b in
                                zip(model.parameters(), before) if p.grad is not None]))
    want, got = steps
    assert torch.isfinite(got).all()
    assert (got - want).norm() <= 0.05 * want.norm(), ((got - want).norm() / want.norm()).item()
