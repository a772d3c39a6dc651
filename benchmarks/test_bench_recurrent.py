"""LSTU / STU cells under pytest-benchmark; cases from
hrops.bench.cases.recurrent, parametrized by conftest.pytest_generate_tests."""
OP = "recurrent"


def test_recurrent(bench_case, run_case):
    run_case(*bench_case)
