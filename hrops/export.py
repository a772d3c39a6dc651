"""Models built on hrops to ONNX, in one call.

ONNX has no operator for an hrops op, so `to_onnx` traces the model with
every op running its reference (hrops.ref: plain PyTorch, decomposed into
ATen operators that the exporter translates to standard ONNX operators),
then exports with torch.onnx.export(dynamo=True). torch.export.export of a
model keeps the hrops ops as they are (custom ops with fake kernels), for
runtimes that load hrops.

    import hrops.export
    hrops.export.to_onnx(generator, (w,), "generator.onnx")

Needs the `export` extra (onnx, onnxscript; onnxruntime to run the file).
"""
import torch

from . import _backends

# Namespaces whose operators the ONNX exporter translates.
_ONNX_NAMESPACES = ("aten", "prims", "_operator", "builtins", "math")


def _untranslatable(program):
    """The operators of an ExportedProgram that are outside the ATen set."""
    ops = set()
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        namespace = getattr(node.target, "namespace", None) or getattr(node.target, "__module__",
                                                                      "")
        if not str(namespace).split(".")[0] in _ONNX_NAMESPACES:
            ops.add(str(node.target))
    return sorted(ops)


def export_reference(model, example_inputs, *, dynamic_shapes=None):
    """torch.export.export of `model` with every hrops op running its
    reference: an ExportedProgram of ATen operators only (a ValueError names
    any other operator left, e.g. another library's custom op)."""
    with _backends.reference_only():
        program = torch.export.export(model, tuple(example_inputs),
                                      dynamic_shapes=dynamic_shapes)
    program = program.run_decompositions()
    left = _untranslatable(program)
    if left:
        raise ValueError(f"cannot export to ONNX: the model calls operators without an ONNX "
                         f"translation: {', '.join(left)}")
    return program


def to_onnx(model, example_inputs, path, *, dynamic_shapes=None, opset_version=None):
    """Writes `model` (called as model(*example_inputs)) to the ONNX file
    `path` made of standard ONNX operators; returns the torch.onnx.ONNXProgram."""
    program = export_reference(model, example_inputs, dynamic_shapes=dynamic_shapes)
    onnx_program = torch.onnx.export(program, tuple(example_inputs), dynamo=True,
                                     opset_version=opset_version, external_data=False)
    onnx_program.save(str(path))
    return onnx_program
