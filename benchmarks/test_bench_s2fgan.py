"""The S2FGAN 256^2 decoder under pytest-benchmark; cases from
hrops.bench.cases.s2fgan, parametrized by conftest.pytest_generate_tests."""
OP = "s2fgan"


def test_s2fgan_decoder(bench_case, run_case):
    run_case(*bench_case)
