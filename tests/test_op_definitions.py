"""How the ops are defined (hrops.ops._define): one schema per op, one name
from the public op to its kernel, backward ops named _<op>_backward, the
composite ops' opcheck, and a library that stands alone (no import of the
model zoo)."""
import pathlib
import subprocess
import sys

import pytest
import torch

import hrops
from hrops import _backends
from hrops.ops import conv_gru, recurrent_cells
from hrops.ops._define import kernel_schema

pytestmark = pytest.mark.skipif(not _backends.HAS_CPU_KERNELS, reason="hrops._C not built")

ROOT = pathlib.Path(hrops.__file__).parent
# Kernels that are not an op of their own: the CPU output cache's controls, the
# CUDA build's version, and the tap labels that region_classes' CUDA path groups.
KERNEL_ONLY = {"empty_cache", "cached_bytes", "cuda_runtime_version", "region_tap_labels"}
COMPOSITE = {"conv_gru_pass", "lstu_cell", "stu_bn_cell", "stu_cell"}


def _names(namespace):
    return {n for n in dir(getattr(torch.ops, namespace))
            if not n.startswith("__") and isinstance(getattr(getattr(torch.ops, namespace), n),
                                                     torch._ops.OpOverloadPacket)}


def _args(schema):
    return [(a.name, str(a.type).replace("SymInt", "int")) for a in schema.arguments]


def test_every_kernel_has_its_op_and_every_op_its_kernel():
    kernels, ops = _names("hrops_C"), _names("hrops")
    assert kernels - KERNEL_ONLY == ops - COMPOSITE
    assert COMPOSITE <= ops


@pytest.mark.parametrize("name", sorted(_names("hrops_C") - KERNEL_ONLY)
                         if _backends.HAS_CPU_KERNELS else [])
def test_op_schema_is_its_kernel_schema_plus_impl(name):
    op = getattr(torch.ops.hrops, name).default._schema
    kernel = getattr(torch.ops.hrops_C, name).default._schema
    assert _args(op) == _args(kernel) + [("impl", "str")]
    assert [str(r.type) for r in op.returns] == [str(r.type) for r in kernel.returns]
    assert kernel_schema(name).endswith(f"str impl) -> {str(kernel).split(') -> ', 1)[1]}")


def test_backward_ops_are_named_after_their_op():
    ops = _names("hrops")
    for name in ops:
        if name.startswith("_"):
            assert name.endswith("_backward") and name[1:-len("_backward")] in ops, name
        else:
            assert not name.endswith("_backward"), name


def _lstu_args(channels_last):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    d, c_prev, a = 4, 3, 2
    return (r(2, d, 6, 8), r(2, c_prev, 3, 4), r(2, a), r(c_prev + a, d, 4, 4), r(d),
            r(d, d, 1, 1), r(d), r(2 * d, d, 3, 3), r(2 * d), 0, channels_last, "cpu")


def _stu_args(channels_last):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    e, d, c_prev, a = 3, 4, 5, 2
    return (r(2, e, 6, 8), r(2, c_prev, 3, 4), r(2, a), r(c_prev + a, d, 4, 4), r(d),
            r(2 * d, e + d, 3, 3), r(2 * d), r(d, e + d, 3, 3), r(d), channels_last, "cpu")


@pytest.mark.parametrize("channels_last", [False, True])
def test_composite_ops_opcheck(channels_last):
    torch.library.opcheck(recurrent_cells._lstu_cell, _lstu_args(channels_last))
    torch.library.opcheck(recurrent_cells._stu_cell, _stu_args(channels_last))
    g = torch.Generator().manual_seed(2)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    torch.library.opcheck(conv_gru._conv_gru_pass, (r(2, 3, 5, 6), r(2, 4, 5, 6), r(6, 7, 1, 3),
                                                    r(6), r(3, 7, 1, 3), None, [0, 1], "cpu"))


@pytest.mark.parametrize("op,args", [("_lstu_cell", _lstu_args), ("_stu_cell", _stu_args)])
def test_cell_gradients(op, args):
    fn = getattr(recurrent_cells, op)
    inputs = args(True)
    tensors = [i for i in inputs if isinstance(i, torch.Tensor)]

    def first_two(*ts):
        it = iter(ts)
        return fn(*(next(it) if isinstance(i, torch.Tensor) else i for i in inputs))[:2]
    assert torch.autograd.gradcheck(first_two, tensors)


def test_the_library_does_not_import_the_model_zoo():
    sources = [p for p in ROOT.rglob("*.py") if "python_models" in p.read_text()]
    offenders = [str(p.relative_to(ROOT)) for p in sources
                 if any(line.lstrip().startswith(("import python_models", "from python_models"))
                        or "import_module(\"python_models" in line
                        for line in p.read_text().splitlines())]
    assert offenders == []
    code = ("import sys, hrops, hrops.nn, hrops.bench.cases, hrops.bench.__main__; "
            "bad = [m for m in sys.modules if m.startswith('python_models')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
