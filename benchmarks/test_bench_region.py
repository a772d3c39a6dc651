"""SEAN region ops under pytest-benchmark; cases from hrops.bench.cases.region,
parametrized by conftest.pytest_generate_tests."""
OP = "region"


def test_region(bench_case, run_case):
    run_case(*bench_case)
