"""Benchmark results for people and machines: the machine description, the
comparison table and the JSON file."""
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import subprocess

import torch

import hrops

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


def machine_info(devices):
    sha = _git("rev-parse", "HEAD")
    return {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        "gpus": [torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "hrops": hrops.__version__,
        "hrops_build": hrops.build_info(),
        "git_sha": sha,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if sha else None,
    }


def header(machine):
    git = machine["git_sha"][:10] + (" (dirty)" if machine["git_dirty"] else "") \
        if machine["git_sha"] else "unknown"
    build = " ".join(f"{k}={v}" for k, v in machine["hrops_build"].items())
    load = " ".join(f"{x:.2f}" for x in machine["load_average"])
    lines = [f"hrops-bench {machine['time']}  git {git}",
             f"CPU: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
             f"load {load}",
             f"python {machine['python']}, torch {machine['torch']}, hrops {machine['hrops']}",
             f"hrops build: {build}"]
    if "malloc_keeps_freed_memory" in machine:
        lines.append("malloc: " + ("keeps freed memory (hrops/bench/allocator.py)"
                                   if machine["malloc_keeps_freed_memory"] else "defaults"))
    lines += [f"GPU: {name}" for name in machine["gpus"]]
    return "\n".join(lines)


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


def format_table(rows):
    text = [("op", lambda r: r.op), ("size", lambda r: r.size), ("mode", lambda r: r.mode),
            ("device", lambda r: r.device), ("thr", lambda r: str(r.threads)),
            ("impl", lambda r: r.impl)]
    numbers = [("best ms", lambda r: _fmt(r.best_ms, ".3f")),
               ("median ms", lambda r: _fmt(r.median_ms, ".3f")),
               ("floor ms", lambda r: _fmt(r.floor_ms, ".3f")),
               ("x floor", lambda r: _fmt(r.x_floor, ".2f")),
               ("hrops speed-up", lambda r: _fmt(r.hrops_speedup, ".2f")),
               ("saved MiB", lambda r: _fmt(r.saved_bytes and r.saved_bytes / MiB, ".1f")),
               ("peak MiB", lambda r: _fmt(r.peak_bytes and r.peak_bytes / MiB, ".1f"))]
    if any(r.gflop_s is not None for r in rows):
        numbers.append(("GFLOP/s", lambda r: _fmt(r.gflop_s, ".1f")))
    columns = text + numbers
    cells = [[get(r) for _, get in columns] for r in rows]
    widths = [max([len(name)] + [len(c[i]) for c in cells]) for i, (name, _) in enumerate(columns)]

    def line(values):  # text left-aligned, numbers right-aligned
        return "  ".join(v.ljust(w) if i < len(text) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()
    out = [line([name for name, _ in columns]), line(["-" * w for w in widths])]
    for i, (row, c) in enumerate(zip(rows, cells)):
        if i and _group(row) != _group(rows[i - 1]):
            out.append("")
        out.append(line(c))
    return "\n".join(out)


def format_skips(skips):
    """One line per distinct (op, device, impl, reason); failures first."""
    seen = {}
    for s in sorted(skips, key=lambda s: not s.failed):
        seen.setdefault((s.op, s.device, s.impl, s.reason), s)
    return "\n".join(f"{'FAILED' if s.failed else 'skipped'}: {s.op} {s.device} {s.impl}: "
                     f"{s.reason}" for s in seen.values())


def write_json(path, machine, args, rows, skips):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "args": args,
                                "rows": [dataclasses.asdict(r) for r in rows],
                                "skipped": [dataclasses.asdict(s) for s in skips]}, indent=1))
