"""hrops-bench: times the op cases (hrops.bench.cases) in each available
implementation, prints a comparison table and writes JSON, a Markdown report
and a PNG chart per op family. In a checkout, `python benchmarks/run.py`
takes the same options and adds the model cases (benchmarks/model_cases).

  hrops-bench [--full] [--ops haar] [--threads 1,2] [--device cpu|cuda|all]
              [--modes fwd,fwdbwd] [--quick] [--budget 0.3] [--compile | --no-compile]
              [--impls hrops,ref] [--default-malloc]
              [--json bench_results/hrops-bench-<timestamp>.json]

The default run measures one representative case per op family (DEFAULT_RUN)
and the models end to end, at torch's thread count, without the
torch.compile rows: a few minutes on 2 cores. --full measures every case at
1 and 2 threads with torch.compile.

Exit status 1 if an implementation disagreed with ref or failed. The JSON
and the report are rewritten after each case, so an interrupted run keeps
what it measured.
"""
import argparse
import datetime
import os
import pathlib
import sys

import torch

from . import allocator, charts, harness, report
from .cases import CASES

# The default run: in each family, the first case of each op named here; a
# family not named here runs its first case. One op case per family and the
# models end to end (their families live in benchmarks/model_cases and are
# named here too, so the selection is in one place), sized to answer in about
# 3 minutes on 2 cores.
DEFAULT_RUN = {
    "fused_bias_leaky_relu": ("fused_bias_leaky_relu",),
    "haar": ("haar_dwt",),
    "mobilestylegan": ("modulated_dwconv2d", "mobilestylegan_1024"),
    "patchmatch": ("patchmatch_step",),
    "region": ("spade",),
    "upfirdn2d": ("upfirdn2d",),
    "sean": ("sean_generator",),
    "cocosnet": (),
    "s2fgan": ("s2fgan_decoder_256",),
    "recurrent": ("lstu_cell",),
    "coogan": (),
}
# Families the default run leaves out, and why.
LEFT_OUT = {"cocosnet": "one reference call of the 512^2 network takes 40-70 s on 2 cores",
            "coogan": "one edit of a 1024^2 image takes 3-7 s on 2 cores, in each of 3 impls"}
# Impls the default run leaves out unless --impls names them, and why.
DEFAULT_SKIPPED_IMPLS = {"onnxruntime": "its first call exports the model, 10-20 s on 2 cores"}
DEFAULT_BUDGET_S, FULL_BUDGET_S = 0.3, 1.0
COMPILE_COST = "each compiles for 10-60 s on 2 cores"


def _csv(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse(argv, cases, prog):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true",
                   help="every case of the families, at threads 1,2 (capped at the core count), "
                        f"with the torch.compile and onnxruntime rows, budget {FULL_BUDGET_S} s "
                        "(default: one representative case per family at torch's thread count, "
                        f"budget {DEFAULT_BUDGET_S} s)")
    p.add_argument("--ops", type=_csv, default=list(cases),
                   help=f"comma-separated op families (default: all of {','.join(cases)})")
    p.add_argument("--threads", type=lambda s: [int(n) for n in _csv(s)], default=None,
                   help="comma-separated CPU thread counts (default: torch's, "
                        f"{torch.get_num_threads()} here; --full: 1,2 capped at the core count)")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="default: all available")
    p.add_argument("--modes", type=_csv, default=list(harness.MODES),
                   help="comma-separated, of fwd,fwdbwd (default: both)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds of timed runs per measurement (default {DEFAULT_BUDGET_S}, "
                        f"--full: {FULL_BUDGET_S})")
    compile_ = p.add_mutually_exclusive_group()
    compile_.add_argument("--compile", action="store_true",
                          help=f"add the torch.compile rows ({COMPILE_COST}; on with --full)")
    compile_.add_argument("--no-compile", action="store_true",
                          help="skip the torch.compile rows with --full")
    p.add_argument("--impls", type=_csv, default=None,
                   help="comma-separated impl names to time, e.g. hrops,ref,onnxruntime "
                        "(default: all; ref still runs as the oracle)")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's defaults, which return freed memory to the kernel "
                        "(see hrops/bench/allocator.py)")
    p.add_argument("--json",
                   help="output path (default: bench_results/hrops-bench-<timestamp>.json); "
                        "the report and charts go next to it: <path without .json>.md, "
                        "<path without .json>-<family>.png")
    args = p.parse_args(argv)
    if unknown := set(args.ops) - set(cases):
        p.error(f"unknown ops {sorted(unknown)}; registered: {sorted(cases)}")
    if unknown := set(args.modes) - set(harness.MODES):
        p.error(f"unknown modes {sorted(unknown)}; choose from {harness.MODES}")
    if args.threads is None:
        args.threads = ([n for n in (1, 2) if n <= (os.cpu_count() or 1)] if args.full
                        else [torch.get_num_threads()])
    if not args.threads or min(args.threads) < 1:
        p.error("--threads needs positive integers")
    if args.budget is None:
        args.budget = FULL_BUDGET_S if args.full else DEFAULT_BUDGET_S
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    return args


