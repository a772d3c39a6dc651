"""benchmarks/gpu_check.sh without a GPU: its dry run (the slow CPU
stand-ins skipped) and its report of a GPU run's logs and results."""
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from hrops import _backends

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = ["env", "build", "tests", "large", "memcheck", "racecheck", "memcheck-triton", "models",
         "bench", "bench-compile"]


def _report_module():
    spec = importlib.util.spec_from_file_location("gpu_check_report",
                                                  ROOT / "benchmarks" / "gpu_check" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not _backends.HAS_CPU_KERNELS,
                    reason="without built CPU kernels the dry run builds them (minutes)")
def test_dry_run(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_DRY_RUN="1")
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path),
         "--skip", "tests,memcheck,models,bench", "--deadline", "240"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in tmp_path.iterdir()} == {
        "report.md", "gpu_check.json", "build.log", "large.log", "sanitizer.log"}

    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry_run"] and result["build_info"]["cpu_kernels"]
    steps = {s["name"]: s for s in result["steps"]}
    assert list(steps) == STEPS
    assert steps["env"]["status"] == "ok" and "torch" in steps["env"]["figures"]
    assert steps["build"]["status"].startswith("skipped: hrops._C imports")
    for name in ("tests", "memcheck", "models", "bench"):
        assert steps[name]["status"] == "skipped: --skip"
    assert steps["large"]["status"] == "skipped: no GPU"
    assert re.match(r"cpu stand-in: \d+ tests collected", steps["large"]["figures"])
    assert steps["racecheck"]["status"] == "skipped: no GPU"
    assert steps["racecheck"]["figures"].startswith("cpu stand-in: ")
    assert steps["racecheck"]["figures"].endswith(" driver calls")
    assert steps["memcheck-triton"]["status"] == "skipped: no GPU"
    assert steps["bench-compile"]["status"] == "skipped: no GPU"

    # The summary table comes last: a header, one row per step, a verdict.
    lines = proc.stdout.strip().splitlines()
    table = lines[-len(STEPS) - 3:]
    assert table[0].split() == ["step", "status", "seconds", "key", "figures"]
    assert [row.split()[0] for row in table[1:-2]] == STEPS
    assert table[-1].startswith("all steps passed or skipped; report: ")
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# hrops GPU check (dry run, no GPU)")
    assert "| racecheck | skipped: no GPU |" in report


