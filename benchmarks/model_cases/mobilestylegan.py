"""MobileStyleGAN's 1024^2 MobileSynthesisNetwork forward (python_models.mobilestylegan),
fp32, batch 1 and 4: hrops layers vs the same model on reference layers
(set_impl(model, "ref")); no floor. Joins the op cases of
hrops.bench.cases.mobilestylegan (family "mobilestylegan")."""
import torch

from hrops.bench.harness import Case, Impl

GENERATOR = {"default": [1, 4], "quick": []}


def cases(quick=False):
    return [_generator_case(b) for b in GENERATOR["quick" if quick else "default"]]


def _generator_case(batch):
    from python_models.mobilestylegan import MobileSynthesisNetwork, set_impl

    models = {}

    def model(device, impl):
        if impl not in models:
            torch.manual_seed(0)
            m = MobileSynthesisNetwork().to(device).eval()
            models[impl] = set_impl(m, impl)
        return models[impl]

    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (0.3 * torch.randn(batch, 23, 512, generator=gen, device=device, dtype=dtype),)

    def impls(device, dtype):
        noise = model(device, "auto").make_noise(torch.Generator(device).manual_seed(0))

        def run(impl):
            @torch.no_grad()
            def fn(style):
                return model(device, impl)(style, noise=noise)["img"]
            return Impl(fn)
        return {"hrops": run("auto"), "ref": run("ref")}
    return Case("mobilestylegan_1024", f"B{batch}", make_inputs, impls, fwd_bytes=None,
                bwd_bytes=None, tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
