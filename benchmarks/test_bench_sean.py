"""The SEAN generator forward under pytest-benchmark; cases from
hrops.bench.cases.sean, parametrized by conftest.pytest_generate_tests."""
OP = "sean"


def test_sean(bench_case, run_case):
    run_case(*bench_case)
