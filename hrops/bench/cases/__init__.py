"""Benchmark cases per op family: CASES[name](quick) -> list of harness.Case.
A new op adds a module here and one line below."""
from . import haar, mobilestylegan
from . import bias_act
from . import upfirdn2d
from . import s2fgan

CASES = {
    "haar": haar.cases,
    "mobilestylegan": mobilestylegan.cases,
}
CASES["fused_bias_leaky_relu"] = bias_act.cases
CASES["upfirdn2d"] = upfirdn2d.cases
CASES["s2fgan"] = s2fgan.cases
