"""The CPU kernels' lower ISA paths on this machine: HROPS_CPU_ISA caps the
runtime dispatch (csrc/cpu/isa.h), so an AVX-512 machine also runs the AVX2
and baseline x86-64 code that AVX2-only CPUs (AMD Zen 1-3) and others
take. Each level reruns the kernel tests of every op family with an
ISA-specific path against the references."""
import os
import pathlib
import subprocess
import sys

import pytest
import torch

HERE = pathlib.Path(__file__).parent
# The op families whose C++ kernels branch on cpu_has_avx2_fma / cpu_has_avx512f.
KERNEL_TESTS = ["test_haar.py", "test_region.py", "test_region_conv.py",
                "test_region_classes.py", "test_fused_bias_leaky_relu.py",
                "test_upfirdn2d.py", "test_gates.py", "test_ace_modulate.py",
                "test_modulated_ops.py", "test_patchmatch.py"]


def _run(args, level, timeout, cwd):
    # Run outside the checkout: from its root, `python -m` would import the
    # source tree's hrops, which has no built extension under `pip install .`.
    env = {**os.environ, "HROPS_CPU_ISA": level}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


@pytest.mark.parametrize("level", ["avx2", "baseline"])
def test_kernels_match_the_references_at_a_lower_isa(level, tmp_path):
    if level == "avx2" and torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU has no AVX2: the avx2 cap changes nothing")
    done = _run(["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m",
                 "not triton_interp and not compile", *(str(HERE / t) for t in KERNEL_TESTS)],
                level, timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_a_bad_level_is_an_error_naming_the_variable(tmp_path):
    done = _run(["-c", "import hrops"], "sse9", timeout=120, cwd=tmp_path)
    assert done.returncode != 0 and "HROPS_CPU_ISA must be avx512, avx2 or baseline" in done.stderr
