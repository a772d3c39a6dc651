"""The hrops-bench command line: case selection (the default run and
--full), a quick run's outputs (table, JSON with first-call figures,
Markdown report, PNG chart, progress lines, the machine header), and the
README's benchmark command."""
import json
import pathlib
import re
import shlex

import pytest

from hrops.bench import __main__ as cli
from hrops.bench import charts
from model_cases import CASES

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_default_run_selects_one_case_per_op_family_and_the_models():
    selected, notes = cli.select(CASES, list(CASES))
    by_family = {}
    for case in selected:
        by_family.setdefault(case.family, []).append(case.op)
    for family in CASES:
        ops = {case.op for case in CASES[family]()}
        named = cli.DEFAULT_RUN.get(family)
        assert named is None or set(named) <= ops, f"DEFAULT_RUN names ops {family} lacks"
        if family in cli.LEFT_OUT:
            assert family not in by_family and any(family in n for n in notes)
        else:
            assert by_family[family] == list(named or [CASES[family]()[0].op])
    # The whole models the default run compares with their reference-layer versions.
    assert {"mobilestylegan_1024", "sean_generator", "s2fgan_decoder_256"} \
        <= {case.op for case in selected}
    assert len(selected) == len({(case.op, case.size) for case in selected})


def test_full_selects_every_case():
    selected, notes = cli.select(CASES, list(CASES), full=True)
    assert [(c.op, c.size) for c in selected] == \
        [(c.op, c.size) for family in CASES for c in CASES[family]()] and not notes


def test_defaults_of_the_default_run_and_of_full(monkeypatch):
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    default = cli._parse([], CASES, "run.py")
    full = cli._parse(["--full"], CASES, "run.py")
    assert default.threads == [cli.torch.get_num_threads()] and full.threads == [1, 2]
    assert (default.budget, full.budget) == (cli.DEFAULT_BUDGET_S, cli.FULL_BUDGET_S)
    with pytest.raises(SystemExit):
        cli._parse(["--compile", "--no-compile"], CASES, "run.py")


def test_impls_selects_the_timed_rows(tmp_path):
    path = tmp_path / "out.json"
    status = cli.main(["--ops", "fused_bias_leaky_relu", "--quick", "--threads", "1", "--modes",
                       "fwd", "--budget", "0.01", "--impls", "hrops", "--json", str(path)])
    rows = json.loads(path.read_text())["rows"]
    assert status == 0 and rows and {r["impl"] for r in rows} == {"hrops"}


def test_a_quick_run_writes_table_report_and_charts(tmp_path, capsys):
    path = tmp_path / "run.json"
    status = cli.main(["--ops", "haar,fused_bias_leaky_relu", "--quick", "--threads", "1",
                       "--budget", "0.01", "--json", str(path)], cases=CASES)
    out, err = capsys.readouterr()
    assert status == 0
    # The header names the CPU, its ISA, the thread count, copy bandwidth and GEMM rate.
    assert re.search(r"^CPU: .+, ISA \w+, \d+ cores", out, re.M)
    assert re.search(r"^1 thread: copy [\d.]+ GB/s .*fp32 GEMM \d+ GFLOP/s", out, re.M)
    assert "torch.compile rows: off (--compile adds them" in out
    # Progress: measurement k of n, and the time so far.
    progress = re.findall(r"^\[(\d+)/(\d+)\] (\w+): .*elapsed \d+ s$", err, re.M)
    assert progress and progress[-1][0] == progress[-1][1]
    assert {family for _, _, family in progress} == {"haar", "fused_bias_leaky_relu"}
    assert "first ms" in out and "first peak MiB" in out

    rows = json.loads(path.read_text())["rows"]
    assert all(r["first_ms"] > 0 for r in rows)
    assert {r["family"] for r in rows} == {"haar", "fused_bias_leaky_relu"}
    report = (tmp_path / "run.md").read_text()
    assert "ISA" in report and "| first ms |" in report.replace("  ", " ")
    if charts.available():
        assert "![haar" in report
        png = tmp_path / "run-haar.png"
        assert png.read_bytes().startswith(b"\x89PNG")
    else:
        assert charts.MISSING in report


def _readme_command(marker):
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```\n<!-- /{marker} -->", text, re.S)
    assert block, f"README.md has no {marker} block"
    return block.group(1)


def test_readme_benchmark_command_is_the_default_run():
    """The README's benchmark command installs like its test command, with
    the bench extra, and runs benchmarks/run.py with no options: the default
    run this module tests."""
    bench, test = _readme_command("bench-command"), _readme_command("test-command")
    install = test.split(" && .venv/bin/pytest")[0].replace('".[test]"', '".[bench]"')
    assert bench == f"{install} && .venv/bin/python benchmarks/run.py"
    assert shlex.split(bench)[-1] == "benchmarks/run.py"


def test_bench_extra_has_the_chart_dependency():
    text = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^bench = \[(.*?)\]", text, re.M | re.S)
    assert extra and '"matplotlib"' in extra.group(1)
