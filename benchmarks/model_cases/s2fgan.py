"""The S2FGAN 256^2 decoder forward (python_models.s2fgan.Generator, fp32,
batch 4, one style vector for every layer; Yan98/S2FGAN model.py, train.py),
on hrops against
the same decoder on the fallback ops its code base runs on CPU (impl="ref":
unfused bias + leaky ReLU, upfirdn2d as pad + conv2d, grouped modulated conv
with per-sample weights), each also under torch.compile, and the hrops decoder
exported to ONNX in onnxruntime. No memory floor: a whole network."""
import torch

from hrops.bench.harness import Case, Impl, compiled

from .onnxruntime_impl import onnxruntime_impl

SIZES = {"default": [4], "quick": [1]}


def cases(quick=False):
    return [_case(n) for n in SIZES["quick" if quick else "default"]]


def _case(batch):
    def make_inputs(device, dtype):
        gen = torch.Generator(device).manual_seed(0)
        return (torch.randn(batch, 512, generator=gen, device=device, dtype=dtype),)

    def impls(device, dtype):
        from python_models.s2fgan import Generator, use_impl
        torch.manual_seed(0)
        fast = Generator().to(device, dtype).eval().requires_grad_(False)
        slow = use_impl(Generator().to(device, dtype).eval().requires_grad_(False), "ref")
        slow.load_state_dict(fast.state_dict())
        return {"hrops": Impl(fast), "ref": Impl(slow), "compile(hrops)": compiled(fast),
                "compile(ref)": compiled(slow), "onnxruntime": onnxruntime_impl(fast, device)}

    return Case("s2fgan_decoder_256", f"B{batch}", make_inputs, impls, fwd_bytes=None,
                bwd_bytes=None, tolerance=dict(scaled_atol=1e-4, rtol=1e-4))
