"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case,
one module per family, named after it, with a `cases(quick=False)`
function. A new op adds its module here; nothing else lists it.

Cases that need the model zoo (whole models, and ops whose baseline is a
model's own module) live in the checkout's benchmarks/model_cases, which
adds them with merged(); benchmarks/run.py runs them all.
"""
import dataclasses
import importlib
import pkgutil


def _family(name, makes):
    """cases(quick) of the family `name`: the cases of each of `makes` in
    turn, with Case.family set."""
    def cases(quick=False):
        return [dataclasses.replace(case, family=name)
                for make in makes for case in make(quick=quick)]
    return cases


CASES = {m.name: _family(m.name, [importlib.import_module(f"{__name__}.{m.name}").cases])
         for m in pkgutil.iter_modules(__path__)}


def merged(*registries):
    """One registry of the families of all `registries` (each like CASES), in
    order of first appearance; a family in several gets their cases in turn."""
    makers = {}
    for registry in registries:
        for name, make in registry.items():
            makers.setdefault(name, []).append(make)
    return {name: _family(name, makes) for name, makes in makers.items()}
