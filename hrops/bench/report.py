"""Benchmark results for people and machines: the machine description, the
comparison table, the JSON file and the Markdown report."""
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import subprocess

import torch

import hrops

from . import harness

MiB = 2 ** 20


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args):
    repo = pathlib.Path(hrops.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


COPY_BYTES = 256 * MiB  # the header's copy: past the caches of today's CPUs


def machine_info(devices, threads):
    """The machine, and its copy bandwidth and fp32 GEMM rate per device (and
    per CPU thread count in `threads`), measured now."""
    sha = _git("rev-parse", "HEAD")
    rates = []
    saved_threads = torch.get_num_threads()
    for device in devices:
        for n in threads if device.type == "cpu" else threads[:1]:
            torch.set_num_threads(n)
            gemm_n = 1024 if device.type == "cpu" else 4096
            rates.append({"device": str(device), "threads": n,
                          "copy_gb_s": harness.copy_bandwidth(device, COPY_BYTES) / 1e9,
                          "gemm_n": gemm_n, "gemm_gflop_s": harness.gemm_gflop_s(device, gemm_n)})
    torch.set_num_threads(saved_threads)
    return {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        "threads": list(threads),
        "rates": rates,
        "gpus": [torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hrops": hrops.__version__,
        "hrops_build": hrops.build_info(),
        "git_sha": sha,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if sha else None,
    }


def _rate(r, sizes=False):
    where = f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}" \
        if r["device"] == "cpu" else r["device"]
    copy, gemm = (f" ({COPY_BYTES // MiB} MiB)", f" ({r['gemm_n']}^2)") if sizes else ("", "")
    return (f"{where}: copy {r['copy_gb_s']:.1f} GB/s{copy}, "
            f"fp32 GEMM {r['gemm_gflop_s']:.0f} GFLOP/s{gemm}")


def header_lines(machine):
    git = machine["git_sha"][:10] + (" (dirty)" if machine["git_dirty"] else "") \
        if machine["git_sha"] else "unknown"
    build = " ".join(f"{k}={v}" for k, v in machine["hrops_build"].items())
    load = " ".join(f"{x:.2f}" for x in machine["load_average"])
    lines = [f"hrops-bench {machine['time']}  git {git}",
             f"CPU: {machine['cpu']}, ISA {machine['isa']}, {machine['cores']} cores "
             f"({machine['usable_cores']} usable), load {load}"]
    lines += [_rate(r, sizes=True) for r in machine["rates"]]
    lines += [f"python {machine['python']}, torch {machine['torch']}, hrops {machine['hrops']}",
              f"hrops build: {build}"]
    if "malloc_keeps_freed_memory" in machine:
        lines.append("malloc: " + ("keeps freed memory (hrops/bench/allocator.py)"
                                   if machine["malloc_keeps_freed_memory"] else "defaults"))
    lines += [f"GPU: {name}" for name in machine["gpus"]]
    return lines


def header(machine):
    return "\n".join(header_lines(machine))


def summary(machine):
    """The header in one line (chart titles)."""
    return f"{machine['cpu']}, {machine['isa']} | " + " | ".join(map(_rate, machine["rates"]))


def _group(row):
    return row.op, row.size, row.mode, row.device, row.dtype, row.threads


def add_speedups(rows):
    """Sets each row's hrops_speedup: its best time over hrops' best time in
    the same (op, size, mode, device, dtype, threads) group; > 1: hrops wins."""
    hrops_ms = {_group(r): r.best_ms for r in rows if r.impl == "hrops"}
    for r in rows:
        if r.impl != "hrops" and _group(r) in hrops_ms:
            r.hrops_speedup = r.best_ms / hrops_ms[_group(r)]


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _mib(n):
    return None if n is None else n / MiB


TEXT_COLUMNS = [("op", lambda r: r.op), ("size", lambda r: r.size), ("mode", lambda r: r.mode),
                ("device", lambda r: r.device), ("thr", lambda r: str(r.threads)),
                ("impl", lambda r: r.impl)]
NUMBER_COLUMNS = [("best ms", lambda r: _fmt(r.best_ms, ".3f")),
                  ("median ms", lambda r: _fmt(r.median_ms, ".3f")),
                  ("first ms", lambda r: _fmt(r.first_ms, ".1f")),
                  ("floor ms", lambda r: _fmt(r.floor_ms, ".3f")),
                  ("x floor", lambda r: _fmt(r.x_floor, ".2f")),
                  ("hrops speed-up", lambda r: _fmt(r.hrops_speedup, ".2f")),
                  ("saved MiB", lambda r: _fmt(_mib(r.saved_bytes), ".1f")),
                  ("peak MiB", lambda r: _fmt(_mib(r.peak_bytes), ".1f")),
                  ("first peak MiB", lambda r: _fmt(_mib(r.first_peak_bytes), ".1f"))]
GFLOPS_COLUMN = ("GFLOP/s", lambda r: _fmt(r.gflop_s, ".1f"))


def _columns(rows):
    gflops = [GFLOPS_COLUMN] if any(r.gflop_s is not None for r in rows) else []
    return TEXT_COLUMNS + NUMBER_COLUMNS + gflops


def format_table(rows):
    columns = _columns(rows)
    cells = [[get(r) for _, get in columns] for r in rows]
    widths = [max([len(name)] + [len(c[i]) for c in cells]) for i, (name, _) in enumerate(columns)]

    def line(values):  # text left-aligned, numbers right-aligned
        return "  ".join(v.ljust(w) if i < len(TEXT_COLUMNS) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()
    out = [line([name for name, _ in columns]), line(["-" * w for w in widths])]
    for i, (row, c) in enumerate(zip(rows, cells)):
        if i and _group(row) != _group(rows[i - 1]):
            out.append("")
        out.append(line(c))
    return "\n".join(out)


def markdown_table(rows):
    columns = _columns(rows)
    out = ["| " + " | ".join(name for name, _ in columns) + " |",
           "|" + "|".join("---" if i < len(TEXT_COLUMNS) else "---:"
                          for i in range(len(columns))) + "|"]
    out += ["| " + " | ".join(get(r) for _, get in columns) + " |" for r in rows]
    return "\n".join(out)


def format_skips(skips):
    """A line per failure (op, device, impl, reason), then a line per
    (device, impl, reason) of the impls that could not run, naming the ops."""
    failed = {(s.op, s.device, s.impl, s.reason): s for s in skips if s.failed}
    lines = [f"FAILED: {s.op} {s.device} {s.impl}: {s.reason}" for s in failed.values()]
    unavailable = {}
    for s in skips:
        if not s.failed:
            unavailable.setdefault((s.device, s.impl, s.reason), {})[s.op] = None
    lines += [f"skipped: {impl} ({device}): {reason}: {', '.join(ops)}"
              for (device, impl, reason), ops in unavailable.items()]
    return "\n".join(lines)


def write_json(path, machine, args, rows, skips):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "args": args,
                                "rows": [dataclasses.asdict(r) for r in rows],
                                "skipped": [dataclasses.asdict(s) for s in skips]}, indent=1))


def write_markdown(path, machine, notes, rows, skips, charts):
    """The report: header, then per family its chart (charts: family -> PNG
    path, or a line saying why there is none) and its rows, then what was
    not measured."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ["# hrops benchmark", "", "```", *header_lines(machine), *notes, "```", "",
            "best / median: later calls; first: the first call on the case's inputs; floor: "
            "ideal bytes at copy bandwidth; hrops speed-up: the row's best / hrops' best "
            "(benchmarks/README.md in the hrops repository describes every column)."]
    for family in dict.fromkeys(r.family for r in rows):
        text += ["", f"## {family}", ""]
        chart = charts.get(family)
        if isinstance(chart, pathlib.Path):
            text += [f"![{family}: hrops speed-up]({os.path.relpath(chart, path.parent)})", ""]
        elif chart:
            text += [chart, ""]
        text.append(markdown_table([r for r in rows if r.family == family]))
    if skips:
        text += ["", "## Not measured", "", "```", format_skips(skips), "```"]
    path.write_text("\n".join(text) + "\n")
