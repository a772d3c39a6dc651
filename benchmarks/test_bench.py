"""Every benchmark case (hrops.bench.cases and benchmarks/model_cases) under
pytest-benchmark, parametrized by conftest.pytest_generate_tests; under
--benchmark-disable each runs once at its quick size and is checked against
its reference. Also: the floor and saved bytes in the result tables' group
headers."""


def test_bench(bench_case, run_case):
    run_case(*bench_case)


def test_group_headers_show_floor_and_saved_bytes():
    from conftest import _with_floor_and_saved
    bench = [{"extra_info": {"impl": "hrops", "floor_ms": 1.5, "saved_bytes": 2 ** 20}},
             {"extra_info": {"impl": "ref", "floor_ms": 1.25, "saved_bytes": 3 * 2 ** 20}},
             {"extra_info": {"impl": "ref", "floor_ms": 1.25, "saved_bytes": 2 ** 21}}]
    assert _with_floor_and_saved("op B1 cpu fwdbwd", bench) == \
        "op B1 cpu fwdbwd; floor 1.250 ms; saved MiB hrops 1.0, ref 3.0/2.0"
    assert _with_floor_and_saved("model B1 cpu fwd", [{"extra_info": {"impl": "hrops"}}]) == \
        "model B1 cpu fwd"
