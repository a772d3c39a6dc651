"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import (bias_act, cocosnet, haar, mobilestylegan, patchmatch, recurrent, region, s2fgan,
               sean, upfirdn2d)

CASES = {
    "haar": haar.cases,
    "mobilestylegan": mobilestylegan.cases,
    "region": region.cases,
    "sean": sean.cases,
    "patchmatch": patchmatch.cases,
    "cocosnet": cocosnet.cases,
    "fused_bias_leaky_relu": bias_act.cases,
    "upfirdn2d": upfirdn2d.cases,
    "s2fgan": s2fgan.cases,
    "recurrent": recurrent.cases,
}
