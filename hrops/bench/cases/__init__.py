"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import haar, mobilestylegan
from . import recurrent

CASES = {
    "haar": haar.cases,
    "mobilestylegan": mobilestylegan.cases,
    "recurrent": recurrent.cases,
}