def select(cases, families, quick=False, full=False):
    """The cases to run: (cases, notes), the notes saying what the default
    run leaves out. full: every case of `families`; otherwise, per family,
    the first case of each op DEFAULT_RUN names (a family it doesn't name:
    its first case)."""
    selected, notes = [], []
    for family in families:
        family_cases = cases[family](quick=quick)
        if full:
            selected += family_cases
        elif family in DEFAULT_RUN:
            firsts = {}
            for case in family_cases:
                firsts.setdefault(case.op, case)
            named = [firsts[op] for op in DEFAULT_RUN[family] if op in firsts]
            # A registry without the model cases (hrops-bench) may have none of them.
            selected += named if named or not DEFAULT_RUN[family] else family_cases[:1]
        else:
            selected += family_cases[:1]
        if not full and family in LEFT_OUT:
            notes.append(f"not in the default run: {family} ({LEFT_OUT[family]}; "
                         f"--full --ops {family} runs it)")
    return selected, notes


def _run_notes(args, selected, cases, use_compile):
    every = sum(len(cases[f](quick=args.quick)) for f in args.ops)
    threads = ",".join(map(str, args.threads))
    what = "full run" if args.full else "default run"
    which = "" if args.full else \
        " (one per op family, and the models end to end; --full runs every case)"
    lines = [f"{what}: {len(selected)} of {every} cases{which}, threads {threads}, "
             f"modes {','.join(args.modes)}, budget {args.budget} s per measurement"]
    if not use_compile:
        lines.append(f"torch.compile rows: off (--compile adds them; {COMPILE_COST})")
    lines += [f"{impl} rows: off (--full or --impls adds them; {why})"
              for impl, why in _skipped_impls(args).items()]
    return lines


def _skipped_impls(args):
    if args.full:
        return {}
    return {impl: why for impl, why in DEFAULT_SKIPPED_IMPLS.items()
            if impl not in (args.impls or ())}


def _skip(args, use_compile):
    """harness.run's skip: why an available impl is not timed."""
    skipped = _skipped_impls(args)

    def skip(name, impl):
        if impl.compiled and not use_compile:
            return "--no-compile" if args.no_compile else "off by default (--compile)"
        if name in skipped:
            return f"off by default (--full or --impls): {skipped[name]}"
        return None
    return skip


def main(argv=None, cases=None, prog="hrops-bench"):
    """cases: the registry to run (default CASES; see cases.merged)."""
    cases = CASES if cases is None else cases
    args = _parse(argv, cases, prog)
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device != "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    use_compile = args.compile or (args.full and not args.no_compile)
    selected, notes = select(cases, args.ops, args.quick, args.full)
    if not selected:
        print(f"{prog}: no case to run; " + "; ".join(notes or ["no case at this size"]),
              file=sys.stderr)
        return 2
    notes = _run_notes(args, selected, cases, use_compile) + notes
    machine = report.machine_info(devices, args.threads)
    machine["malloc_keeps_freed_memory"] = not args.default_malloc and allocator.keep_freed_memory()
    print("\n".join([report.header(machine), *notes]), flush=True)

    path = pathlib.Path(args.json or os.path.join(
        "bench_results", f"hrops-bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"))
    stem = path.with_suffix("")
    markdown = pathlib.Path(f"{stem}.md")

    def save(rows, skips, chart_paths=None):
        report.write_json(path, machine, vars(args), rows, skips)
        report.write_markdown(markdown, machine, notes, rows, skips, chart_paths or {})

    rows, skips = harness.run(
        selected, devices, args.threads, args.modes, args.budget,
        skip=_skip(args, use_compile),
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
        on_case=save, only_impls=args.impls)
    report.add_speedups(rows)
    chart_paths = charts.write_charts(rows, machine, stem)
    save(rows, skips, chart_paths)
    print()
    print(report.format_table(rows))
    if skips:
        print()
        print(report.format_skips(skips))
    written = [p for p in chart_paths.values() if isinstance(p, pathlib.Path)]
    print(f"\nwrote {path}\nwrote {markdown}")
    if written:
        print(f"wrote {len(written)} charts: {stem}-<family>.png")
    if not charts.available():
        print(charts.MISSING)
    return 1 if any(s.failed for s in skips) else 0


if __name__ == "__main__":
    sys.exit(main())
