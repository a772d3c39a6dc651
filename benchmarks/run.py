"""hrops-bench with the model cases (benchmarks/model_cases) added: the same
options and outputs (table, JSON, Markdown report, PNG charts). From a
checkout with hrops and python_models importable:

    python benchmarks/run.py                  # the default run, a few minutes
    python benchmarks/run.py --full           # every case, threads 1,2, torch.compile
    python benchmarks/run.py [--ops sean,coogan] [--threads 1] [--quick] ...
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # model_cases, also under -P

from hrops.bench.__main__ import main  # noqa: E402
from model_cases import CASES  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(cases=CASES, prog="benchmarks/run.py"))
