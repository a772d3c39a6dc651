"""upfirdn2d under pytest-benchmark; cases from hrops.bench.cases.upfirdn2d,
parametrized by conftest.pytest_generate_tests."""
OP = "upfirdn2d"


def test_upfirdn2d(bench_case, run_case):
    run_case(*bench_case)
