"""Swap MobileStyleGAN-style modules of an existing model for hrops layers in
place, keeping their weights.

    swapped = hrops.convert(model)   # [(name, "ModulatedDWConv2d", "hrops...ModulatedDWConv2d"), ...]

Modules are recognised by class name and checked by their parameters
(MobileStyleGAN's spellings included: IDWTUpsaplme, MultichannelIamge);
each replacement loads the original's state_dict (strict), so a module whose
weights do not fit is left alone and reported in `convert(...).skipped`.
"""
import torch

from . import nn as hnn


def _modulated_dw(m):
    cin, _, k, _ = m.weight_dw.shape
    return hnn.ModulatedDWConv2d(cin, m.weight_permute.shape[0], m.modulation.in_features, k,
                                 demodulate=m.demodulate)


def _modulated(m):
    cout, cin, k, _ = m.weight.shape
    return hnn.ModulatedConv2d(cin, cout, m.modulation.in_features, k, demodulate=m.demodulate)


def _idwt_upsample(m):
    return hnn.IDWTUpsample(m.modulation.out_features, m.modulation.in_features)


def _dwt_inverse(m):
    return hnn.DWTInverse(wave="db1", mode=getattr(m, "mode", "zero"))


def _dwt_forward(m):
    return hnn.DWTForward(J=getattr(m, "J", 1), wave="db1", mode=getattr(m, "mode", "zero"))


_FACTORIES = {
    "ModulatedDWConv2d": _modulated_dw,
    "ModulatedConv2d": _modulated,
    "IDWTUpsaplme": _idwt_upsample,
    "IDWTUpsample": _idwt_upsample,
    "DWTInverse": _dwt_inverse,
    "DWTForward": _dwt_forward,
}


class ConversionReport(list):
    """The swapped modules as (name, old class, new class); `.skipped` lists
    (name, class, reason) for recognised modules left as they were."""

    def __init__(self):
        super().__init__()
        self.skipped = []


def convert(model: torch.nn.Module) -> ConversionReport:
    report = ConversionReport()
    swapped = {}  # id(original) -> its replacement: a module registered twice stays shared
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if any(name.startswith(done + ".") for done, _, _ in report):
            continue  # inside a module already swapped
        cls = type(module)
        factory = _FACTORIES.get(cls.__name__)
        if factory is None or cls.__module__.startswith("hrops."):
            continue
        new = swapped.get(id(module))
        if new is None:
            try:
                new = factory(module)
                new.load_state_dict(module.state_dict())
            except (AttributeError, ValueError, RuntimeError) as e:
                report.skipped.append((name, cls.__name__, str(e).splitlines()[0]))
                continue
            ref = next(iter(module.state_dict().values()), None)
            if ref is not None:
                new = new.to(device=ref.device,
                             dtype=ref.dtype if ref.is_floating_point() else None)
            frozen = dict(module.named_parameters())
            for pname, p in new.named_parameters():  # frozen parameters stay frozen
                if pname in frozen:
                    p.requires_grad_(frozen[pname].requires_grad)
            new.train(module.training)
            swapped[id(module)] = new
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        report.append((name, cls.__name__, f"{type(new).__module__}.{type(new).__name__}"))
    return report
