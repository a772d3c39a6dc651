"""Every CPU kernel's parallel loop goes through hrops::parallel_for
(csrc/cpu/parallel.h), whose workers keep the caller's autograd exclusion:
an at::parallel_for body that calls ATen would reach autograd at 2+ threads
only (modulated_dwconv2d once failed so)."""
import pathlib
import re

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "cpu"


def test_cpu_kernels_use_hrops_parallel_for():
    raw = [f"{path.name}:{n}" for path in sorted(CSRC.glob("*.[ch]*")) if path.name != "parallel.h"
           for n, line in enumerate(path.read_text().splitlines(), 1)
           if re.search(r"\bat::parallel_for\s*\(", line.split("//")[0])]
    assert not raw, f"at::parallel_for outside csrc/cpu/parallel.h: {raw}"
