"""CoCosNet v2 PatchMatch step and warp under pytest-benchmark; cases from
hrops.bench.cases.patchmatch, parametrized by conftest.pytest_generate_tests."""
OP = "patchmatch"


def test_patchmatch(bench_case, run_case):
    run_case(*bench_case)
