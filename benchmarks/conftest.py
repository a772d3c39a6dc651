"""pytest-benchmark suite setup: thread count, size set, and the
parametrization of test_bench.py over every family's cases (model_cases.CASES:
hrops.bench.cases and benchmarks/model_cases): family x size x device x impl
x mode. `-k <family>` selects a family.

Environment:
  HROPS_BENCH_THREADS     torch.set_num_threads for the whole run (default 1)
  HROPS_BENCH_QUICK=1|0   the small smoke-test sizes (default: on under
                          --benchmark-disable, the correctness-only CI run)
  HROPS_BENCH_NO_COMPILE=1  skip the torch.compile impls
  HROPS_BENCH_DEFAULT_MALLOC=1  keep glibc's malloc defaults (see
                          hrops/bench/allocator.py; by default freed memory is kept)
"""
import os
import pathlib
import sys
from time import perf_counter

import pytest
import torch
from pytest_benchmark.plugin import pytest_benchmark_group_stats as default_group_stats

from hrops.bench import allocator, harness

HERE = str(pathlib.Path(__file__).resolve().parent)
if HERE not in sys.path:  # pytest's prepend import mode adds it, importlib mode doesn't
    sys.path.insert(0, HERE)
from model_cases import CASES  # noqa: E402

THREADS = int(os.environ.get("HROPS_BENCH_THREADS", "1"))
NO_COMPILE = os.environ.get("HROPS_BENCH_NO_COMPILE") == "1"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SLOW_CALL_S = 0.05  # above this, a fixed number of pedantic rounds instead of calibration


def pytest_configure(config):
    torch.set_num_threads(THREADS)
    if os.environ.get("HROPS_BENCH_DEFAULT_MALLOC") != "1":
        allocator.keep_freed_memory()


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    quick = os.environ.get("HROPS_BENCH_QUICK",
                           "1" if metafunc.config.getoption("benchmark_disable") else "0") == "1"
    params = []
    for case in (case for make in CASES.values() for case in make(quick=quick)):
        for device in DEVICES:
            for name, impl in case.impls(torch.device(device), case.dtype).items():
                marks = [pytest.mark.compile] if impl.compiled else []
                if impl.fn is None:
                    marks.append(pytest.mark.skip(reason=impl.why_unavailable))
                elif impl.compiled and NO_COMPILE:
                    marks.append(pytest.mark.skip(reason="HROPS_BENCH_NO_COMPILE=1"))
                for mode in case.modes:
                    params.append(pytest.param((case, device, name, impl, mode), marks=marks,
                                               id=f"{case.op}-{case.size}-{device}-{name}-{mode}"))
    metafunc.parametrize("bench_case", params)


def pytest_benchmark_group_stats(config, benchmarks, group_by):
    """pytest-benchmark's grouping, with each group's copy floor and each
    impl's saved MiB (from extra_info) in its header. A plain function: the
    `pytest-benchmark compare` command calls it too, from a conftest.py in
    its working directory."""
    groups = default_group_stats(config=config, benchmarks=benchmarks, group_by=group_by)
    return [(_with_floor_and_saved(name, benches), benches) for name, benches in groups]


def _with_floor_and_saved(name, benches):
    """`name; floor F ms; saved MiB impl S, ...`: the group's smallest floor,
    and each impl's saved MiB (values of compared runs that differ joined by /)."""
    infos = [b.get("extra_info") or {} for b in benches]
    floors = [i["floor_ms"] for i in infos if i.get("floor_ms")]
    saved = {}
    for i in infos:
        if i.get("saved_bytes") is not None:
            saved.setdefault(i["impl"], {})[f"{i['saved_bytes'] / 2 ** 20:.1f}"] = None
    parts = [name] if name else []
    if floors:
        parts.append(f"floor {min(floors):.3f} ms")
    if saved:
        parts.append("saved MiB " + ", ".join(f"{impl} {'/'.join(values)}"
                                              for impl, values in saved.items()))
    return "; ".join(parts) or name


_current = {}  # inputs and ref results of the current (case, device, mode)


def _prepared(case, device, mode):
    key = (id(case), device, mode)
    if key not in _current:
        _current.clear()
        inputs = case.make_inputs(torch.device(device), case.dtype)
        ref = case.impls(torch.device(device), case.dtype)["ref"]
        _current[key] = inputs, harness.reference(ref, inputs, mode, case.tolerance, case.grad_inputs)
    return _current[key]


@pytest.fixture
def run_case(benchmark):
    """Checks one (case, device, impl, mode) against ref (a failure fails the
    test), benchmarks it, and records floor and memory in extra_info."""
    def run(case, device, name, impl, mode):
        inputs, expected = _prepared(case, device, mode)
        # ref's first call on the inputs was the oracle call (as in hrops-bench)
        bench = harness.Bench(impl, inputs, mode, expected,
                              expected.first if name == "ref" else None)
        start = perf_counter()
        bench()
        benchmark.group = f"{case.op} {case.size} {device} {mode}"
        if perf_counter() - start > SLOW_CALL_S:
            benchmark.pedantic(bench, rounds=5, iterations=1, warmup_rounds=1)
        else:
            benchmark(bench)
        floor = harness.floor_ms(case, mode, torch.device(device))
        benchmark.extra_info.update(
            impl=name, threads=THREADS, dtype=str(case.dtype), floor_ms=floor,
            ideal_bytes=case.ideal_bytes(mode),
            saved_bytes=harness.saved_bytes(bench) if mode == "fwdbwd" else None,
            peak_bytes=harness.peak_bytes(bench) if impl.memory_measured else None,
            first_ms=bench.first.ms,
            first_peak_bytes=bench.first.peak_bytes if impl.memory_measured else None)
        if benchmark.stats is not None and floor:  # stats: None under --benchmark-disable
            benchmark.extra_info["x_floor"] = benchmark.stats.stats.min * 1e3 / floor
    return run
