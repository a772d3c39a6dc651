"""Every benchmark case (hrops.bench.cases and benchmarks/model_cases) under
pytest-benchmark, parametrized by conftest.pytest_generate_tests; under
--benchmark-disable each runs once at its quick size and is checked against
its reference."""


def test_bench(bench_case, run_case):
    run_case(*bench_case)
