"""Benchmarks of hrops' ops against the reference, torch.compile(reference)
and peer libraries (`hrops-bench`, `python -m hrops.bench`).

harness.py measures (op-agnostic), report.py prints and saves, and each op
adds a module of cases under hrops.bench.cases. The checkout's benchmarks/
adds the model cases (benchmarks/model_cases, run by benchmarks/run.py) and
runs all of them under pytest-benchmark too.
"""
