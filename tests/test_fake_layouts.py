"""Every kernel op's fake (meta) function gives the shapes, dtypes and
strides its kernels return, for channels-last and strided inputs too:
torch.compile allocates and lays out its graph from the fakes. Each
workload runs a public function forward and backward, the hrops ops it
dispatches are recorded, and each recorded call is opchecked
(test_faketensor) on the implementation that ran it."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hrops
from impls import kernel_impls

CL = torch.channels_last


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "hrops":
            self.calls.append((func, args))
        return func(*args, **(kwargs or {}))


def _t(*shape, layout=CL, grad=True):
    t = torch.randn(shape, dtype=torch.float64)
    t = t.contiguous(memory_format=layout) if t.dim() == 4 else t
    return t.requires_grad_(grad)


def _labels(n, h, w, regions):
    return torch.randint(-1, regions, (n, h, w))


# name -> (impls with a kernel, workload(impl) -> outputs to backpropagate)
WORKLOADS = {
    "haar": (("cpu", "triton"), lambda impl: [
        hrops.haar_dwt(_t(2, 3, 6, 8), impl=impl),
        hrops.haar_idwt(_t(2, 12, 3, 4).transpose(2, 3), impl=impl)]),
    "modulated_dwconv2d": (("cpu", "triton"), lambda impl: [
        hrops.modulated_dwconv2d(_t(2, 8, 5, 6), _t(2, 8), _t(8, 1, 3, 3), _t(6, 8, 1, 1), _t(6),
                                 impl=impl),
        hrops.modulated_dwconv2d(_t(2, 8, 5, 6), _t(2, 8), _t(8, 1, 3, 3), _t(6, 8, 1, 1),
                                 bias=_t(6), negative_slope=0.2, impl=impl)]),
    "modulated_idwt_upsample": (("cpu",), lambda impl: [
        hrops.modulated_idwt_upsample(_t(2, 8, 5, 6), _t(2, 8), impl=impl)]),
    "fused_bias_leaky_relu": (("cpu",), lambda impl: [
        hrops.fused_bias_leaky_relu(_t(2, 3, 5, 6), _t(3), impl=impl)]),
    "upfirdn2d": (("cpu",), lambda impl: [
        hrops.upfirdn2d(_t(2, 3, 5, 6), torch.ones(3, 3, dtype=torch.float64) / 9, up=2,
                        pad=(1, 1), impl=impl),
        hrops.upfirdn2d(_t(2, 3, 6, 6), torch.ones(2, 2, dtype=torch.float64) / 4, down=2,
                        impl=impl)]),
    "region": (("cpu",), lambda impl: [
        hrops.region_avg_pool(_t(2, 3, 5, 6), _labels(2, 5, 6, 4), 4, impl=impl),
        hrops.region_broadcast(_t(2, 4, 3), _labels(2, 5, 6, 4), impl=impl),
        hrops.region_conv2d(_t(2, 4, 3), _labels(2, 5, 6, 4), _t(5, 3, 3, 3), _t(5),
                            impl=impl)]),
    "ace_modulate": (("cpu",), lambda impl: [
        hrops.ace_modulate(*(_t(2, 3, 5, 6) for _ in range(5)), _t(2), impl=impl)]),
    "gates": (("cpu", "triton"), lambda impl: [
        *hrops.lstu_gates(_t(2, 3, 5, 6), _t(2, 3, 5, 6), _t(2, 6, 5, 6),
                          _t(2, 3, 5, 6, layout=torch.contiguous_format), impl=impl),
        *hrops.stu_reset(_t(2, 3, 5, 6), _t(2, 3, 5, 6), impl=impl),
        hrops.gru_update(_t(2, 3, 5, 6), _t(2, 3, 5, 6), _t(2, 3, 5, 6), impl=impl)]),
    "patchmatch": (("cpu",), lambda impl: [
        *hrops.patchmatch_step(_t(1, 4, 5, 6, grad=False), _t(1, 4, 4, 5, grad=False),
                               torch.randn(1, 2, 3, 5, 6).round(), impl=impl),
        hrops.patchmatch_warp(_t(1, 4, 5, 6), _t(1, 4, 4, 5), _t(1, 3, 4, 5),
                              torch.randn(1, 2, 3, 5, 6).round(), impl=impl)]),
}


def _cases():
    for name, (supported, _) in WORKLOADS.items():
        for case in kernel_impls(supported):
            impl, device = case.values
            if device == "cpu":
                yield pytest.param(name, impl, marks=case.marks, id=f"{name}-{case.id}")


@pytest.mark.parametrize("name,impl", list(_cases()))
def test_fakes_match_the_kernels_layouts(name, impl):
    torch.manual_seed(0)
    recorder = _Recorder()
    with recorder:
        outs = [o for o in WORKLOADS[name][1](impl) if o.requires_grad]
        forward_calls = len(recorder.calls)
        torch.autograd.backward(outs, [torch.randn_like(o) for o in outs])
    assert 0 < forward_calls < len(recorder.calls), "no kernel op ran forward and backward"
    for func, args in recorder.calls:
        torch.library.opcheck(func, args, test_utils=("test_faketensor",))
