"""Implementation choice (impl=, HROPS_IMPL) and build_info."""
import os
import subprocess
import sys

import pytest
import torch

import hrops


def test_build_info_reports_what_was_built():
    info = hrops.build_info()
    for key in ("cpu_kernels", "cuda_kernels", "cuda_version", "cuda_arch_list", "triton", "torch"):
        assert key in info
    assert info["cpu_kernels"] is True  # the CPU extension is always built
    if info["cuda_kernels"]:
        assert info["cuda_version"] and info["cuda_arch_list"]


def test_a_cuda_build_imports_its_cuda_kernels():
    """With CUDA kernels built, hrops._C_cuda must load, GPU or not: an undefined
    symbol (a launch_* declared in <op>_cuda.cpp with another signature than its
    definition in <op>_kernels.cu) fails here instead of silently falling back."""
    from hrops import _build_config
    if not _build_config.WITH_CUDA:
        pytest.skip("built without CUDA kernels")
    assert hrops._backends.HAS_CUDA_KERNELS, hrops._backends.CUDA_IMPORT_ERROR


def test_auto_picks_the_cpu_kernel_for_cpu_tensors():
    assert hrops._backends.resolve("haar_dwt", "auto", torch.device("cpu")) == "cpu"
    assert hrops._backends.resolve("haar_dwt", "auto", torch.device("meta")) == "ref"


def _run(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_hrops_impl_environment_variable():
    code = "import hrops; print(hrops.build_info()['default_impl'])"
    assert _run(code, HROPS_IMPL="ref").stdout.strip() == "ref"
    bad = _run(code, HROPS_IMPL="fastest")
    assert bad.returncode != 0 and "HROPS_IMPL must be one of" in bad.stderr
