"""Fused bias + leaky ReLU under pytest-benchmark; cases from
hrops.bench.cases.bias_act, parametrized by conftest.pytest_generate_tests."""
OP = "fused_bias_leaky_relu"


def test_fused_bias_leaky_relu(bench_case, run_case):
    run_case(*bench_case)
