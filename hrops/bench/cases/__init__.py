"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case,
one module per family, named after it, with a `cases(quick=False)`
function. A new op adds its module here; nothing else lists it.

Cases that need the model zoo (whole models, and ops whose baseline is a
model's own module) live in the checkout's benchmarks/model_cases, which
adds them with merged(); benchmarks/run.py runs them all.
"""
import importlib
import pkgutil

CASES = {m.name: importlib.import_module(f"{__name__}.{m.name}").cases
         for m in pkgutil.iter_modules(__path__)}


def merged(*registries):
    """One registry of the families of all `registries` (each like CASES), in
    order of first appearance; a family in several gets their cases in turn."""
    makers = {}
    for registry in registries:
        for name, make in registry.items():
            makers.setdefault(name, []).append(make)

    def family(makes):
        if len(makes) == 1:
            return makes[0]
        return lambda quick=False: [case for make in makes for case in make(quick=quick)]
    return {name: family(makes) for name, makes in makers.items()}
