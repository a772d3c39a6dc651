"""Haar DWT/IDWT under pytest-benchmark; cases from hrops.bench.cases.haar,
parametrized by conftest.pytest_generate_tests."""
OP = "haar"


def test_haar(bench_case, run_case):
    run_case(*bench_case)
