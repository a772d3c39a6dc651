"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import haar
from . import region

CASES = {
    "haar": haar.cases,
    "region": region.cases,
}
