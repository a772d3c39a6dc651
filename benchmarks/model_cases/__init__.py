"""Benchmark cases that need the model zoo (python_models): whole models, and
ops whose baseline is a model's own module. MODEL_CASES[name](quick) -> list
of harness.Case, like hrops.bench.cases.CASES; a family in both (region,
mobilestylegan) runs the op cases first. CASES: both, for benchmarks/run.py
and the pytest-benchmark suite."""
import pathlib
import sys

from hrops.bench.cases import CASES as OP_CASES
from hrops.bench.cases import merged

from . import cocosnet, coogan, mobilestylegan, recurrent, region, s2fgan, sean, stgan

# python_models from this checkout where it is not installed; appended, so an
# installed hrops still comes first.
_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

MODEL_CASES = {
    "mobilestylegan": mobilestylegan.cases,
    "region": region.cases,
    "sean": sean.cases,
    "cocosnet": cocosnet.cases,
    "s2fgan": s2fgan.cases,
    "recurrent": recurrent.cases,
    "coogan": coogan.cases,
    "stgan": stgan.cases,
}

CASES = merged(OP_CASES, MODEL_CASES)
