"""Benchmarks of hrops' ops against the reference, torch.compile(reference)
and peer libraries (`hrops-bench`, `python -m hrops.bench`).

harness.py measures (op-agnostic), report.py prints and saves, and each op
adds a module of cases under hrops.bench.cases; benchmarks/ runs the same
cases under pytest-benchmark.
"""
