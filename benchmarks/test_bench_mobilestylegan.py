"""MobileStyleGAN ops and generator under pytest-benchmark; cases from
hrops.bench.cases.mobilestylegan, parametrized by conftest.pytest_generate_tests."""
OP = "mobilestylegan"


def test_mobilestylegan(bench_case, run_case):
    run_case(*bench_case)
