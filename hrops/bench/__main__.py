"""hrops-bench: times every registered op's cases (hrops.bench.cases) for
each available implementation, prints a comparison table and writes JSON.
In a checkout, `python benchmarks/run.py` takes the same options and adds
the model cases (benchmarks/model_cases).

  hrops-bench [--ops haar] [--threads 1,2] [--device cpu|cuda|all]
              [--modes fwd,fwdbwd] [--quick] [--budget 1.0] [--no-compile] [--impls hrops,ref]
              [--default-malloc] [--json bench_results/hrops-bench-<timestamp>.json]

Exit status 1 if an implementation disagreed with ref or failed. The JSON
is rewritten after each case, so an interrupted run keeps what it measured.
"""
import argparse
import datetime
import os
import sys

import torch

from . import allocator, harness, report
from .cases import CASES


def _csv(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse(argv, cases, prog):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", type=_csv, default=list(cases),
                   help=f"comma-separated op families (default: all of {','.join(cases)})")
    p.add_argument("--threads", type=lambda s: [int(n) for n in _csv(s)],
                   default=[n for n in (1, 2) if n <= (os.cpu_count() or 1)],
                   help="comma-separated CPU thread counts (default: 1,2 capped at the core count)")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="default: all available")
    p.add_argument("--modes", type=_csv, default=list(harness.MODES),
                   help="comma-separated, of fwd,fwdbwd (default: both)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--budget", type=float, default=1.0,
                   help="seconds of timed runs per measurement (default 1.0)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile impls")
    p.add_argument("--impls", type=_csv, default=None,
                   help="comma-separated impl names to time, e.g. hrops,ref,onnxruntime "
                        "(default: all; ref still runs as the oracle)")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's defaults, which return freed memory to the kernel "
                        "(see hrops/bench/allocator.py)")
    p.add_argument("--json",
                   help="output path (default: bench_results/hrops-bench-<timestamp>.json)")
    args = p.parse_args(argv)
    if unknown := set(args.ops) - set(cases):
        p.error(f"unknown ops {sorted(unknown)}; registered: {sorted(cases)}")
    if unknown := set(args.modes) - set(harness.MODES):
        p.error(f"unknown modes {sorted(unknown)}; choose from {harness.MODES}")
    if not args.threads or min(args.threads) < 1:
        p.error("--threads needs positive integers")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    return args


def main(argv=None, cases=None, prog="hrops-bench"):
    """cases: the registry to run (default CASES; see cases.merged)."""
    cases = CASES if cases is None else cases
    args = _parse(argv, cases, prog)
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device != "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    selected = [case for op in args.ops for case in cases[op](quick=args.quick)]
    machine = report.machine_info(devices)
    machine["malloc_keeps_freed_memory"] = not args.default_malloc and allocator.keep_freed_memory()
    print(report.header(machine), flush=True)

    path = args.json or os.path.join(
        "bench_results", f"hrops-bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    rows, skips = harness.run(
        selected, devices, args.threads, args.modes, args.budget, use_compile=not args.no_compile,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
        on_case=lambda rows, skips: report.write_json(path, machine, vars(args), rows, skips),
        only_impls=args.impls)
    report.add_speedups(rows)
    print()
    print(report.format_table(rows))
    if skips:
        print()
        print(report.format_skips(skips))
    report.write_json(path, machine, vars(args), rows, skips)
    print(f"\nwrote {path}")
    return 1 if any(s.failed for s in skips) else 0


if __name__ == "__main__":
    sys.exit(main())
