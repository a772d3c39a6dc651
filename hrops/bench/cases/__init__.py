"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import haar
from . import region
from . import sean

CASES = {
    "haar": haar.cases,
    "region": region.cases,
    "sean": sean.cases,
}