def test_report_of_a_gpu_run(tmp_path, capsys):
    """The figures, failures and tables of a (made-up) GPU run's results."""
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    steps = [("env", "ok", 3, "build.log"), ("build", "ok", 120, "build.log"),
             ("tests", "FAILED (rc 1)", 80, "tests.log"), ("large", "timeout (90s)", 90, "large.log"),
             ("memcheck", "FAILED (rc 9)", 40, "sanitizer.log"),
             ("racecheck", "ok", 30, "sanitizer.log"), ("memcheck-triton", "ok", 45, "sanitizer.log"),
             ("models", "ok", 20, "bench.log"),
             ("bench", "ok", 60, "bench.log"), ("bench-compile", "skipped: out of time", 0, "")]
    (work / "steps.tsv").write_text("".join(f"{n}\t{s}\t{t}\t{log}\t\n" for n, s, t, log in steps))
    (work / "env.json").write_text(json.dumps({"summary": "NVIDIA H200 (sm 9.0, 139.8 GiB)"}))
    info = dict(cpu_kernels=True, cuda_kernels=True, cuda_arch_list="9.0", torch="2.11.0")
    (out / "build.log").write_text(f"===== env =====\n===== build =====\nbuilding\n"
                                   f"build_info {json.dumps(info)}\n")
    (out / "tests.log").write_text(
        "===== tests =====\n[gw0] PASSED tests/test_haar.py::test_a[cuda-cuda]\n"
        "FAILED tests/test_gates.py::test_b[triton-cuda] - AssertionError: no\n"
        "=========== 1 failed, 300 passed, 12 skipped in 75.20s ===========\n")
    (out / "large.log").write_text("===== large =====\n[gw0] PASSED tests/test_large_index.py::t1\n"
                                   "[gw0] PASSED tests/test_large_index.py::t2\n")
    (out / "sanitizer.log").write_text(
        "===== memcheck =====\n========= Invalid __global__ read of size 4 bytes\n"
        "=========     at hrops::(anonymous namespace)::haar_dwt_kernel<float>(...)\n"
        "========= ERROR SUMMARY: 1 error\n===== racecheck =====\nsanitize_driver: 106 calls\n"
        "========= ERROR SUMMARY: 2 errors\n===== memcheck-triton =====\n"
        "sanitize_driver: 211 calls on cuda (triton)\n========= ERROR SUMMARY: 0 errors\n")
    (out / "bench.log").write_text("===== models =====\nok\n===== bench =====\nrows\n")
    (work / "models.json").write_text(json.dumps([
        dict(model="sean_generator", size="B1", mode="fwd", device="cuda", status="ok",
             max_rel_diff=2e-6, hrops_ms=10.0, ref_ms=30.0, speedup=3.0),
        dict(model="lstu_cell", size="B8", mode="fwdbwd", device="cuda", status="mismatch",
             reason="outputs disagree with ref")]))

    def row(op, impl, ms):
        return dict(op=op, size="B2", mode="fwd", impl=impl, device="cuda", best_ms=ms,
                    x_floor=1.5 if impl == "hrops" else None)
    (work / "bench.json").write_text(json.dumps(dict(
        rows=[row("haar_dwt", "hrops", 1.0), row("haar_dwt", "ref", 4.0),
              row("upfirdn2d", "hrops", 2.0), row("upfirdn2d", "ref", 1.0)],
        skipped=[dict(op="region_conv2d", size="B2", device="cuda", mode="fwd", impl="hrops",
                      reason="Mismatch: outputs disagree", failed=True)])))

    report = _report_module()
    status = report.main(["--out", str(out), "--work", str(work), "--deadline", "480",
                          "--elapsed", "413", "--print-summary"])
    assert status == 1
    result = json.loads((out / "gpu_check.json").read_text())
    figures = {s["name"]: s["figures"] for s in result["steps"]}
    assert figures["build"] == "CUDA kernels yes (arch 9.0), CPU kernels yes, torch 2.11.0"
    assert figures["tests"] == ("1 failed, 300 passed, 12 skipped; first failure: "
                                "FAILED tests/test_gates.py::test_b[triton-cuda]")
    assert figures["large"] == "no summary; per-test lines: 2 passed"
    assert figures["memcheck"] == "1 sanitizer errors, the driver did not finish"
    # an error the exit status missed fails the step all the same
    assert result["steps"][5]["status"] == "FAILED (sanitizer errors)"
    assert figures["racecheck"] == "2 sanitizer errors, 106 driver calls"
    assert figures["memcheck-triton"] == "0 sanitizer errors, 211 driver calls"
    assert figures["models"].startswith("1/2 agree; max rel diff 2.0e-06; ref/hrops geo-mean "
                                        "3.00x; lstu_cell fwdbwd: mismatch")
    assert figures["bench"] == ("4 rows, 1 failed; ref/hrops geo-mean 1.41x over 2 (lowest "
                                "0.50x upfirdn2d B2 fwd)")
    assert result["failed_tests"]["tests"] == ["FAILED tests/test_gates.py::test_b[triton-cuda]"]

    md = (out / "report.md").read_text()
    assert "## tests: failed tests" in md
    assert "========= Invalid __global__ read of size 4 bytes" in md
    assert "## large: end of its log (large.log)" in md
    assert "| lstu_cell | B8 | fwdbwd | mismatch |" in md
    assert "| haar_dwt | B2 | fwd | cuda | 1.000 | 4.000 | - | 4.00x | - | 1.50x |" in md
    assert "- region_conv2d B2 cuda fwd hrops: Mismatch: outputs disagree" in md
    printed = capsys.readouterr().out
    assert printed.strip().endswith(
        f"FAILED: tests, large, memcheck, racecheck; report: {out / 'report.md'}")


def test_racecheck_covers_every_kernel_with_shared_memory():
    """gpu_check.sh's racecheck step runs the op families whose CUDA kernels
    use shared memory: SHARED_MEMORY_OPS names each <family>_kernels.cu
    that declares __shared__, and the sanitize driver has each of them."""
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    listed = set(re.search(r"^SHARED_MEMORY_OPS=(\S+)", script, re.M).group(1).split(","))
    shared = {p.name.removesuffix("_kernels.cu")
              for p in (ROOT / "csrc" / "cuda").glob("*_kernels.cu") if "__shared__" in p.read_text()}
    assert listed == shared
    driver = (ROOT / "benchmarks" / "gpu_check" / "sanitize_driver.py").read_text()
    assert all(f'"{family}":' in driver for family in shared)
