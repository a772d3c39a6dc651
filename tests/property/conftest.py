"""Hypothesis profiles of the property suite, and its per-op tally.

HROPS_PROPERTY_PROFILE selects the profile: "ci" (default; derandomized, so
every run draws the same examples, and few of them) or "large" (random,
200 examples per test, failures printed with a @reproduce_failure blob).
HROPS_PROPERTY_EXAMPLES=N overrides the number of examples per test.
"""
import os

from hypothesis import HealthCheck, settings

from .harness import RESULTS

# No example database: derandomized runs need none, and a random run prints
# its failures (with a blob to replay them) instead of writing .hypothesis/.
_COMMON = dict(deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=50, derandomize=True, **_COMMON)
settings.register_profile("large", max_examples=200, print_blob=True, **_COMMON)
_profile = os.environ.get("HROPS_PROPERTY_PROFILE", "ci")
settings.register_profile("selected", settings.get_profile(_profile),
                          max_examples=int(os.environ.get("HROPS_PROPERTY_EXAMPLES") or
                                           settings.get_profile(_profile).max_examples))
settings.load_profile("selected")


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section(f"hrops property cases (profile {_profile}: {settings.default.max_examples} "
               f"examples per test)")
    header = ("op", "impl", "cases", "mismatches", "crashes", "xfail")
    rows = [(op, impl, *(str(counts[k]) for k in header[2:]))
            for (op, impl), counts in sorted(RESULTS.items())]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        tr.write_line("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                                for i, (v, w) in enumerate(zip(row, widths))))
    tr.write_line("cases: examples run (shrinking included); mismatches / crashes: distinct "
                  "failures hypothesis reported (AssertionError / any other exception); "
                  "xfail: those of tests marked xfail (known defects, reported findings)")
