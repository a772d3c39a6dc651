"""CoCosNet v2's correspondence network forward under pytest-benchmark; cases
from hrops.bench.cases.cocosnet, parametrized by conftest.pytest_generate_tests."""
OP = "cocosnet"


def test_cocosnet(bench_case, run_case):
    run_case(*bench_case)
