"""Export of the models on hrops: torch.export.export keeps the hrops ops
(custom ops with fake kernels) and runs like the eager model; ONNX files from
hrops.export.to_onnx hold standard ONNX operators only and onnxruntime (and
OpenVINO, when installed) computes what eager PyTorch does."""
import pytest
import torch

import hrops.export
from hrops import _backends
from pipeline_models import MODELS
from python_models._impl import use_impl

pytestmark = pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")


def _fused(name):
    """MobileStyleGAN with its demodulation folded into the weights."""
    model, inputs = MODELS[name]()
    return hrops.nn.fuse_demodulation(model), inputs


def _build(name):
    return _fused("mobilestylegan") if name == "mobilestylegan-fused" else MODELS[name]()


HROPS_OPS = {"mobilestylegan": {"modulated_dwconv2d", "modulated_idwt_upsample",
                                "haar_idwt_packed"},
             "s2fgan": {"fused_bias_leaky_relu", "upfirdn2d"},
             "sean": {"region_avg_pool", "region_conv_gather", "ace_modulate"}}


@pytest.mark.parametrize("name", ["mobilestylegan", "mobilestylegan-fused", "s2fgan", "sean"])
def test_torch_export_keeps_the_hrops_ops(name):
    model, inputs = _build(name)
    # The kernels by name: "auto" runs fused_bias_leaky_relu's reference on
    # these small models' tensors.
    use_impl(model, "cpu")
    program = torch.export.export(model, inputs)
    ops = {n.target.name().split("::")[1].split(".")[0] for n in program.graph.nodes
           if n.op == "call_function" and str(n.target).startswith("hrops.")}
    assert HROPS_OPS[name.split("-")[0]] <= ops
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*inputs), model(*inputs), rtol=0, atol=0)


def _relative_error(got, want):
    return (torch.as_tensor(got) - want).abs().max().item() / want.abs().max().item()


@pytest.mark.parametrize("name", ["mobilestylegan", "mobilestylegan-fused", "s2fgan"])
def test_onnx_export_runs_in_onnxruntime_like_eager(name, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, inputs = _build(name)
    path = tmp_path / f"{name}.onnx"
    hrops.export.to_onnx(model, inputs, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}  # standard operators only
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
    with torch.no_grad():
        want = model(*inputs)
    assert _relative_error(got, want) <= 1e-4


def test_onnx_export_in_openvino(tmp_path):
    ov = pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    model, inputs = MODELS["s2fgan"]()
    path = tmp_path / "s2fgan.onnx"
    hrops.export.to_onnx(model, inputs, path)
    # OpenVINO computes in bfloat16 by default on CPUs with native bfloat16
    # (AMX, AVX512-BF16): ask for float32, which the comparison is about.
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled([x.numpy() for x in inputs])[compiled.output(0)]
    with torch.no_grad():
        assert _relative_error(got, model(*inputs)) <= 1e-4


@torch.library.custom_op("hrops_test::opaque", mutates_args=())
def _opaque(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


_opaque.register_fake(lambda x: torch.empty_like(x))


class _Opaque(torch.nn.Module):
    def forward(self, x):
        return _opaque(hrops.fused_bias_leaky_relu(x))


def test_an_operator_without_onnx_translation_is_named():
    with pytest.raises(ValueError, match="hrops_test.opaque"):
        hrops.export.export_reference(_Opaque(), (torch.randn(2, 3),))


def test_export_reference_leaves_no_hrops_op_and_restores_the_impls():
    model, inputs = MODELS["s2fgan"]()
    program = hrops.export.export_reference(model, inputs)
    assert not [n for n in program.graph.nodes if "hrops" in str(n.target)]
    assert _backends.resolve("upfirdn2d", None, torch.device("cpu")) == "cpu"
