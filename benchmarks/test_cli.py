"""The hrops-bench command line: a quick run of one family writes JSON rows
for the impls asked for."""
import json

from hrops.bench.__main__ import main


def test_impls_selects_the_timed_rows(tmp_path):
    path = tmp_path / "out.json"
    status = main(["--ops", "fused_bias_leaky_relu", "--quick", "--threads", "1", "--modes", "fwd",
                   "--no-compile", "--budget", "0.01", "--impls", "hrops", "--json", str(path)])
    rows = json.loads(path.read_text())["rows"]
    assert status == 0 and rows and {r["impl"] for r in rows} == {"hrops"}
