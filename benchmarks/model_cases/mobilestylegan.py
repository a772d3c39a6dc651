"""MobileStyleGAN's 1024^2 MobileSynthesisNetwork forward (python_models.mobilestylegan),
fp32, batch 1 and 4: hrops layers vs the same model on reference layers
(set_impl(model, "ref")), each also under torch.compile, and the hrops model
exported to ONNX in onnxruntime; no floor. Joins the op cases of
hrops.bench.cases.mobilestylegan (family "mobilestylegan")."""
import torch
from torch import nn

from hrops.bench.harness import Case, Impl, compiled

from .onnxruntime_impl import onnxruntime_impl

GENERATOR = {"default": [1, 4], "quick": []}


def cases(quick=False):
    return [_generator_case(b) for b in GENERATOR["quick" if quick else "default"]]


class _OnNoise(nn.Module):
    """The synthesis network's image on fixed noise (the exported graph)."""

    def __init__(self, net, noise):
        super().__init__()
        self.net, self.noise = net, noise

    def forward(self, style):
        return self.net(style, noise=self.noise)["img"]


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

        def forward(impl):
            @torch.no_grad()
            def fn(style):
                return model(device, impl)(style, noise=noise)["img"]
            return fn
        return {"hrops": Impl(forward("auto")), "ref": Impl(forward("ref")),
                "compile(hrops)": compiled(forward("auto")),
                "compile(ref)": compiled(forward("ref")),
                "onnxruntime": onnxruntime_impl(_OnNoise(model(device, "auto"), noise), device)}
    return Case("mobilestylegan_1024", f"B{batch}", make_inputs, impls, fwd_bytes=None,
                bwd_bytes=None, tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
