"""SEAN's SPADE branch at up_3 (128 channels, hidden 128, 256^2), fp32:
hrops.nn.region.SPADE (over the classes) against SEAN's dense form
(python_models.sean_reference.LoopSPADE on the one-hot map). Joins the op
cases of hrops.bench.cases.region (family "region")."""
import torch

import hrops
from hrops.bench.cases.region import REGIONS, face_labels, one_hot_map
from hrops.bench.harness import Case, Impl, compiled, nbytes

SIZES = {"default": (1, 128, 256, 256), "quick": (1, 4, 16, 16)}  # (N, C, H, W)


def cases(quick=False):
    return [_spade_case(SIZES["quick" if quick else "default"])]


def _spade_case(shape):
    n, c, h, w = shape
    modules = {}

    def pair(device, dtype):
        if (device, dtype) not in modules:
            from python_models.sean_reference import LoopSPADE
            torch.manual_seed(0)
            dense = LoopSPADE(c, REGIONS).to(device, dtype)
            ours = hrops.nn.region.SPADE(c, REGIONS).to(device, dtype)
            ours.load_state_dict(dense.state_dict())
            modules[(device, dtype)] = dense, ours
        return modules[(device, dtype)]

    def make_inputs(device, dtype):
        _, ours = pair(device, dtype)
        return (face_labels(n, h, w).to(device),
                *(p.detach().clone() for p in ours.parameters()))

    def impls(device, dtype):
        dense, ours = pair(device, dtype)
        names = [name for name, _ in ours.named_parameters()]

        def with_weights(module, to_seg):
            return lambda labels, *weights: torch.func.functional_call(
                module, dict(zip(names, weights)), (to_seg(labels),))
        dense_fn = with_weights(dense, lambda l: one_hot_map(l, REGIONS, dtype))
        return {"hrops": Impl(with_weights(ours, lambda l: l)), "ref": Impl(dense_fn),
                "compile(ref)": compiled(dense_fn)}
    # hrops' floor: labels in, gamma and beta out (their grads in, backward).
    out = 2 * nbytes((n, c, h, w))
    return Case("spade", f"B{n}xC{c}x{h}^2xR{REGIONS}", make_inputs, impls,
                fwd_bytes=out + nbytes((n, h, w), torch.int64), bwd_bytes=out,
                tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
