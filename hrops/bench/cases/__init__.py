"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import haar, mobilestylegan, patchmatch

CASES = {
    "haar": haar.cases,
    "mobilestylegan": mobilestylegan.cases,
    "patchmatch": patchmatch.cases,
}
